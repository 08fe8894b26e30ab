//! The registry HTTP API (Docker Registry v2 / OCI distribution), as far as we need it: does a
//! manifest exist (`HEAD /v2/<path>/manifests/<reference>`), and one more tag for an existing
//! manifest (GET it, PUT it under the tag). Each request goes anonymous first, then with basic
//! auth or a bearer token from the registry's token endpoint, as its challenge asks.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};

use super::credentials::{RegistryCredentials, normalize_host};
use super::{ImageRef, RegistryError};

/// Every manifest type a pushed image may have: OCI and Docker, single and multi-platform.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

const TIMEOUT: Duration = Duration::from_secs(20);

/// Talks to registries over HTTPS, or plain HTTP for loopback and listed insecure registries.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    insecure: Vec<String>,
}

impl Default for RegistryClient {
    fn default() -> Self {
        RegistryClient::new(Vec::new())
    }
}

impl RegistryClient {
    /// `insecure`: registries (`host[:port]`) spoken to over plain HTTP, besides loopback ones.
    pub fn new(insecure: Vec<String>) -> RegistryClient {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        RegistryClient {
            http,
            insecure: insecure.iter().map(|r| normalize_host(r)).collect(),
        }
    }

    pub fn is_insecure(&self, registry: &str) -> bool {
        let registry = normalize_host(registry);
        let host = registry
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(registry.as_str(), |(h, _)| h);
        matches!(host, "localhost" | "127.0.0.1" | "[::1]") || self.insecure.contains(&registry)
    }

    /// Whether the registry has a manifest for `image`'s tag or digest.
    pub async fn manifest_exists(
        &self,
        image: &ImageRef,
        credentials: Option<&RegistryCredentials>,
    ) -> Result<bool, RegistryError> {
        let url = self.manifest_url(image, image.reference());
        let answer = self
            .send(image, credentials, |http| {
                http.head(&url).header(ACCEPT, MANIFEST_TYPES)
            })
            .await?;
        match answer.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(refused(&image.registry, s)),
        }
    }

    /// Tags `image`'s manifest as `tag` too, in the same repository: the manifest is read and
    /// written back under the new tag, so no layer moves.
    pub async fn copy_tag(
        &self,
        image: &ImageRef,
        tag: &str,
        credentials: Option<&RegistryCredentials>,
    ) -> Result<(), RegistryError> {
        let registry = image.registry.as_str();
        let from = self.manifest_url(image, image.reference());
        let answer = self
            .send(image, credentials, |http| {
                http.get(&from).header(ACCEPT, MANIFEST_TYPES)
            })
            .await?;
        if !answer.status().is_success() {
            return Err(refused(registry, answer.status()));
        }
        let media_type =
            answer
                .headers()
                .get(CONTENT_TYPE)
                .cloned()
                .ok_or_else(|| RegistryError::Protocol {
                    registry: registry.to_string(),
                    message: format!("its manifest for {image} has no content type"),
                })?;
        let manifest = answer.bytes().await.map_err(|e| transport(registry, &e))?;
        let to = self.manifest_url(image, tag);
        let answer = self
            .send(image, credentials, |http| {
                http.put(&to)
                    .header(CONTENT_TYPE, media_type.clone())
                    .body(manifest.clone())
            })
            .await?;
        match answer.status() {
            s if s.is_success() => Ok(()),
            s => Err(refused(registry, s)),
        }
    }

    fn manifest_url(&self, image: &ImageRef, reference: &str) -> String {
        let scheme = if self.is_insecure(&image.registry) {
            "http"
        } else {
            "https"
        };
        format!(
            "{scheme}://{}/v2/{}/manifests/{reference}",
            image.api_host(),
            image.path
        )
    }

    /// Sends a request anonymously first and, when the registry answers 401, again with basic
    /// auth or a bearer token for the scope its challenge names (pull, or pull and push).
    async fn send(
        &self,
        image: &ImageRef,
        credentials: Option<&RegistryCredentials>,
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let registry = image.registry.as_str();
        let first = request(&self.http)
            .send()
            .await
            .map_err(|e| transport(registry, &e))?;
        if first.status() != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let challenge = first
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(Challenge::parse)
            .unwrap_or_default();
        let authed = if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let token = self
                .bearer_token(registry, &challenge, credentials, &image.path)
                .await?;
            request(&self.http).bearer_auth(token)
        } else {
            match credentials {
                Some(c) if !c.is_identity_token() => {
                    request(&self.http).basic_auth(&c.username, Some(c.password.expose()))
                }
                _ => {
                    return Err(RegistryError::CredentialsRequired {
                        registry: registry.to_string(),
                    });
                }
            }
        };
        authed.send().await.map_err(|e| transport(registry, &e))
    }

    /// The token flow: `GET realm?service=..&scope=repository:<path>:pull` with basic
    /// credentials (anonymous without), or `POST` with an identity (refresh) token.
    async fn bearer_token(
        &self,
        registry: &str,
        challenge: &Challenge,
        credentials: Option<&RegistryCredentials>,
        path: &str,
    ) -> Result<String, RegistryError> {
        let protocol = |message: &str| RegistryError::Protocol {
            registry: registry.to_string(),
            message: message.to_string(),
        };
        let realm = challenge
            .param("realm")
            .ok_or_else(|| protocol("it asked for a bearer token but named no token endpoint"))?;
        // Credentials go to the token endpoint: never in clear text unless the registry itself
        // is spoken to in clear text.
        if credentials.is_some()
            && realm.to_ascii_lowercase().starts_with("http://")
            && !self.is_insecure(registry)
        {
            return Err(protocol(&format!(
                "its token endpoint {realm} is plain HTTP; refusing to send credentials there"
            )));
        }
        let scope = challenge
            .param("scope")
            .map(str::to_string)
            .unwrap_or_else(|| format!("repository:{path}:pull"));
        let mut query = vec![("scope", scope.as_str())];
        if let Some(service) = challenge.param("service") {
            query.push(("service", service));
        }
        let req = match credentials {
            Some(c) if c.is_identity_token() => {
                query.extend([
                    ("grant_type", "refresh_token"),
                    ("client_id", "dagster-deploy"),
                    ("refresh_token", c.password.expose()),
                ]);
                self.http.post(realm).form(&query)
            }
            Some(c) => self
                .http
                .get(realm)
                .query(&query)
                .basic_auth(&c.username, Some(c.password.expose())),
            None => self.http.get(realm).query(&query),
        };
        let resp = req.send().await.map_err(|e| transport(registry, &e))?;
        if !resp.status().is_success() {
            return Err(RegistryError::TokenRefused {
                registry: registry.to_string(),
                status: resp.status().as_u16(),
                anonymous: credentials.is_none(),
            });
        }
        let body: serde_json::Value = resp.json().await.map_err(|e| {
            protocol(&format!(
                "its token endpoint sent an unreadable answer: {e}"
            ))
        })?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| protocol("its token endpoint's answer has no token"))
    }
}

