//! `PUT`, `GET` and `HEAD /blobs/{name}?deployment=D`: where the URLs of
//! `generateServerlessPexUrl` point. A request is allowed by a valid pre-signed query
//! (`presign`) for its method, deployment and name, or by an API token in the headers that may
//! access the deployment (from the query, else as for GraphQL: the `Dagster-Cloud-Deployment`
//! header, the token's own deployment, the server's default). `HEAD` is allowed with a `GET`
//! URL: it is how a client asks whether a file is already there.
//!
//! Answers follow S3 where a client may look: `ETag` and `x-amz-checksum-sha256` on success,
//! a PUT whose `x-amz-checksum-sha256` header does not match the body is refused (400) and
//! stores nothing; a name bound to other content is refused (409). An oversized
//! `Content-Length` is refused before any byte is read, and an upload that sends nothing for
//! `body_timeout` is dropped.

#![allow(clippy::result_large_err)] // handlers answer early with a ready `Response`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method as HttpMethod, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;

use super::blobs::{BlobError, BlobInfo, BlobStore, Upload, hex};
use super::error::DeployError;
use super::http::{
    HttpState, RequestLog, authenticate, content_length, requested_deployment, token,
};
use super::presign::Method;
use super::tokens::TokenScope;

/// Bytes collected before one write on a blocking thread.
const WRITE_BATCH: usize = 1 << 20;

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// The deployment the request may access: the one its URL was signed for, else the one a
/// valid API token may access.
async fn authorize(
    state: &HttpState,
    method: Method,
    name: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<String, Response> {
    let why = match state
        .blobs
        .signer
        .verify(method, name, query, SystemTime::now())
    {
        Ok(deployment) => return Ok(deployment.to_string()),
        Err(e) => e,
    };
    if token(headers).is_none() {
        return Err(text(
            StatusCode::FORBIDDEN,
            format!("access denied to {name}: {why}"),
        ));
    }
    // Refusals are 403, as S3 answers a bad signature.
    let token = authenticate(state, headers)
        .await
        .map_err(|(status, message)| {
            let status = match status {
                StatusCode::UNAUTHORIZED => StatusCode::FORBIDDEN,
                other => other,
            };
            text(status, message)
        })?;
    let deployment = query
        .get("deployment")
        .cloned()
        .or_else(|| requested_deployment(headers))
        .unwrap_or_else(|| match &token.scope {
            TokenScope::Deployment(own) => own.clone(),
            TokenScope::Organization => state.default_deployment.clone(),
        });
    if let TokenScope::Deployment(own) = &token.scope
        && *own != deployment
    {
        return Err(text(
            StatusCode::FORBIDDEN,
            format!(
                "this API token is scoped to deployment '{own}' and cannot access files of deployment '{deployment}'"
            ),
        ));
    }
    Ok(deployment)
}

fn blob_error(e: BlobError) -> Response {
    let status = match &e {
        BlobError::InvalidName(_) | BlobError::DigestMismatch { .. } => StatusCode::BAD_REQUEST,
        BlobError::NameTaken { .. } => StatusCode::CONFLICT,
        BlobError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BlobError::Io { .. } => {
            // The details name server paths: they go to the log only.
            tracing::error!("{e}");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server could not store or read the file (a storage error, e.g. a full \
                 disk); try again later, or ask the server's operator to look at its log",
            );
        }
    };
    text(status, e.to_string())
}

/// The hex SHA-256 the client announced in `x-amz-checksum-sha256` (base64, as S3 takes it).
fn announced_sha256(headers: &HeaderMap) -> Result<Option<String>, Response> {
    let Some(value) = headers.get("x-amz-checksum-sha256") else {
        return Ok(None);
    };
    let decoded = value
        .to_str()
        .ok()
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .filter(|b| b.len() == 32);
    match decoded {
        Some(bytes) => Ok(Some(hex(&bytes))),
        None => Err(text(
            StatusCode::BAD_REQUEST,
            "x-amz-checksum-sha256 must be the base64 of a 32-byte SHA-256 digest",
        )),
    }
}

