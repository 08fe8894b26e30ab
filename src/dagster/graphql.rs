//! The Dagster webserver's GraphQL API, the two calls dagster-deploy makes: `reloadWorkspace`
//! (after workspace entries are added or removed; a restarted code server at the same address
//! is reloaded by the webserver itself) and `/server_info` (is it up?).

use std::time::Duration;

use serde_json::{Value, json};

const RELOAD: &str = "mutation DagsterDeployReloadWorkspace { reloadWorkspace { __typename \
    ... on Workspace { locationEntries { name } } \
    ... on UnauthorizedError { message } ... on PythonError { message } } }";

/// Why a reload did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    #[error("the webserver is unreachable: {0}")]
    Unreachable(String),
    /// A `--read-only` webserver: retrying cannot help.
    #[error(
        "the webserver refused: UnauthorizedError: {0} (a read-only webserver cannot reload; \
         start it without --read-only)"
    )]
    Unauthorized(String),
    #[error("the webserver failed: PythonError: {0}")]
    Python(String),
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

impl ReloadError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ReloadError::Unauthorized(_))
    }
}

/// `http://host:port[/prefix]/graphql` for the webserver at `base`.
fn endpoint(base: &str, path: &str) -> String {
    format!("{}/{path}", base.trim_end_matches('/'))
}

/// Asks the webserver at `base` to reload its workspace file; returns the location names it
/// lists afterwards.
pub async fn reload_workspace(
    http: &reqwest::Client,
    base: &str,
) -> Result<Vec<String>, ReloadError> {
    let answer = http
        .post(endpoint(base, "graphql"))
        .json(&json!({ "query": RELOAD }))
        // Reloading re-imports every `code-server start` location: it can take a while.
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .map_err(|e| ReloadError::Unreachable(without_url(&e)))?;
    let status = answer.status();
    let body: Value = answer
        .json()
        .await
        .map_err(|e| ReloadError::Unexpected(format!("HTTP {status}: {}", without_url(&e))))?;
    parse_reload(&body)
}

fn parse_reload(body: &Value) -> Result<Vec<String>, ReloadError> {
    let reload = &body["data"]["reloadWorkspace"];
    let message = || reload["message"].as_str().unwrap_or_default().to_string();
    match reload["__typename"].as_str() {
        Some("Workspace") => Ok(reload["locationEntries"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()),
        Some("UnauthorizedError") => Err(ReloadError::Unauthorized(message())),
        Some("PythonError") => Err(ReloadError::Python(message())),
        _ => {
            let mut text = body.to_string();
            text.truncate(500);
            Err(ReloadError::Unexpected(text))
        }
    }
}

/// Whether the webserver at `base` answers `/server_info`.
pub async fn is_up(http: &reqwest::Client, base: &str) -> bool {
    http.get(endpoint(base, "server_info"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// reqwest's message without the URL (the caller names it once).
fn without_url(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if e.is_timeout() {
        "timed out".into()
    } else {
        cause.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_answers_are_told_apart() {
        let ok = json!({"data": {"reloadWorkspace": {"__typename": "Workspace",
            "locationEntries": [{"name": "a"}, {"name": "b"}]}}});
        assert_eq!(parse_reload(&ok), Ok(vec!["a".into(), "b".into()]));
        let ro = json!({"data": {"reloadWorkspace": {"__typename": "UnauthorizedError",
            "message": "Authorization failed"}}});
        let err = parse_reload(&ro).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("read-only"), "{err}");
        let py = json!({"data": {"reloadWorkspace": {"__typename": "PythonError",
            "message": "boom"}}});
        assert_eq!(parse_reload(&py), Err(ReloadError::Python("boom".into())));
        let odd = json!({"errors": [{"message": "Cannot query field"}]});
        assert!(
            matches!(parse_reload(&odd), Err(ReloadError::Unexpected(t)) if t.contains("Cannot query"))
        );
    }
}
