//! Builds through the engine's built-in BuildKit over the Engine API (`POST /build` with
//! `version=2`): no docker CLI, no buildx. A session we serve at the same time gives the engine
//! the build context and the Dockerfile (file sync, as `docker buildx build` does: no tar),
//! registry credentials (cache import, `FROM` pulls) and build secrets.
//!
//! bollard's own BuildKit build starts a session without a secrets service, so the request and
//! the session are made here ([`wire`], [`session`]); bollard gives the protocol types.

mod filesync;
mod session;
pub(crate) mod status;
pub(crate) mod wire;

use bollard::models::{BuildInfo, BuildInfoAux};
use bytes::Bytes;
use http_body_util::BodyExt;

use super::engine::{BuildRequest, Builder, BuiltImage, EngineError, Progress};
use super::secrets::SecretValues;
use super::stream_log::LogTail;
pub use filesync::{DockerfileDir, SyncedDirs};
use status::StatusLog;
pub use status::StepCounts;
pub(crate) use wire::Endpoint;

/// The build argument that makes BuildKit write its cache metadata into the image config, so
/// a later build on any engine can import the cache from the pushed image.
pub const INLINE_CACHE_ARG: &str = "BUILDKIT_INLINE_CACHE";

/// Builds `request.synced` with BuildKit; the files and `secrets` are served to the engine
/// through the session, never sent with the request.
pub(crate) async fn build(
    endpoint: &Endpoint,
    request: &BuildRequest,
    secrets: SecretValues,
    progress: &Progress<'_>,
) -> Result<BuiltImage, EngineError> {
    let failed = |message: String| EngineError::Build {
        message,
        log: Vec::new(),
    };
    let files = request
        .synced
        .clone()
        .ok_or_else(|| failed("a BuildKit build needs its context folders".into()))?;
    let session_id = session::new_id();
    let serve = session::open(
        endpoint,
        &session_id,
        session::Services {
            credentials: request.registry_credentials.clone(),
            secrets,
            files,
        },
    )
    .await
    .map_err(|e| failed(format!("cannot open a BuildKit session: {e}")))?;
    tokio::pin!(serve);
    let http_request = endpoint
        .request("POST", &format!("/build?{}", query(request, &session_id)))
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let work = async {
        let (response, mut connection) =
            wire::send(endpoint, http_request).await.map_err(failed)?;
        if !response.status().is_success() {
            let status = response.status();
            let text = wire::read_text(response.into_body(), &mut connection).await;
            return Err(failed(format!("the engine answered {status}: {text}")));
        }
        wire::drive(&mut connection, consume(response.into_body(), progress)).await
    };
    // The session is served for as long as the build runs, and closed with it.
    tokio::pin!(work);
    tokio::select! {
        built = &mut work => built,
        () = &mut serve => work.await,
    }
}

/// The `/build` query: what the classic builder gets, plus the BuildKit version and session.
fn query(request: &BuildRequest, session: &str) -> String {
    let json_map = |m: &std::collections::BTreeMap<String, String>| {
        serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
    };
    let mut url = reqwest::Url::parse("http://engine/build").expect("static URL");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("version", "2");
        q.append_pair("session", session);
        // The context comes from the session's file sync, not from the request body.
        q.append_pair("remote", "client-session");
        q.append_pair("dockerfile", &request.dockerfile);
        q.append_pair("rm", "1");
        q.append_pair("forcerm", "1");
        if let Some(tag) = &request.tag {
            q.append_pair("t", tag);
        }
        if !request.build_args.is_empty() {
            q.append_pair("buildargs", &json_map(&request.build_args));
        }
        if !request.labels.is_empty() {
            q.append_pair("labels", &json_map(&request.labels));
        }
        if let Some(target) = &request.target {
            q.append_pair("target", target);
        }
        if let Some(platform) = &request.platform {
            q.append_pair("platform", platform);
        }
        if let Some(network) = &request.network {
            q.append_pair("networkmode", network);
        }
        if request.no_cache {
            q.append_pair("nocache", "1");
        }
        if request.pull {
            q.append_pair("pull", "1");
        }
        if !request.cache_from.is_empty() {
            let list = serde_json::to_string(&request.cache_from).unwrap_or_default();
            q.append_pair("cachefrom", &list);
        }
    }
    url.query().unwrap_or_default().to_string()
}

