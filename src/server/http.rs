//! HTTP: `POST /graphql` (deployment from the `Dagster-Cloud-Deployment` header) and
//! `POST /{deployment}/graphql`. Every request is hostile until authenticated: the token is
//! checked before a byte of the body is read, an oversized `Content-Length` is refused at
//! once, a body that does not arrive within `body_timeout` is dropped, and the query passes
//! `limits` before async-graphql sees it. Failures use the GraphQL errors shape so the
//! reference client prints them. One log line per request (`log_request`), never a token.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::blobs::BlobStore;
use super::deployments::Deployments;
use super::graphql::{ApiSchema, RequestCtx};
use super::http_blobs::{get_blob, put_blob};
use super::limits::{self, LimitError, MAX_ANSWER_BYTES, MAX_ERROR_CHARS};
use super::presign::Signer;
use super::tokens::{TokenInfo, TokenScope};
use super::{ConnectionLimits, ObservedRequest, RequestObserver};

pub(crate) const TOKEN_HEADER: &str = "dagster-cloud-api-token";
pub(crate) const DEPLOYMENT_HEADER: &str = "dagster-cloud-deployment";
const SCOPE_HEADER: &str = "dagster-cloud-scope";

pub(crate) struct HttpState {
    pub schema: ApiSchema,
    pub deployments: Deployments,
    pub observer: Option<RequestObserver>,
    pub max_body_bytes: usize,
    pub limits: ConnectionLimits,
    pub default_deployment: String,
    pub blobs: BlobState,
}

/// The Python-executable file store and the key that signs its URLs.
pub(crate) struct BlobState {
    pub store: BlobStore,
    pub signer: Signer,
    pub max_blob_bytes: u64,
}

pub(crate) fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/graphql", post(graphql_root))
        .route("/{deployment}/graphql", post(graphql_in_deployment))
        .route("/health", get(|| async { "ok" }))
        // Blobs stream to disk under their own limit (`max_blob_bytes`), not the GraphQL one.
        .route("/blobs/{name}", get(get_blob).put(put_blob))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// What a handler learnt about a request, for its log line (a response extension).
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestLog {
    pub operation: Option<String>,
    pub deployment: Option<String>,
}

/// One line per request: method, path (never the query: it may hold a URL signature),
/// operation, deployment, status and milliseconds.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let log = response.extensions().get::<RequestLog>();
    let operation = log.and_then(|l| l.operation.as_deref()).unwrap_or("-");
    let deployment = log.and_then(|l| l.deployment.as_deref()).unwrap_or("-");
    tracing::info!(
        target: "dagster_deploy::server::request",
        %method,
        path,
        operation,
        deployment,
        status = response.status().as_u16(),
        ms = (ms * 10.0).round() / 10.0,
        "request"
    );
    response
}

async fn graphql_root(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, None, headers, body).await
}

async fn graphql_in_deployment(
    State(state): State<Arc<HttpState>>,
    Path(deployment): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Some(deployment), headers, body).await
}

/// `{"errors": [{"message": ...}]}` with a status.
fn errors(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({ "errors": [{ "message": message.into() }] });
    (status, axum::Json(body)).into_response()
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The deployment the `Dagster-Cloud-Deployment` header names.
pub(crate) fn requested_deployment(headers: &HeaderMap) -> Option<String> {
    header_value(headers, DEPLOYMENT_HEADER)
}

/// The announced `Content-Length`, if any.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_value(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok())
}

/// The headers that may carry a token (names as `HeaderMap` gives them: lower case): never
/// recorded.
const CREDENTIAL_HEADERS: [&str; 2] = [TOKEN_HEADER, "authorization"];

/// The token from `Dagster-Cloud-Api-Token`, or `Authorization: Bearer` (which Dagster+
/// accepts too).
pub(crate) fn token(headers: &HeaderMap) -> Option<String> {
    header_value(headers, TOKEN_HEADER).or_else(|| {
        header_value(headers, "authorization").and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        })
    })
}

