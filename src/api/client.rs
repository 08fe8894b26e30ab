//! The GraphQL transport: `POST {base}/graphql` with the reference client's headers, retries
//! of transient failures, maintenance waits, and errors inside 200 answers.
//!
//! Retried (up to `max_retries` times, waiting `backoff` doubling, or what `Retry-After`
//! says): HTTP 429, 409, 502, 503, 504 without a GraphQL body, failures to connect, and — for
//! queries only — read timeouts and connections dropped mid-request. A mutation whose request
//! may have reached the server is never sent twice (the reference client does the same for
//! timeouts; we extend it to dropped connections, where a retry could apply a change twice).
//! `{"errors": [...]}` answers are not retried. A `{"maintenance": {...}}` answer is waited
//! out (its `retry_interval`) until its `timeout` has passed.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::{Value, json};

use super::error::ApiError;
use super::secret::{ApiToken, redact};

/// The `Dagster-Cloud-Version` we send: the reference client version whose protocol we speak
/// (Dagster+ may refuse clients it considers too old, so our own version would not do).
pub const PROTOCOL_CLIENT_VERSION: &str = "1.13.27";

pub const TOKEN_HEADER: &str = "Dagster-Cloud-Api-Token";
pub const DEPLOYMENT_HEADER: &str = "Dagster-Cloud-Deployment";
pub const SCOPE_HEADER: &str = "Dagster-Cloud-Scope";
pub const VERSION_HEADER: &str = "Dagster-Cloud-Version";

const RETRY_STATUSES: [u16; 5] = [429, 409, 502, 503, 504];
/// At most this much of an unexpected body goes into an error message.
const BODY_EXCERPT: usize = 300;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per request (the reference's 60 s).
    pub timeout: Duration,
    /// Retries after the first attempt (the reference CLI's 3).
    pub max_retries: u32,
    /// First wait between attempts; doubles each time.
    pub backoff: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(60),
            max_retries: 3,
            backoff: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
}

/// One GraphQL operation: its text and how it may be retried.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// The root field, for messages.
    pub field: &'static str,
    pub kind: OperationKind,
    pub query: &'static str,
}

/// A client for one endpoint (`{base}/graphql`), one token and optionally one deployment.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    url: String,
    token: ApiToken,
    deployment: Option<String>,
    opts: ClientOptions,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
enum Attempt {
    Done(Value),
    /// Worth another try, after `wait` if the server said so.
    Retry {
        why: String,
        wait: Option<Duration>,
    },
    Maintenance {
        message: String,
        timeout: Duration,
        retry_interval: Duration,
    },
}

