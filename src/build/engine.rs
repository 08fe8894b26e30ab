//! The container engine as the build step sees it: a small trait, so the build command can run
//! against the real Docker engine ([`super::docker::DockerEngine`]) or a test double.

use std::collections::BTreeMap;
use std::future::Future;

use super::buildkit::{StepCounts, SyncedDirs};
use super::secrets::SecretValues;
use super::tar_stream::ContextBody;
use crate::registry::{ImageRef, RegistryCredentials, RegistryError};

/// One thing the engine reported while building, pushing or pulling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressEvent<'a> {
    /// A line of output (build steps, layer status).
    Line(&'a str),
    /// Bytes of one layer moved so far (push or pull), out of `total`.
    Transfer {
        layer: &'a str,
        current: u64,
        total: u64,
    },
}

impl<'a> ProgressEvent<'a> {
    /// The line, for callers that only show text.
    pub fn line(&self) -> Option<&'a str> {
        match self {
            ProgressEvent::Line(line) => Some(line),
            ProgressEvent::Transfer { .. } => None,
        }
    }
}

/// Receives progress as it arrives (for display).
pub type Progress<'a> = dyn Fn(ProgressEvent<'_>) + Send + Sync + 'a;

/// How many of the last output lines an error carries.
pub const LOG_TAIL_LINES: usize = 30;

/// Which builder of the engine runs a build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// BuildKit when the engine has it, else the classic builder.
    #[default]
    Auto,
    /// The engine's built-in BuildKit (`RUN --mount`, secrets, inline cache).
    #[value(name = "buildkit")]
    BuildKit,
    /// The classic builder (`docker build` without BuildKit).
    Classic,
}

impl Builder {
    pub fn as_str(self) -> &'static str {
        match self {
            Builder::Auto => "auto",
            Builder::BuildKit => "buildkit",
            Builder::Classic => "classic",
        }
    }
}

/// Parameters of one image build (for the classic builder the context travels separately as a
/// tar stream; BuildKit reads `synced` through its session).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildRequest {
    /// The builder asked for; the engine settles `Auto`.
    pub builder: Builder,
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
    /// Local images whose layers may be reused (`--cache-from`).
    pub cache_from: Vec<String>,
    /// Credentials for registries the Dockerfile's `FROM` lines pull from (and, with BuildKit,
    /// the cache is imported from).
    pub registry_credentials: Vec<RegistryCredentials>,
    /// Build secrets by id (BuildKit only: served through its session, never sent as data).
    pub secrets: SecretValues,
    /// The folders BuildKit reads the context and the Dockerfile from (BuildKit only; set by
    /// [`super::build_image`], which then sends no tar).
    pub synced: Option<SyncedDirs>,
}

/// The result of a successful build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// Image id as the engine reports it (`sha256:...`).
    pub id: String,
    /// The builder that ran (never `Auto`).
    pub builder: Builder,
    /// Steps and cached steps, when the builder reports them (BuildKit).
    pub steps: Option<StepCounts>,
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
    /// The engine's progress stream ended inside a message, before the operation reported
    /// that it was done (see `stream_log`).
    #[error("{}{}", cut_short_message(operation), format_tail(log))]
    CutShort { operation: String, log: Vec<String> },
    #[error(transparent)]
    Reference(#[from] RegistryError),
    #[error("Docker engine: {operation} failed: {message}")]
    Api { operation: String, message: String },
}

impl EngineError {
    /// The last lines of output before the failure (empty when there were none).
    pub fn log_tail(&self) -> &[String] {
        match self {
            EngineError::Build { log, .. }
            | EngineError::Push { log, .. }
            | EngineError::CutShort { log, .. } => log,
            _ => &[],
        }
    }
}

/// The first line of [`EngineError::CutShort`].
pub(crate) fn cut_short_message(operation: &str) -> String {
    format!("the engine's stream for the {operation} ended early, before it reported completion")
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
    /// The builder that runs a build asking for `wanted` (`Auto` settled); an error when the
    /// engine cannot run it. Engines without BuildKit run everything with the classic builder.
    fn builder(&self, wanted: Builder) -> Result<Builder, EngineError> {
        match wanted {
            Builder::BuildKit => Err(EngineError::Build {
                message: "this engine cannot run BuildKit builds".into(),
                log: Vec::new(),
            }),
            _ => Ok(Builder::Classic),
        }
    }

    /// The engine's own platform (`linux/amd64`), when known.
    fn platform(&self) -> Option<String> {
        None
    }

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

    /// Pulls an image from its registry; `Ok(false)` when the registry has no such image.
    fn pull_image(
        &self,
        image: &ImageRef,
        credentials: Option<&RegistryCredentials>,
        progress: &Progress<'_>,
    ) -> impl Future<Output = Result<bool, EngineError>> + Send;

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
