//! HTTP: `POST /graphql` (deployment from the `Dagster-Cloud-Deployment` header) and
//! `POST /{deployment}/graphql`. Authentication happens here, before the body is read as
//! GraphQL; failures use the GraphQL errors shape so the reference client prints them.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::blobs::BlobStore;
use super::deployments::Deployments;
use super::graphql::{ApiSchema, RequestCtx};
use super::http_blobs::{get_blob, put_blob};
use super::presign::Signer;
use super::{ObservedRequest, RequestObserver};

pub(crate) const TOKEN_HEADER: &str = "dagster-cloud-api-token";
pub(crate) const DEPLOYMENT_HEADER: &str = "dagster-cloud-deployment";
const SCOPE_HEADER: &str = "dagster-cloud-scope";

pub(crate) struct HttpState {
    pub schema: ApiSchema,
    pub deployments: Deployments,
    pub observer: Option<RequestObserver>,
    pub max_body_bytes: usize,
    pub blobs: BlobState,
}

/// The Python-executable file store and the key that signs its URLs.
pub(crate) struct BlobState {
    pub store: BlobStore,
    pub signer: Signer,
    pub max_blob_bytes: u64,
}

pub(crate) fn router(state: Arc<HttpState>) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/graphql", post(graphql_root))
        .route("/{deployment}/graphql", post(graphql_in_deployment))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(limit))
        // Blobs stream to disk under their own limit (`max_blob_bytes`), not the GraphQL one.
        .route("/blobs/{name}", get(get_blob).put(put_blob))
        .with_state(state)
}

async fn graphql_root(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, None, headers, body).await
}

async fn graphql_in_deployment(
    State(state): State<Arc<HttpState>>,
    Path(deployment): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Some(deployment), headers, body).await
}

/// `{"errors": [{"message": ...}]}` with a status.
fn errors(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({ "errors": [{ "message": message.into() }] });
    (status, axum::Json(body)).into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The headers that may carry a token (names as `HeaderMap` gives them: lower case): never
/// recorded.
const CREDENTIAL_HEADERS: [&str; 2] = [TOKEN_HEADER, "authorization"];

/// The token from `Dagster-Cloud-Api-Token`, or `Authorization: Bearer` (which Dagster+
/// accepts too).
pub(crate) fn token(headers: &HeaderMap) -> Option<String> {
    header(headers, TOKEN_HEADER).or_else(|| {
        header(headers, "authorization").and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        })
    })
}

async fn handle(
    state: Arc<HttpState>,
    path_deployment: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(secret) = token(&headers) else {
        return errors(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: no API token; send one in the Dagster-Cloud-Api-Token header \
             (DAGSTER_CLOUD_API_TOKEN for dagster-cloud)",
        );
    };
    let deployments = state.deployments.clone();
    let found = tokio::task::spawn_blocking(move || deployments.authenticate(&secret)).await;
    let token = match found {
        Ok(Ok(Some(t))) => t,
        Ok(Ok(None)) => {
            return errors(
                StatusCode::UNAUTHORIZED,
                "Unauthorized: the API token is not valid (unknown or revoked); create a new \
                 one with `dagster-deploy serve token create`",
            );
        }
        Ok(Err(e)) => return errors(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return errors(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return errors(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than this server's limit of {} bytes",
                    state.max_body_bytes
                ),
            );
        }
        Err(rejection) => return errors(rejection.status(), rejection.body_text()),
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return errors(
                StatusCode::BAD_REQUEST,
                format!(
                    "the request body is not a GraphQL request (JSON with \"query\" and \
                     \"variables\"): {e}"
                ),
            );
        }
    };
    let header_deployment = header(&headers, DEPLOYMENT_HEADER);
    if let Some(observer) = &state.observer {
        observer(&observe(
            &request,
            &path_deployment,
            &header_deployment,
            &headers,
        ));
    }
    tracing::debug!(
        path_deployment = ?path_deployment,
        header_deployment = ?header_deployment,
        operation = ?request.operation_name,
        token = %token.label,
        "graphql request"
    );
    let request = request.data(RequestCtx {
        token,
        path_deployment,
        header_deployment,
        base_url: base_url(&headers),
    });
    let response = state.schema.execute(request).await;
    axum::Json(response).into_response()
}

/// `scheme://host` as the client reached this server (behind a proxy: as the proxy says), for
/// the URLs handed back to it.
fn base_url(headers: &HeaderMap) -> String {
    let proto = header(headers, "x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = header(headers, "x-forwarded-host")
        .or_else(|| header(headers, "host"))
        .unwrap_or_else(|| "localhost".into());
    format!("{proto}://{host}")
}

fn observe(
    request: &async_graphql::Request,
    path_deployment: &Option<String>,
    header_deployment: &Option<String>,
    headers: &HeaderMap,
) -> ObservedRequest {
    use async_graphql::parser::types::{OperationType, Selection};
    let mut operation_type = None;
    let mut root_fields = Vec::new();
    let mut operation_name = request.operation_name.clone();
    if let Ok(doc) = async_graphql::parser::parse_query(&request.query) {
        for (name, op) in doc.operations.iter() {
            if operation_name.is_none() {
                operation_name = name.map(|n| n.to_string());
            }
            operation_type = Some(match op.node.ty {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            });
            for sel in &op.node.selection_set.node.items {
                if let Selection::Field(f) = &sel.node {
                    root_fields.push(f.node.name.node.to_string());
                }
            }
        }
    }
    ObservedRequest {
        path: match path_deployment {
            Some(d) => format!("/{d}/graphql"),
            None => "/graphql".to_string(),
        },
        deployment_header: header_deployment.clone(),
        scope_header: header(headers, SCOPE_HEADER),
        operation_type,
        operation_name,
        root_fields,
        variables: serde_json::to_value(&request.variables).unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = if CREDENTIAL_HEADERS.contains(&name.as_str()) {
                    "<redacted>".to_string()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_string(), value)
            })
            .collect(),
    }
}
