//! The top-level error: every domain error, its stable code, exit code and hint, rendered once
//! by `main`.

use crate::changes::ChangesError;
use crate::config::{ConfigError, Diagnostic};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Changes(#[from] ChangesError),
    /// A command-line value that cannot work (exit 2), with what to do instead.
    #[error("{message}")]
    Usage { message: String, hint: String },
    /// Anything else the user must act on (exit 1).
    #[error("{message}")]
    Failed { message: String, hint: String },
}

/// Exit codes: 0 success, 1 failure or invalid input, 2 usage error (as clap uses it).
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

impl Error {
    /// A stable, machine-readable code (part of the `--json` contract).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(ConfigError::Read { .. }) => "config-unreadable",
            Error::Config(ConfigError::Invalid { .. }) => "config-invalid",
            Error::Changes(e) => match e {
                ChangesError::NotARepository { .. } => "not-a-repository",
                ChangesError::UnknownRevision { .. } => "unknown-revision",
                ChangesError::DependencyCycle { .. } => "dependency-cycle",
                ChangesError::OutsideRepository { .. } => "outside-repository",
                _ => "git",
            },
            Error::Usage { .. } => "usage",
            Error::Failed { .. } => "failed",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage { .. }
            | Error::Config(ConfigError::Read { .. })
            | Error::Changes(ChangesError::UnknownRevision { .. }) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            Error::Config(ConfigError::Read { .. }) => {
                "run from the folder holding dagster_cloud.yaml, or pass --config PATH".into()
            }
            Error::Config(ConfigError::Invalid { .. }) => {
                "fix the problems listed above, then run `dagster-deploy check`".into()
            }
            Error::Changes(e) => match e {
                ChangesError::NotARepository { .. } => {
                    "run inside the monorepo's git checkout (or `git init` it first)".into()
                }
                ChangesError::UnknownRevision { .. } => {
                    "check the spelling, or fetch it first (`git fetch origin <rev>`); \
                     in CI, check out the full history (actions/checkout `fetch-depth: 0`)"
                        .into()
                }
                ChangesError::DependencyCycle { .. } => {
                    "local libraries must not depend on each other in a circle; remove one of \
                     the path dependencies"
                        .into()
                }
                ChangesError::OutsideRepository { .. } => {
                    "build directories and local dependencies must be inside the git \
                     repository; move them in or fix the path"
                        .into()
                }
                _ => "check that the repository is not corrupt (`git fsck`)".into(),
            },
            Error::Usage { hint, .. } | Error::Failed { hint, .. } => hint.clone(),
        }
    }

    /// Per-field problems, when the error is an invalid config file.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Config(ConfigError::Invalid { diagnostics, .. }) => diagnostics,
            _ => &[],
        }
    }
}