/// The live token of the request, or the status and message to refuse it with. Records the
/// token's use (at most once a minute, off the request's path).
pub(crate) async fn authenticate(
    state: &HttpState,
    headers: &HeaderMap,
) -> Result<TokenInfo, (StatusCode, String)> {
    let Some(secret) = token(headers) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "Unauthorized: no API token; send one in the Dagster-Cloud-Api-Token header \
             (DAGSTER_CLOUD_API_TOKEN for dagster-cloud)"
                .into(),
        ));
    };
    let deployments = state.deployments.clone();
    let found = tokio::task::spawn_blocking(move || deployments.authenticate(&secret)).await;
    match found {
        Ok(Ok(Some(t))) => {
            state.deployments.note_token_use(&t);
            Ok(t)
        }
        Ok(Ok(None)) => Err((
            StatusCode::UNAUTHORIZED,
            "Unauthorized: the API token is not valid (unknown or revoked); create a new one \
             with `dagster-deploy serve token create`"
                .into(),
        )),
        Ok(Err(e)) => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// The whole body, within `max_body_bytes` and `body_timeout`.
async fn read_body(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, Response> {
    let limit = state.max_body_bytes;
    let too_large = || {
        errors(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than this server's limit of {limit} bytes"),
        )
    };
    if content_length(headers).is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(state.limits.body_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_length_limit(&e) => Err(too_large()),
        Ok(Err(e)) => Err(errors(
            StatusCode::BAD_REQUEST,
            format!("the request body could not be read: {e}"),
        )),
        Err(_) => Err(errors(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                state.limits.body_timeout.as_secs()
            ),
        )),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Answers one GraphQL request and attaches what the log line needs.
async fn handle(
    state: Arc<HttpState>,
    path_deployment: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header_deployment = requested_deployment(&headers);
    let mut log = RequestLog {
        operation: None,
        deployment: path_deployment.clone().or(header_deployment.clone()),
    };
    let answered = answer(
        &state,
        path_deployment,
        header_deployment,
        &headers,
        body,
        &mut log,
    )
    .await;
    let (Ok(mut response) | Err(mut response)) = answered;
    response.extensions_mut().insert(log);
    response
}

/// Authenticates, reads and checks the request, then executes it (`Err`: refused early).
async fn answer(
    state: &HttpState,
    path_deployment: Option<String>,
    header_deployment: Option<String>,
    headers: &HeaderMap,
    body: Body,
    log: &mut RequestLog,
) -> Result<Response, Response> {
    let token = authenticate(state, headers)
        .await
        .map_err(|(status, message)| errors(status, message))?;
    if log.deployment.is_none() {
        log.deployment = Some(match &token.scope {
            TokenScope::Deployment(own) => own.clone(),
            TokenScope::Organization => state.default_deployment.clone(),
        });
    }
    let body = read_body(state, headers, body).await?;
    let mut request: async_graphql::Request = serde_json::from_slice(&body).map_err(|e| {
        errors(
            StatusCode::BAD_REQUEST,
            format!(
                "the request body is not a GraphQL request (JSON with \"query\" and \
                 \"variables\"): {e}"
            ),
        )
    })?;
    let document = limits::parse(&request.query)
        .and_then(|doc| limits::check_selections(&doc).map(|()| doc))
        .map_err(|e| {
            // As async-graphql answers other invalid queries: GraphQL errors with 200.
            let status = match e {
                LimitError::Syntax { .. } => StatusCode::OK,
                _ => StatusCode::BAD_REQUEST,
            };
            errors(status, e.to_string())
        })?;
    log.operation = Some(operation_label(&request, &document));
    if let Some(observer) = &state.observer {
        observer(&observe(
            &request,
            &document,
            &path_deployment,
            &header_deployment,
            headers,
        ));
    }
    request.set_parsed_query(document);
    let request = request.data(RequestCtx {
        token,
        path_deployment,
        header_deployment,
    });
    let mut response = state.schema.execute(request).await;
    for e in &mut response.errors {
        if e.message.chars().count() > MAX_ERROR_CHARS {
            e.message = limits::truncate(&e.message, MAX_ERROR_CHARS);
        }
    }
    let bytes = serde_json::to_vec(&response).map_err(|e| {
        errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}"),
        )
    })?;
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err(errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the answer would be {} bytes, above this server's limit of {MAX_ANSWER_BYTES}; \
                 ask for fewer fields",
                bytes.len()
            ),
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(bytes),
    )
        .into_response())
}

/// The operation's name, else its root fields (`a,b`), for the log.
fn operation_label(
    request: &async_graphql::Request,
    document: &async_graphql::parser::types::ExecutableDocument,
) -> String {
    if let Some(name) = &request.operation_name {
        return limits::truncate(name, 100);
    }
    let (fields, name) = root_fields(document);
    limits::truncate(&name.unwrap_or_else(|| fields.join(",")), 100)
}

/// The root field names of every operation, and the first operation's name.
fn root_fields(
    document: &async_graphql::parser::types::ExecutableDocument,
) -> (Vec<String>, Option<String>) {
    use async_graphql::parser::types::Selection;
    let mut fields = Vec::new();
    let mut name = None;
    for (op_name, op) in document.operations.iter() {
        if name.is_none() {
            name = op_name.map(|n| n.to_string());
        }
        for sel in &op.node.selection_set.node.items {
            if let Selection::Field(f) = &sel.node {
                fields.push(f.node.name.node.to_string());
            }
        }
    }
    (fields, name)
}

fn observe(
    request: &async_graphql::Request,
    document: &async_graphql::parser::types::ExecutableDocument,
    path_deployment: &Option<String>,
    header_deployment: &Option<String>,
    headers: &HeaderMap,
) -> ObservedRequest {
    use async_graphql::parser::types::OperationType;
    let operation_type = document
        .operations
        .iter()
        .last()
        .map(|(_, op)| match op.node.ty {
            OperationType::Query => "query",
            OperationType::Mutation => "mutation",
            OperationType::Subscription => "subscription",
        });
    let (root_fields, name) = root_fields(document);
    ObservedRequest {
        path: match path_deployment {
            Some(d) => format!("/{d}/graphql"),
            None => "/graphql".to_string(),
        },
        deployment_header: header_deployment.clone(),
        scope_header: header_value(headers, SCOPE_HEADER),
        operation_type,
        operation_name: request.operation_name.clone().or(name),
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
