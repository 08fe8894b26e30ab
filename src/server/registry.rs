//! Does an image exist? One `HEAD /v2/<name>/manifests/<reference>` against its registry
//! (Docker Registry HTTP API v2), with basic auth or the bearer-token flow.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};

/// How the server reaches registries to check that registered images exist.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    /// Credentials by registry host (`host[:port]` as written in image references).
    pub credentials: Vec<RegistryCredentials>,
    /// Registries spoken to over plain HTTP, besides `localhost` and `127.0.0.1`.
    pub insecure_registries: Vec<String>,
}

#[derive(Clone)]
pub struct RegistryCredentials {
    /// `host[:port]`; `docker.io` for Docker Hub.
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// An image reference split the way the registry API needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` as written (`docker.io` when the reference names none).
    pub registry: String,
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl ImageRef {
    pub fn parse(image: &str) -> Option<ImageRef> {
        let image = image.trim();
        if image.is_empty() || image.contains(char::is_whitespace) {
            return None;
        }
        let (name, reference) = match image.split_once('@') {
            Some((name, digest)) => (name, digest.to_string()),
            None => {
                let slash = image.rfind('/').map_or(0, |i| i + 1);
                match image[slash..].rfind(':') {
                    Some(colon) => (
                        &image[..slash + colon],
                        image[slash + colon + 1..].to_string(),
                    ),
                    None => (image, "latest".to_string()),
                }
            }
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ if name.contains('/') => ("docker.io".to_string(), name.to_string()),
            _ => ("docker.io".to_string(), format!("library/{name}")),
        };
        if repository.is_empty() || reference.is_empty() {
            return None;
        }
        Some(ImageRef {
            registry,
            repository,
            reference,
        })
    }

    fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

/// The answer of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageCheck {
    Present,
    /// The image is missing, or could not be checked; the message says which and names it.
    Missing(String),
}

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Checks that `image` exists in its registry.
pub async fn check_image(
    client: &reqwest::Client,
    access: &RegistryAccess,
    image: &str,
) -> ImageCheck {
    let Some(r) = ImageRef::parse(image) else {
        return ImageCheck::Missing(format!("image '{image}' is not a valid image reference"));
    };
    match check(client, access, &r).await {
        Ok(true) => ImageCheck::Present,
        Ok(false) => ImageCheck::Missing(format!(
            "image '{image}' was not found in registry {} (no manifest for {}:{}); push it \
             before registering the location",
            r.registry, r.repository, r.reference
        )),
        Err(why) => ImageCheck::Missing(format!(
            "could not check that image '{image}' exists in registry {}: {why}",
            r.registry
        )),
    }
}

async fn check(
    client: &reqwest::Client,
    access: &RegistryAccess,
    r: &ImageRef,
) -> Result<bool, String> {
    let scheme = if is_insecure(access, &r.registry) {
        "http"
    } else {
        "https"
    };
    let url = format!(
        "{scheme}://{}/v2/{}/manifests/{}",
        r.api_host(),
        r.repository,
        r.reference
    );
    let creds = credentials_for(access, &r.registry);
    let head = |auth: Option<Auth>| {
        let mut req = client.head(&url).header(ACCEPT, MANIFEST_TYPES);
        req = match auth {
            Some(Auth::Basic(c)) => req.basic_auth(&c.username, Some(&c.password)),
            Some(Auth::Bearer(t)) => req.bearer_auth(t),
            None => req,
        };
        req.send()
    };
    let first = head(None).await.map_err(|e| describe(&e))?;
    let answer = if first.status() == StatusCode::UNAUTHORIZED {
        let challenge = first
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(Challenge::parse)
            .unwrap_or_default();
        let auth = if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let token = bearer_token(client, &challenge, creds, &r.repository).await?;
            Auth::Bearer(token)
        } else {
            match creds {
                Some(c) => Auth::Basic(c),
                None => {
                    return Err(format!(
                        "the registry requires credentials and none are configured for {}",
                        r.registry
                    ));
                }
            }
        };
        head(Some(auth)).await.map_err(|e| describe(&e))?
    } else {
        first
    };
    match answer.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(format!(
            "the registry refused the configured credentials (HTTP {})",
            answer.status().as_u16()
        )),
        s => Err(format!("the registry answered HTTP {}", s.as_u16())),
    }
}

