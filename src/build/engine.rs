//! The container engine as the build step sees it: a small trait, so the build command can run
//! against the real Docker engine ([`super::docker::DockerEngine`]) or a test double.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use super::tar_stream::ContextBody;

/// Receives each line of build or push output as it arrives (for progress display).
pub type Progress<'a> = dyn Fn(&str) + Send + Sync + 'a;

/// How many of the last output lines an error carries.
pub const LOG_TAIL_LINES: usize = 30;

/// Parameters of one image build (the context travels separately as a tar stream).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildRequest {
    /// The Dockerfile's path inside the context ([`super::BuildContext::dockerfile`]).
    pub dockerfile: String,
    /// `name:tag` given to the built image.
    pub tag: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Multi-stage target.
    pub target: Option<String>,
    /// e.g. `linux/amd64`.
    pub platform: Option<String>,
    /// Network for `RUN` steps (`none`, `host`, ...); the engine's default when `None`.
    pub network: Option<String>,
    pub no_cache: bool,
    /// Always try to pull a newer base image.
    pub pull: bool,
    /// Credentials for registries the Dockerfile's `FROM` lines pull from.
    pub registry_credentials: Vec<RegistryCredentials>,
}

/// A user name and password for one registry. The password never appears in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// Registry host as it appears in image names (`localhost:5000`, `ghcr.io`).
    pub server: String,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// An image name split for the engine API: `repository` keeps the registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub repository: String,
    pub tag: String,
}

impl ImageRef {
    /// Parses `[host[:port]/]path[:tag]`; the tag defaults to `latest`. Digests are refused
    /// because only tags can be pushed.
    pub fn parse(reference: &str) -> Result<ImageRef, EngineError> {
        let invalid = |reason: &str| EngineError::InvalidReference {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.contains('@') {
            return Err(invalid("a digest cannot be tagged or pushed; use a tag"));
        }
        let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match reference[last_slash..].rfind(':') {
            Some(colon) => {
                let colon = last_slash + colon;
                (&reference[..colon], &reference[colon + 1..])
            }
            None => (reference, "latest"),
        };
        if repository.is_empty() || repository.ends_with('/') || repository.contains("//") {
            return Err(invalid("the repository name is empty"));
        }
        if tag.is_empty() {
            return Err(invalid("the tag after `:` is empty"));
        }
        Ok(ImageRef {
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }

    /// The registry host the image is pushed to (`docker.io` for short names).
    pub fn registry(&self) -> &str {
        match self.repository.split_once('/') {
            Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
            _ => "docker.io",
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

/// The result of a successful build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// Image id as the engine reports it (`sha256:...`).
    pub id: String,
}

/// The result of a successful push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// Manifest digest in the registry, when the engine reported it.
    pub digest: Option<String>,
}

/// What the engine knows about a local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDetails {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "no Docker engine answers at {endpoint}: {reason}\n\
         hint: start Docker (`sudo systemctl start docker`, Docker Desktop, or `sudo dockerd &`), \
         or set DOCKER_HOST to a running engine"
    )]
    Unavailable { endpoint: String, reason: String },
    #[error("image build failed: {message}{}", format_tail(log))]
    Build { message: String, log: Vec<String> },
    #[error(
        "push of {image} failed: {message}{}{}",
        push_hint(message, registry),
        format_tail(log)
    )]
    Push {
        image: String,
        registry: String,
        message: String,
        log: Vec<String>,
    },
    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("Docker engine: {operation} failed: {message}")]
    Api { operation: String, message: String },
}

impl EngineError {
    /// The last lines of output before the failure (empty when there were none).
    pub fn log_tail(&self) -> &[String] {
        match self {
            EngineError::Build { log, .. } | EngineError::Push { log, .. } => log,
            _ => &[],
        }
    }
}

fn format_tail(log: &[String]) -> String {
    if log.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nlast lines of output:");
    for line in log {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}

fn push_hint(message: &str, registry: &str) -> String {
    let lower = message.to_lowercase();
    let auth = [
        "unauthorized",
        "authentication required",
        "no basic auth",
        "denied",
    ]
    .iter()
    .any(|word| lower.contains(word));
    if auth {
        format!(
            "\nhint: the registry {registry} refused the credentials; check the user name and password (or token) used for it"
        )
    } else {
        String::new()
    }
}

/// The operations the build step needs from a container engine.
///
/// Build and push consume the engine's whole progress stream: errors arrive inside it (with
/// HTTP 200), and they come back as [`EngineError::Build`] / [`EngineError::Push`] carrying the
/// tail of the output.
pub trait Engine: Send + Sync {
    /// Builds an image from a tar context stream.
    fn build_image(
        &self,
        request: &BuildRequest,
        context: ContextBody,
        progress: &Progress<'_>,
    ) -> impl Future<Output = Result<BuiltImage, EngineError>> + Send;

    /// Gives the image `source` (id or name) the name `target`.
    fn tag_image(
        &self,
        source: &str,
        target: &ImageRef,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Pushes a tagged image to its registry.
    fn push_image(
        &self,
        image: &ImageRef,
        credentials: Option<&RegistryCredentials>,
        progress: &Progress<'_>,
    ) -> impl Future<Output = Result<PushedImage, EngineError>> + Send;

    /// Details of a local image, `None` when the engine has no such image.
    fn inspect_image(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ImageDetails>, EngineError>> + Send;

    /// Whether the engine has a local image by this name or id.
    fn image_exists(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<bool, EngineError>> + Send {
        async move { Ok(self.inspect_image(reference).await?.is_some()) }
    }

    /// Removes a local image name (and the image when no other name is left); `Ok(false)` when
    /// there was no such image.
    fn remove_image(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<bool, EngineError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs() {
        let r = ImageRef::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag.as_str()),
            ("localhost:5000/team/app", "v1")
        );
        assert_eq!(r.registry(), "localhost:5000");
        let r = ImageRef::parse("localhost:5000/app").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag.as_str()),
            ("localhost:5000/app", "latest")
        );
        let r = ImageRef::parse("app:1").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.to_string(), "app:1");
        assert_eq!(
            ImageRef::parse("ghcr.io/o/a").unwrap().registry(),
            "ghcr.io"
        );
        assert!(ImageRef::parse("app@sha256:abc").is_err());
        assert!(ImageRef::parse("app:").is_err());
        assert!(ImageRef::parse(":v1").is_err());
    }

    #[test]
    fn password_is_not_in_debug() {
        let c = RegistryCredentials {
            server: "r".into(),
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn errors_carry_tail_and_hints() {
        let e = EngineError::Push {
            image: "localhost:5000/a:v1".into(),
            registry: "localhost:5000".into(),
            message: "unauthorized: authentication required".into(),
            log: vec!["Preparing".into()],
        };
        let text = e.to_string();
        assert!(text.contains("refused the credentials"), "{text}");
        assert!(
            text.ends_with("last lines of output:\n  Preparing"),
            "{text}"
        );
        let e = EngineError::Build {
            message: "boom".into(),
            log: vec![],
        };
        assert_eq!(e.to_string(), "image build failed: boom");
    }
}
