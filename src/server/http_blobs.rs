//! `PUT`, `GET` and `HEAD /blobs/{name}`: where the URLs of `generateServerlessPexUrl` point.
//! A request is allowed by a valid pre-signed query (`presign`) for its method, or by an API
//! token in the headers (so a tool holding the token needs no URL). `HEAD` is allowed with a
//! `GET` URL: it is how a client asks whether a file is already there.
//!
//! Answers follow S3 where a client may look: `ETag` and `x-amz-checksum-sha256` on success,
//! a PUT whose `x-amz-checksum-sha256` header does not match the body is refused (400) and
//! stores nothing.

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
use super::http::{HttpState, token};
use super::presign::Method;

/// Bytes collected before one write on a blocking thread.
const WRITE_BATCH: usize = 1 << 20;

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// Allowed by the URL's signature, else by a valid API token.
async fn authorize(
    state: &HttpState,
    method: Method,
    name: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let signed = state
        .blobs
        .signer
        .verify(method, name, query, SystemTime::now());
    let why = match signed {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if let Some(secret) = token(headers) {
        let deployments = state.deployments.clone();
        match tokio::task::spawn_blocking(move || deployments.authenticate(&secret)).await {
            Ok(Ok(Some(_))) => return Ok(()),
            Ok(Ok(None)) => {
                return Err(text(
                    StatusCode::FORBIDDEN,
                    "the API token is not valid (unknown or revoked)",
                ));
            }
            Ok(Err(e)) => return Err(text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
            Err(e) => return Err(text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    }
    Err(text(
        StatusCode::FORBIDDEN,
        format!("access denied to {name}: {why}"),
    ))
}

fn blob_error(e: BlobError) -> Response {
    let status = match &e {
        BlobError::InvalidName(_) | BlobError::DigestMismatch { .. } => StatusCode::BAD_REQUEST,
        BlobError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BlobError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
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
    match put(&state, name, query, headers, body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn put(
    state: &HttpState,
    name: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    super::blobs::check_name(&name).map_err(blob_error)?;
    authorize(state, Method::Put, &name, &query, &headers).await?;
    let expected = announced_sha256(&headers)?;
    let store: BlobStore = state.blobs.store.clone();
    let limit = state.blobs.max_blob_bytes;
    let mut upload: Upload = blocking(move || store.begin(limit)).await?;
    let mut stream = body.into_data_stream();
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    loop {
        let chunk = match stream.next().await {
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
    let n = name.clone();
    let info = blocking(move || upload.finish(&n, expected.as_deref())).await?;
    tracing::info!(name = %name, size = info.size, sha256 = %info.sha256, "stored blob");
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
    match get(&state, method, name, query, headers).await {
        Ok(r) | Err(r) => r,
    }
}

async fn get(
    state: &HttpState,
    method: HttpMethod,
    name: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    super::blobs::check_name(&name).map_err(blob_error)?;
    authorize(state, Method::Get, &name, &query, &headers).await?;
    let store = state.blobs.store.clone();
    let n = name.clone();
    let Some(info) = blocking(move || store.lookup(&n)).await? else {
        return Err(text(StatusCode::NOT_FOUND, format!("no such file: {name}")));
    };
    let body = if method == HttpMethod::HEAD {
        Body::empty()
    } else {
        let file = tokio::fs::File::open(&info.path)
            .await
            .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
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