enum Auth<'a> {
    Basic(&'a RegistryCredentials),
    Bearer(String),
}

/// The token endpoint flow: GET realm?service=..&scope=repository:<name>:pull, with basic
/// credentials when we have them (anonymous pulls otherwise).
async fn bearer_token(
    client: &reqwest::Client,
    challenge: &Challenge,
    creds: Option<&RegistryCredentials>,
    repository: &str,
) -> Result<String, String> {
    let realm = challenge
        .param("realm")
        .ok_or("the registry asked for a bearer token but named no token endpoint")?;
    let scope = challenge
        .param("scope")
        .map(str::to_string)
        .unwrap_or_else(|| format!("repository:{repository}:pull"));
    let mut query = vec![("scope", scope)];
    if let Some(service) = challenge.param("service") {
        query.push(("service", service.to_string()));
    }
    let mut req = client.get(realm).query(&query);
    if let Some(c) = creds {
        req = req.basic_auth(&c.username, Some(&c.password));
    }
    let resp = req.send().await.map_err(|e| describe(&e))?;
    if !resp.status().is_success() {
        return Err(format!(
            "the registry's token endpoint refused {} (HTTP {})",
            if creds.is_some() {
                "the configured credentials"
            } else {
                "an anonymous request; configure credentials for this registry"
            },
            resp.status().as_u16()
        ));
    }
    let body: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| format!("the token endpoint sent an unreadable answer: {e}"))?;
    body.get("token")
        .or_else(|| body.get("access_token"))
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| "the token endpoint's answer has no token".to_string())
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the registry did not answer in time".to_string()
    } else if e.is_connect() {
        "cannot connect to the registry".to_string()
    } else {
        format!("request failed: {e}")
    }
}

fn is_insecure(access: &RegistryAccess, registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(registry, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
        || access.insecure_registries.iter().any(|r| r == registry)
}

fn credentials_for<'a>(
    access: &'a RegistryAccess,
    registry: &str,
) -> Option<&'a RegistryCredentials> {
    let docker_hub = ["docker.io", "index.docker.io", "registry-1.docker.io"];
    let normalise = |r: &str| {
        let r = r
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let r = r.strip_suffix("/v1").unwrap_or(r);
        if docker_hub.contains(&r) {
            "docker.io".to_string()
        } else {
            r.to_string()
        }
    };
    let wanted = normalise(registry);
    access
        .credentials
        .iter()
        .find(|c| normalise(&c.registry) == wanted)
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

    fn r(registry: &str, repository: &str, reference: &str) -> Option<ImageRef> {
        Some(ImageRef {
            registry: registry.into(),
            repository: repository.into(),
            reference: reference.into(),
        })
    }

    #[test]
    fn parses_image_references() {
        assert_eq!(
            ImageRef::parse("example.com/registry:prod-c-abc"),
            r("example.com", "registry", "prod-c-abc")
        );
        assert_eq!(
            ImageRef::parse("localhost:5000/a/b"),
            r("localhost:5000", "a/b", "latest")
        );
        assert_eq!(
            ImageRef::parse("busybox"),
            r("docker.io", "library/busybox", "latest")
        );
        assert_eq!(ImageRef::parse("me/app:1"), r("docker.io", "me/app", "1"));
        assert_eq!(
            ImageRef::parse("reg:5000/app@sha256:abc"),
            r("reg:5000", "app", "sha256:abc")
        );
        assert_eq!(ImageRef::parse(""), None);
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
        let access = RegistryAccess {
            insecure_registries: vec!["reg.internal:5000".into()],
            ..Default::default()
        };
        assert!(is_insecure(&access, "localhost:5000"));
        assert!(is_insecure(&access, "127.0.0.1:41234"));
        assert!(is_insecure(&access, "reg.internal:5000"));
        assert!(!is_insecure(&access, "ghcr.io"));
    }

    #[test]
    fn docker_hub_credentials_match_every_alias() {
        let access = RegistryAccess {
            credentials: vec![RegistryCredentials {
                registry: "https://index.docker.io/v1/".into(),
                username: "u".into(),
                password: "p".into(),
            }],
            ..Default::default()
        };
        assert!(credentials_for(&access, "docker.io").is_some());
        assert!(credentials_for(&access, "ghcr.io").is_none());
        assert!(!format!("{:?}", access).contains("\"p\""));
    }
}
