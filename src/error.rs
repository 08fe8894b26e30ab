//! The top-level error: every domain error, its stable code, exit code and hint, rendered once
//! by `main`.

use crate::api::ApiError;
use crate::build::RunError;
use crate::changes::ChangesError;
use crate::ci::context::CiError;
use crate::ci::state::StateError;
use crate::config::{ConfigError, Diagnostic};
use crate::pex::PexError;
use crate::server::{DeployError, ServerError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Changes(#[from] ChangesError),
    #[error(transparent)]
    Build(#[from] RunError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Ci(#[from] CiError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Pex(#[from] PexError),
    /// The local store (`.dagster-deploy/`) refused or failed.
    #[error(transparent)]
    Store(#[from] DeployError),
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A problem of one location: its name leads the message; code, hint and exit code are
    /// the problem's own.
    #[error("location `{location}`: {source}")]
    Location {
        location: String,
        #[source]
        source: Box<Error>,
    },
    /// A command-line value that cannot work (exit 2), with what to do instead.
    #[error("{message}")]
    Usage { message: String, hint: String },
    /// Anything else the user must act on (exit 1).
    #[error("{message}")]
    Failed { message: String, hint: String },
}

/// A fan-out output that cannot be written fails the command.
impl From<crate::ci::fan_out::FanOutError> for Error {
    fn from(e: crate::ci::fan_out::FanOutError) -> Error {
        Error::Failed {
            message: e.message,
            hint: e.hint,
        }
    }
}

/// The pull request's facts fail as the CI's or git's errors do.
impl From<crate::ci::pull_request::PullRequestError> for Error {
    fn from(e: crate::ci::pull_request::PullRequestError) -> Error {
        use crate::ci::pull_request::PullRequestError as P;
        match e {
            P::Ci(e) => Error::Ci(e),
            P::Changes(e) => Error::Changes(e),
        }
    }
}

/// Planning's errors are the app's errors of the same kind (same code, hint, exit code).
impl From<crate::plan::PlanError> for Error {
    fn from(e: crate::plan::PlanError) -> Error {
        use crate::plan::PlanError as P;
        match e {
            P::Config(e) => Error::Config(e),
            P::Changes(e) => Error::Changes(e),
            P::Usage { message, hint } => Error::Usage { message, hint },
            P::Failed { message, hint } => Error::Failed { message, hint },
            P::Location { location, source } => Error::Location {
                location,
                source: Box::new((*source).into()),
            },
        }
    }
}

/// Exit codes: 0 success, 1 failure or invalid input, 2 usage error (as clap uses it).
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

impl Error {
    /// This error, said of location `name`.
    pub fn in_location(self, name: &str) -> Error {
        Error::Location {
            location: name.to_string(),
            source: Box::new(self),
        }
    }

    /// A stable, machine-readable code (part of the `--json` contract).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(ConfigError::Read { .. }) => "config-unreadable",
            Error::Config(ConfigError::Invalid { .. }) => "config-invalid",
            Error::Changes(e) => e.code(),
            Error::Build(e) => e.code(),
            Error::Api(e) => e.code(),
            Error::Ci(e) => e.code(),
            Error::State(e) => e.code(),
            Error::Pex(e) => e.code(),
            Error::Store(_) => "local-store",
            Error::Server(_) => "server",
            Error::Location { source, .. } => source.code(),
            Error::Usage { .. } => "usage",
            Error::Failed { .. } => "failed",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage { .. } | Error::Config(ConfigError::Read { .. }) => EXIT_USAGE,
            Error::State(StateError::NoFolder | StateError::NoSession { .. }) => EXIT_USAGE,
            Error::Changes(e) if e.is_usage() => EXIT_USAGE,
            Error::Api(e) if e.is_usage() => EXIT_USAGE,
            Error::Pex(e) if e.is_usage() => EXIT_USAGE,
            Error::Location { source, .. } => source.exit_code(),
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
            Error::Changes(e) => e.hint().into(),
            Error::Build(e) => e.hint(),
            Error::Api(e) => e.hint(),
            Error::Ci(e) => e.hint().into(),
            Error::State(e) => e.hint().into(),
            Error::Pex(e) => e.hint(),
            // Their messages already say what to do.
            Error::Store(_) | Error::Server(_) => String::new(),
            Error::Location { source, .. } => source.hint(),
            Error::Usage { hint, .. } | Error::Failed { hint, .. } => hint.clone(),
        }
    }

    /// Per-field problems, when the error is an invalid config file.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Config(ConfigError::Invalid { diagnostics, .. }) => diagnostics,
            Error::Location { source, .. } => source.diagnostics(),
            _ => &[],
        }
    }
}
