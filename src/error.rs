//! The top-level error: every domain error, its exit code and a hint, rendered once by main.

use crate::changes::ChangesError;
use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Changes(#[from] ChangesError),
    #[error("{message}")]
    Usage { message: String, hint: String },
}