/// The longest line of the build stream read (a status message carries at most a few
/// megabytes of step output).
const MAX_LINE: usize = 64 << 20;

/// Reads the build stream to the end: BuildKit status as lines, the image id, the first error.
async fn consume(
    body: hyper::body::Incoming,
    progress: &Progress<'_>,
) -> Result<BuiltImage, EngineError> {
    let mut frames = body.into_data_stream();
    let mut pending = Vec::<u8>::new();
    let mut status = StatusLog::default();
    let mut tail = LogTail::default();
    let mut id = None;
    let mut error = None;
    let mut handle = |line: &[u8], tail: &mut LogTail| {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let info: BuildInfo = match serde_json::from_slice(line) {
            Ok(info) => info,
            Err(e) => {
                error
                    .get_or_insert_with(|| format!("unreadable build output from the engine: {e}"));
                return;
            }
        };
        match info.aux {
            Some(BuildInfoAux::BuildKit(trace)) => {
                status.apply(&trace, &mut |l| tail.record(&format!("{l}\n"), progress))
            }
            Some(BuildInfoAux::Default(image)) => id = image.id.or(id.take()),
            None => {}
        }
        if let Some(text) = &info.stream {
            tail.record(text, progress);
        }
        let message = info
            .error_detail
            .and_then(|d| d.message)
            .filter(|m| !m.is_empty());
        if let Some(message) = message {
            error.get_or_insert(message);
        }
    };
    loop {
        let chunk: Option<Result<Bytes, hyper::Error>> =
            futures_util::StreamExt::next(&mut frames).await;
        match chunk {
            Some(Ok(bytes)) => {
                // Only the new bytes can end a line.
                let mut from = pending.len();
                pending.extend_from_slice(&bytes);
                while let Some(end) = pending[from..].iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=from + end).collect();
                    handle(&line, &mut tail);
                    from = 0;
                }
                if pending.len() > MAX_LINE {
                    let message = format!(
                        "the engine sent a build status line over {} MiB",
                        MAX_LINE >> 20
                    );
                    let log = tail.finish(progress);
                    return Err(EngineError::Build { message, log });
                }
            }
            Some(Err(e)) => {
                let message = format!("the engine's build stream broke: {e}");
                handle(&pending, &mut tail);
                let log = tail.finish(progress);
                return Err(EngineError::Build { message, log });
            }
            None => break,
        }
    }
    handle(&pending, &mut tail);
    status.finish(&mut |l| tail.record(&format!("{l}\n"), progress));
    let counts = status.counts();
    let log = tail.finish(progress);
    if let Some(message) = error {
        return Err(EngineError::Build { message, log });
    }
    match id {
        Some(id) => Ok(BuiltImage {
            id,
            builder: Builder::BuildKit,
            steps: Some(counts),
        }),
        None => Err(EngineError::Build {
            message: "the engine ended the build without reporting an image".to_string(),
            log,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_carries_session_and_json_maps() {
        let request = BuildRequest {
            dockerfile: "Dockerfile".into(),
            tag: Some("r/a:1".into()),
            build_args: [("A".to_string(), "1 2".to_string())].into(),
            cache_from: vec!["r/a:latest".into()],
            ..Default::default()
        };
        let q = query(&request, "s1");
        assert!(
            q.starts_with("version=2&session=s1&remote=client-session&dockerfile=Dockerfile"),
            "{q}"
        );
        assert!(q.contains("buildargs=%7B%22A%22%3A%221+2%22%7D"), "{q}");
        assert!(q.contains("cachefrom=%5B%22r%2Fa%3Alatest%22%5D"), "{q}");
        assert!(!q.contains("target"), "{q}");
    }
}
