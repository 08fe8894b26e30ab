//! The agent's client for one Dagster code server: `grpc.health.v1.Health/Check` (service
//! `DagsterApi`) until it answers SERVING, then one `api.DagsterApi/ListRepositories`, whose
//! reply is a string of Dagster serdes JSON: a `ListRepositoriesResponse` (loaded) or a
//! `SerializableErrorInfo` (the user code failed to load; message, stack, cause and context).
//!
//! With a published Docker port a TCP connect succeeds before anything listens, so only a gRPC
//! answer means anything (docs/research/dagster-code-servers.md §7). Messages are written by
//! hand with prost (two tiny protos, no protoc); every call has a deadline and replies a size cap.

use std::time::Duration;

use serde_json::Value;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use super::super::load_status::{ChainLink, PythonTrace};

/// Largest reply accepted (a `ListRepositoriesResponse` of a large project is a few hundred KB).
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Deepest cause/context chain rendered (Python's own chains are short; a hostile one is not).
const MAX_CHAIN: usize = 32;

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    /// `SERVING` is 1.
    #[prost(int32, tag = "1")]
    status: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListRepositoriesRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct ListRepositoriesReply {
    #[prost(string, tag = "1")]
    serialized_list_repositories_response_or_error: String,
}

const SERVING: i32 = 1;

/// What `ListRepositories` said.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Loaded {
    /// The definitions loaded; the repositories' names.
    Ok(Vec<String>),
    /// The user code failed to load.
    Error(PythonTrace),
}

/// A code server at `host:port`.
pub(crate) struct CodeServer {
    endpoint: Endpoint,
}

impl CodeServer {
    pub(crate) fn new(host: &str, port: u16, call_timeout: Duration) -> Result<Self, String> {
        let endpoint = Endpoint::from_shared(format!("http://{host}:{port}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(call_timeout);
        Ok(CodeServer { endpoint })
    }

    async fn channel(&self) -> Result<tonic::client::Grpc<Channel>, String> {
        let channel = self.endpoint.connect().await.map_err(|e| e.to_string())?;
        // Dagster's code servers compress their replies with gzip.
        Ok(tonic::client::Grpc::new(channel)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_REPLY_BYTES))
    }

    /// `true` once the server says SERVING; `Err` says why not yet.
    pub(crate) async fn serving(&self) -> Result<bool, String> {
        let mut grpc = self.channel().await?;
        grpc.ready().await.map_err(|e| e.to_string())?;
        let reply: HealthCheckResponse = grpc
            .unary(
                tonic::Request::new(HealthCheckRequest {
                    service: "DagsterApi".into(),
                }),
                PathAndQuery::from_static("/grpc.health.v1.Health/Check"),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        Ok(reply.status == SERVING)
    }

    /// Lists the repositories: loads the user code of a `--lazy-load-user-code` server.
    pub(crate) async fn list_repositories(&self) -> Result<Loaded, String> {
        let mut grpc = self.channel().await?;
        grpc.ready().await.map_err(|e| e.to_string())?;
        let reply: ListRepositoriesReply = grpc
            .unary(
                tonic::Request::new(ListRepositoriesRequest {}),
                PathAndQuery::from_static("/api.DagsterApi/ListRepositories"),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .map_err(|s| format!("ListRepositories failed: {}", s.message()))?
            .into_inner();
        parse_list_repositories(&reply.serialized_list_repositories_response_or_error)
    }
}

/// The serdes JSON of a `ListRepositories` reply.
pub(crate) fn parse_list_repositories(text: &str) -> Result<Loaded, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("the code server's ListRepositories reply is not JSON: {e}"))?;
    match value["__class__"].as_str() {
        Some("ListRepositoriesResponse") => Ok(Loaded::Ok(
            value["repository_symbols"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["repository_name"].as_str().map(str::to_string))
                .collect(),
        )),
        Some("SerializableErrorInfo") => Ok(Loaded::Error(trace(&value))),
        other => Err(format!(
            "the code server's ListRepositories reply is a {}, not a ListRepositoriesResponse",
            other.unwrap_or("value without __class__")
        )),
    }
}

/// A `SerializableErrorInfo` as the protocol's `PythonError`: its message and stack, and its
/// chain flattened as Dagster's GraphQL does (`cause` is an explicit link, else `context`).
fn trace(error: &Value) -> PythonTrace {
    let (message, stack) = message_and_stack(error);
    let mut chain = Vec::new();
    let mut current = error;
    while chain.len() < MAX_CHAIN {
        let (next, explicit) = if current["cause"].is_object() {
            (&current["cause"], true)
        } else if current["context"].is_object() {
            (&current["context"], false)
        } else {
            break;
        };
        let (message, stack) = message_and_stack(next);
        chain.push(ChainLink {
            explicit,
            message,
            stack,
        });
        current = next;
    }
    PythonTrace {
        message,
        stack,
        chain,
    }
}

fn message_and_stack(error: &Value) -> (String, Vec<String>) {
    let message = error["message"].as_str().unwrap_or_default().to_string();
    let stack = error["stack"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    (message, stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_error_keeps_its_cause_chain() {
        let reply = r#"{"__class__":"SerializableErrorInfo","cls_name":"DagsterUserCodeLoadError",
          "message":"dagster._core.errors.DagsterUserCodeLoadError: Error occurred\n",
          "stack":["  File \"a.py\", line 1, in f\n"],
          "cause":{"__class__":"SerializableErrorInfo","cls_name":"RuntimeError",
            "message":"RuntimeError: could not load config\n","stack":["  File \"b.py\", line 7\n"],
            "cause":null,
            "context":{"__class__":"SerializableErrorInfo","cls_name":"KeyError",
              "message":"KeyError: 'missing_key'\n","stack":[],"cause":null,"context":null}},
          "context":null}"#;
        let Ok(Loaded::Error(t)) = parse_list_repositories(reply) else {
            panic!("not an error");
        };
        assert_eq!(
            t.message,
            "dagster._core.errors.DagsterUserCodeLoadError: Error occurred\n"
        );
        assert_eq!(t.stack, vec!["  File \"a.py\", line 1, in f\n"]);
        assert_eq!(t.chain.len(), 2);
        assert!(t.chain[0].explicit);
        assert_eq!(t.chain[0].message, "RuntimeError: could not load config\n");
        assert!(!t.chain[1].explicit);
        assert_eq!(t.chain[1].message, "KeyError: 'missing_key'\n");
    }

    #[test]
    fn a_good_reply_lists_repositories() {
        let reply = r#"{"__class__":"ListRepositoriesResponse","repository_symbols":[
          {"__class__":"LoadableRepositorySymbol","repository_name":"__repository__","attribute":"defs"}]}"#;
        assert_eq!(
            parse_list_repositories(reply),
            Ok(Loaded::Ok(vec!["__repository__".into()]))
        );
        assert!(parse_list_repositories("{}").is_err());
        assert!(parse_list_repositories("not json").is_err());
    }
}