/// A refusal: 401/403 say the credentials do not allow it.
fn refused(registry: &str, status: StatusCode) -> RegistryError {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized {
            registry: registry.to_string(),
            status: status.as_u16(),
        },
        s => RegistryError::Status {
            registry: registry.to_string(),
            status: s.as_u16(),
        },
    }
}

/// Sorts a failed request: unknown host, timeout, refused connection, other.
fn transport(registry: &str, e: &reqwest::Error) -> RegistryError {
    let chain = error_chain(e);
    let lower = chain.to_lowercase();
    let registry = registry.to_string();
    if lower.contains("dns error")
        || lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
    {
        RegistryError::UnknownHost {
            registry,
            reason: chain,
        }
    } else if e.is_timeout() {
        RegistryError::Timeout { registry }
    } else {
        RegistryError::Unreachable {
            registry,
            reason: chain,
        }
    }
}

/// The error and its causes in one line (the top message alone says little).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A `WWW-Authenticate` challenge: `Bearer realm="...",service="...",scope="..."`.
#[derive(Debug, Default, PartialEq)]
struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    fn parse(header: &str) -> Challenge {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.peek().copied() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
            params.push((key.trim().to_ascii_lowercase(), value));
        }
        Challenge {
            scheme: scheme.to_string(),
            params,
        }
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn credentials_never_go_to_a_plain_http_token_endpoint_of_a_tls_registry() {
        let client = RegistryClient::default();
        let challenge = Challenge::parse(r#"Bearer realm="http://127.0.0.1:1/token""#);
        let credentials = RegistryCredentials {
            registry: "registry.example.com".into(),
            username: "ci".into(),
            password: "hunter2".into(),
        };
        let err = client
            .bearer_token("registry.example.com", &challenge, Some(&credentials), "a")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::Protocol { message, .. } if message.contains("plain HTTP")),
            "{err:?}"
        );
    }

    #[test]
    fn parses_bearer_challenges_with_commas_in_quotes() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull,push""#,
        );
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("realm"), Some("https://auth.example/token"));
        assert_eq!(c.param("service"), Some("reg"));
        assert_eq!(c.param("scope"), Some("repository:a:pull,push"));
    }

    #[test]
    fn local_registries_use_plain_http() {
        let client = RegistryClient::new(vec!["reg.internal:5000".into()]);
        assert!(client.is_insecure("localhost:5000"));
        assert!(client.is_insecure("127.0.0.1:41234"));
        assert!(client.is_insecure("reg.internal:5000"));
        assert!(!client.is_insecure("ghcr.io"));
    }

    #[tokio::test]
    async fn unknown_hosts_and_closed_ports_are_told_apart() {
        let client = RegistryClient::default();
        let image = ImageRef::parse("no-such-host.invalid/app:1").unwrap();
        let err = client.manifest_exists(&image, None).await.unwrap_err();
        assert!(matches!(err, RegistryError::UnknownHost { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("unknown registry host no-such-host.invalid"),
            "{err}"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let image = ImageRef::parse(&format!("127.0.0.1:{port}/app:1")).unwrap();
        let err = client.manifest_exists(&image, None).await.unwrap_err();
        assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("Connection refused"), "{err}");
    }
}
