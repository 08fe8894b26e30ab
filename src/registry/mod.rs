//! Container registries, shared by the build (is this content-key tag already pushed?) and the
//! embedded server (does a registered image exist?): image references, credentials (explicit
//! environment variables, Docker's `config.json` and its credential helpers) and the registry
//! HTTP API client.

mod client;
mod credentials;
mod docker_config;
mod reference;

use std::path::PathBuf;

pub use client::{MANIFEST_TYPES, RegistryClient};
pub use credentials::{
    HOST_VAR, IDENTITY_TOKEN_USER, Keychain, PASSWORD_VAR, RegistryCredentials, Secret,
    USERNAME_VAR, normalize_host,
};
pub use reference::{DOCKER_HUB, ImageRef, tag_fragment};

pub(crate) use client::error_chain;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("unknown registry host {registry}: {reason}")]
    UnknownHost { registry: String, reason: String },
    #[error("cannot connect to the registry {registry}: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error("the registry {registry} did not answer in time")]
    Timeout { registry: String },
    #[error("the registry {registry} requires credentials and none are configured for it")]
    CredentialsRequired { registry: String },
    #[error("the registry {registry} refused the configured credentials (HTTP {status})")]
    Unauthorized { registry: String, status: u16 },
    #[error(
        "the token endpoint of the registry {registry} refused {} (HTTP {status})",
        if *anonymous { "an anonymous request" } else { "the configured credentials" }
    )]
    TokenRefused {
        registry: String,
        status: u16,
        anonymous: bool,
    },
    #[error("the registry {registry} answered HTTP {status}")]
    Status { registry: String, status: u16 },
    #[error("the registry {registry} answered unexpectedly: {message}")]
    Protocol { registry: String, message: String },
    #[error("credential helper `{helper}` failed for {registry}: {message}")]
    CredentialHelper {
        helper: String,
        registry: String,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    DockerConfig { path: PathBuf, message: String },
    #[error("{message}")]
    Environment { message: String },
}

impl RegistryError {
    /// A stable code for `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::InvalidReference { .. } => "invalid-image-reference",
            RegistryError::UnknownHost { .. } => "registry-unknown-host",
            RegistryError::Unreachable { .. } => "registry-unreachable",
            RegistryError::Timeout { .. } => "registry-timeout",
            RegistryError::CredentialsRequired { .. } => "registry-credentials-required",
            RegistryError::Unauthorized { .. } | RegistryError::TokenRefused { .. } => {
                "registry-unauthorized"
            }
            RegistryError::Status { .. } | RegistryError::Protocol { .. } => "registry-error",
            RegistryError::CredentialHelper { .. } => "credential-helper",
            RegistryError::DockerConfig { .. } => "docker-config",
            RegistryError::Environment { .. } => "registry-environment",
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> String {
        let credentials = format!(
            "set {USERNAME_VAR} and {PASSWORD_VAR}, or log in with `docker login <registry>`"
        );
        match self {
            RegistryError::InvalidReference { .. } => {
                "fix `build.registry` in dagster_cloud.yaml: `host[:port]/path`, lower case".into()
            }
            RegistryError::UnknownHost { .. } => {
                "check the host name in `build.registry` (and DNS on this machine)".into()
            }
            RegistryError::Unreachable { .. } | RegistryError::Timeout { .. } => {
                "check that the registry is running and reachable from this machine".into()
            }
            RegistryError::CredentialsRequired { .. }
            | RegistryError::Unauthorized { .. }
            | RegistryError::TokenRefused { .. } => credentials,
            RegistryError::Status { .. } | RegistryError::Protocol { .. } => {
                "check the registry's logs; is `build.registry` a Docker registry?".into()
            }
            RegistryError::CredentialHelper { .. } => {
                "install the helper, or remove it from credsStore/credHelpers in Docker's config.json"
                    .into()
            }
            RegistryError::DockerConfig { .. } => {
                "fix the file, or point DOCKER_CONFIG at a folder with a valid config.json".into()
            }
            RegistryError::Environment { .. } => credentials,
        }
    }
}
