//! What can go wrong while planning. Each variant becomes the app-wide error of the same kind
//! (`error::Error`), so codes, hints and exit codes are the same wherever it is shown.

use crate::changes::ChangesError;
use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Changes(#[from] ChangesError),
    /// A command-line value that cannot work (exit 2): a location the file does not define.
    #[error("{message}")]
    Usage { message: String, hint: String },
    /// Input planning cannot use: an ignore file or glob that does not parse, a missing file.
    #[error("{message}")]
    Failed { message: String, hint: String },
    /// A problem of one location.
    #[error("location `{location}`: {source}")]
    Location {
        location: String,
        #[source]
        source: Box<PlanError>,
    },
}

impl PlanError {
    /// This error, said of location `name`.
    pub fn in_location(self, name: &str) -> PlanError {
        PlanError::Location {
            location: name.to_string(),
            source: Box::new(self),
        }
    }
}
