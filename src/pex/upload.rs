//! Talking to the file store through `generateServerlessPexUrl`: ask for pre-signed URLs, ask
//! whether a file is there (`HEAD` on its GET URL: 200 yes, anything else no, so a store that
//! refuses HEAD only costs an upload), and `PUT` files with their SHA-256 in
//! `x-amz-checksum-sha256` so a corrupted transfer is refused rather than stored.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::PexError;
use crate::api::ops::{self};
use crate::api::{ApiError, Client};

/// Attempts per upload (connection errors and 5xx answers are retried).
const ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy)]
pub enum Method {
    Put,
    Get,
}

/// One URL per name, in order.
pub async fn urls(
    client: &Client,
    names: &[String],
    method: Method,
) -> Result<Vec<String>, PexError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let op = match method {
        Method::Put => &ops::GENERATE_PEX_PUT_URLS,
        Method::Get => &ops::GENERATE_PEX_GET_URLS,
    };
    let data = client.execute(op, json!({ "filenames": names })).await?;
    let list = data["generateServerlessPexUrl"]
        .as_array()
        .ok_or_else(|| ApiError::GraphQl {
            operation: op.field.into(),
            messages: vec![format!("expected a list of URLs, got {data}")],
        })?;
    let urls: Vec<String> = list
        .iter()
        .map(|u| u["url"].as_str().unwrap_or_default().to_string())
        .collect();
    if urls.len() != names.len() || urls.iter().any(String::is_empty) {
        return Err(PexError::Upload {
            file: names.join(", "),
            message: "the server did not return a URL for every file".into(),
        });
    }
    Ok(urls)
}

/// Whether the file behind a GET URL exists.
pub async fn exists(http: &reqwest::Client, url: &str) -> bool {
    match http.head(url).send().await {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

/// A GET URL's body, `None` on 404.
pub async fn get(http: &reqwest::Client, url: &str) -> Result<Option<Vec<u8>>, String> {
    let r = http.get(url).send().await.map_err(describe)?;
    if r.status() == 404 || r.status() == 403 {
        return Ok(None);
    }
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    Ok(Some(r.bytes().await.map_err(describe)?.to_vec()))
}

/// The error and its causes, without the URL: a pre-signed URL grants access until it
/// expires, so it is never printed.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Uploads the file at `path` to a PUT URL; returns the time taken.
pub async fn put(http: &reqwest::Client, url: &str, path: &Path) -> Result<Duration, PexError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| PexError::io(path, e))?;
    put_bytes(http, url, &name, data).await
}

pub async fn put_bytes(
    http: &reqwest::Client,
    url: &str,
    name: &str,
    data: Vec<u8>,
) -> Result<Duration, PexError> {
    let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&data));
    let body = bytes::Bytes::from(data);
    let started = Instant::now();
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_millis(500 << (attempt - 2))).await;
        }
        let sent = http
            .put(url)
            .header("x-amz-checksum-sha256", &checksum)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return Ok(started.elapsed()),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                last = format!("HTTP {status}: {}", text.trim());
                if !status.is_server_error() && status != 429 {
                    break;
                }
            }
            Err(e) => last = describe(e),
        }
    }
    Err(PexError::Upload {
        file: name.to_string(),
        message: last,
    })
}