impl Client {
    /// `base` is the deployment URL (deployment-scoped calls) or the organisation URL
    /// (organisation-scoped calls); `deployment` becomes the `Dagster-Cloud-Deployment` header.
    pub fn new(
        base: &str,
        token: ApiToken,
        deployment: Option<&str>,
        opts: ClientOptions,
    ) -> Result<Client, ApiError> {
        let base = super::settings::normalize_url(base)?;
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("dagster-deploy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Unreachable {
                url: base.clone(),
                message: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Client {
            url: format!("{base}/graphql"),
            base,
            http,
            token,
            deployment: deployment.map(str::to_string),
            opts,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn deployment(&self) -> Option<&str> {
        self.deployment.as_deref()
    }

    /// The same endpoint for another deployment (`{org url}/{deployment}`).
    pub fn for_deployment(&self, org_url: &str, deployment: &str) -> Result<Client, ApiError> {
        Client::new(
            &format!("{org_url}/{deployment}"),
            self.token.clone(),
            Some(deployment),
            self.opts.clone(),
        )
    }

    /// Runs one operation and returns its `data`.
    pub async fn execute(&self, op: &Operation, variables: Value) -> Result<Value, ApiError> {
        let body = json!({ "query": op.query, "variables": variables });
        let body = serde_json::to_vec(&body).map_err(|e| ApiError::Unexpected {
            operation: op.field.into(),
            detail: e.to_string(),
        })?;
        let started = Instant::now();
        let mut retries = 0u32;
        loop {
            match self.attempt(op, &body).await? {
                Attempt::Done(data) => return Ok(data),
                Attempt::Retry { why, wait } => {
                    if retries >= self.opts.max_retries {
                        return Err(if self.opts.max_retries == 0 {
                            ApiError::Unreachable {
                                url: self.url.clone(),
                                message: why,
                            }
                        } else {
                            ApiError::RetriesExhausted {
                                url: self.url.clone(),
                                attempts: retries + 1,
                                last: why,
                            }
                        });
                    }
                    let wait = wait.unwrap_or(self.opts.backoff * 2u32.pow(retries));
                    retries += 1;
                    tracing::warn!(
                        "request to {} failed ({why}); retrying in {:.1} s",
                        self.url,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                Attempt::Maintenance {
                    message,
                    timeout,
                    retry_interval,
                } => {
                    if started.elapsed() >= timeout {
                        return Err(ApiError::Maintenance { message });
                    }
                    tracing::warn!(
                        "the deployment API is under maintenance ({message}); retrying in {:.1} s",
                        retry_interval.as_secs_f64()
                    );
                    tokio::time::sleep(retry_interval).await;
                }
            }
        }
    }

    fn headers(&self) -> Result<HeaderMap, ApiError> {
        let mut headers = HeaderMap::new();
        let value = |v: &str, what: &str| {
            HeaderValue::from_str(v).map_err(|_| ApiError::InvalidInput {
                message: format!("the {what} contains characters not allowed in an HTTP header"),
                hint: format!("check the {what}"),
            })
        };
        let mut token = value(self.token.expose(), "API token")?;
        token.set_sensitive(true);
        headers.insert(TOKEN_HEADER, token);
        headers.insert(SCOPE_HEADER, HeaderValue::from_static("deployment"));
        if let Some(d) = &self.deployment {
            headers.insert(DEPLOYMENT_HEADER, value(d, "deployment name")?);
        }
        headers.insert(
            VERSION_HEADER,
            HeaderValue::from_static(PROTOCOL_CLIENT_VERSION),
        );
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(headers)
    }

    async fn attempt(&self, op: &Operation, body: &[u8]) -> Result<Attempt, ApiError> {
        let may_repeat = op.kind == OperationKind::Query;
        let sent = self
            .http
            .post(&self.url)
            .headers(self.headers()?)
            .body(body.to_vec())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return self.transport_error(op, &e, may_repeat),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return self.transport_error(op, &e, may_repeat),
        };
        let parsed: Option<serde_json::Map<String, Value>> = serde_json::from_slice(&bytes).ok();
        let Some(mut answer) = parsed else {
            return self.status_error(op, status, retry_after, &bytes);
        };
        if let Some(m) = answer.get("maintenance") {
            return Ok(Attempt::Maintenance {
                message: m["message"]
                    .as_str()
                    .unwrap_or("no details given")
                    .to_string(),
                timeout: seconds(&m["timeout"]).unwrap_or_default(),
                retry_interval: seconds(&m["retry_interval"]).unwrap_or(Duration::from_secs(5)),
            });
        }
        if let Some(errors) = answer.get("errors") {
            return Err(self.graphql_errors(op, status, errors));
        }
        match answer.remove("data") {
            Some(data) if data.is_object() => Ok(Attempt::Done(data)),
            _ => self.status_error(op, status, retry_after, &bytes),
        }
    }

    fn transport_error(
        &self,
        op: &Operation,
        e: &reqwest::Error,
        may_repeat: bool,
    ) -> Result<Attempt, ApiError> {
        let why = redact(&error_chain(e), &self.token);
        if e.is_connect() || may_repeat {
            return Ok(Attempt::Retry { why, wait: None });
        }
        if e.is_timeout() {
            return Err(ApiError::MutationTimedOut {
                url: self.url.clone(),
                operation: op.field.into(),
                timeout: self.opts.timeout,
            });
        }
        Err(ApiError::Unreachable {
            url: self.url.clone(),
            message: format!(
                "{why}; {} was not sent again because it changes data and may already have \
                 been applied",
                op.field
            ),
        })
    }

    fn status_error(
        &self,
        op: &Operation,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Result<Attempt, ApiError> {
        if RETRY_STATUSES.contains(&status.as_u16()) {
            return Ok(Attempt::Retry {
                why: format!("HTTP {}", status.as_u16()),
                wait: retry_after.map(|w| w.min(self.opts.max_retry_after)),
            });
        }
        let text = String::from_utf8_lossy(body);
        let excerpt: String = text.chars().take(BODY_EXCERPT).collect();
        let excerpt = redact(excerpt.trim(), &self.token);
        if matches!(status.as_u16(), 401 | 403) {
            return Err(ApiError::Unauthorized {
                message: format!("HTTP {} from {}: {excerpt}", status.as_u16(), self.url),
            });
        }
        if status.is_success() {
            return Err(ApiError::Unexpected {
                operation: op.field.into(),
                detail: format!("the answer has no GraphQL data: {excerpt}"),
            });
        }
        Err(ApiError::Http {
            url: self.url.clone(),
            status: status.as_u16(),
            body: excerpt,
        })
    }

    fn graphql_errors(&self, op: &Operation, status: StatusCode, errors: &Value) -> ApiError {
        let messages: Vec<String> = match errors.as_array() {
            Some(list) => list
                .iter()
                .map(|e| match e.get("message").and_then(Value::as_str) {
                    Some(m) => m.to_string(),
                    None => e.to_string(),
                })
                .map(|m| redact(&m, &self.token))
                .collect(),
            None => vec![redact(&errors.to_string(), &self.token)],
        };
        let unauthorized = matches!(status.as_u16(), 401 | 403)
            || messages.iter().any(|m| m.starts_with("Unauthorized"));
        if unauthorized {
            ApiError::Unauthorized {
                message: messages.join("; "),
            }
        } else {
            ApiError::from_graphql(op.field, messages)
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate_to_system_time(value)?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Parses the IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`), the only one servers send.
fn httpdate_to_system_time(s: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    u64::try_from(secs)
        .ok()
        .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s))
}

fn seconds(v: &Value) -> Option<Duration> {
    v.as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The error and its sources, e.g. "error sending request: connection reset by peer".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        // In the past: retry at once.
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        assert_eq!(
            httpdate_to_system_time("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