/// Files are kept only for deployments that exist (an organization token could otherwise make
/// folders for any name).
async fn known_deployment(state: &HttpState, deployment: &str) -> Result<(), Response> {
    let deployments = state.deployments.clone();
    let name = deployment.to_string();
    match tokio::task::spawn_blocking(move || deployments.deployment(&name)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e @ DeployError::UnknownDeployment { .. })) => {
            Err(text(StatusCode::NOT_FOUND, e.to_string()))
        }
        Ok(Err(e)) => Err(text(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        Err(e) => Err(text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

fn with_digest_headers(mut response: Response, info: &BlobInfo) -> Response {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", info.sha256)) {
        h.insert(header::ETAG, v);
    }
    let bytes: Vec<u8> = (0..info.sha256.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&info.sha256[i..i + 2], 16).ok())
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    if let Ok(v) = HeaderValue::from_str(&b64) {
        h.insert("x-amz-checksum-sha256", v);
    }
    response
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(blob_error(e)),
        Err(e) => Err(text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

pub(crate) async fn put_blob(
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let log = log_of(&name, &query);
    let (Ok(response) | Err(response)) = put(&state, name, query, headers, body).await;
    logged(response, log)
}

/// The log line's operation (the file) and deployment (as the URL names it).
fn log_of(name: &str, query: &HashMap<String, String>) -> RequestLog {
    RequestLog {
        operation: Some(name.to_string()),
        deployment: query.get("deployment").cloned(),
    }
}

fn logged(mut response: Response, log: RequestLog) -> Response {
    response.extensions_mut().insert(log);
    response
}

async fn put(
    state: &HttpState,
    name: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    super::blobs::check_name(&name).map_err(blob_error)?;
    let deployment = authorize(state, Method::Put, &name, &query, &headers).await?;
    known_deployment(state, &deployment).await?;
    let limit = state.blobs.max_blob_bytes;
    if content_length(&headers).is_some_and(|n| n > limit) {
        return Err(blob_error(BlobError::TooLarge { limit }));
    }
    let expected = announced_sha256(&headers)?;
    let store: BlobStore = state.blobs.store.clone();
    let mut upload: Upload = blocking(move || store.begin(limit)).await?;
    let mut stream = body.into_data_stream();
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    loop {
        let next = tokio::time::timeout(state.limits.body_timeout, stream.next()).await;
        let Ok(next) = next else {
            tracing::warn!(name = %name, "upload stalled: dropped");
            return Err(text(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the upload of {name} sent nothing for {} s; upload it again",
                    state.limits.body_timeout.as_secs()
                ),
            ));
        };
        let chunk = match next {
            Some(Ok(chunk)) => Some(chunk),
            // The client went away mid-upload: the temp file goes with `upload`.
            Some(Err(e)) => {
                tracing::warn!(name = %name, "upload interrupted: {e}");
                return Err(text(
                    StatusCode::BAD_REQUEST,
                    format!("the upload of {name} was interrupted: {e}"),
                ));
            }
            None => None,
        };
        let done = chunk.is_none();
        if let Some(chunk) = chunk {
            batch.extend_from_slice(&chunk);
        }
        if batch.len() >= WRITE_BATCH || (done && !batch.is_empty()) {
            let data = std::mem::take(&mut batch);
            upload = blocking(move || {
                upload.write(&data)?;
                Ok(upload)
            })
            .await?;
        }
        if done {
            break;
        }
    }
    let (n, d) = (name.clone(), deployment.clone());
    let info = blocking(move || upload.finish(&d, &n, expected.as_deref())).await?;
    tracing::info!(deployment, name = %name, size = info.size, sha256 = %info.sha256, "stored blob");
    Ok(with_digest_headers(StatusCode::OK.into_response(), &info))
}

/// `GET` streams the blob; `HEAD` (axum routes it here too) answers with its headers only.
pub(crate) async fn get_blob(
    State(state): State<Arc<HttpState>>,
    method: HttpMethod,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let log = log_of(&name, &query);
    let (Ok(response) | Err(response)) = get(&state, method, name, query, headers).await;
    logged(response, log)
}

async fn get(
    state: &HttpState,
    method: HttpMethod,
    name: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    super::blobs::check_name(&name).map_err(blob_error)?;
    let deployment = authorize(state, Method::Get, &name, &query, &headers).await?;
    let store = state.blobs.store.clone();
    let n = name.clone();
    let Some(info) = blocking(move || store.lookup(&deployment, &n)).await? else {
        return Err(text(StatusCode::NOT_FOUND, format!("no such file: {name}")));
    };
    let body = if method == HttpMethod::HEAD {
        Body::empty()
    } else {
        let file = tokio::fs::File::open(&info.path).await.map_err(|source| {
            blob_error(BlobError::Io {
                path: info.path.clone(),
                source,
            })
        })?;
        Body::from_stream(tokio_util::io::ReaderStream::new(file))
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(with_digest_headers(response, &info))
}
