//! Errors of the deployment server: starting it (`ServerError`), storing (`StoreError`) and
//! the deployment operations themselves (`DeployError`).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Starting or running the server, or opening its data directory.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "cannot use {path} as the server's data directory: {source}; choose a writable directory \
         (e.g. with --data-dir)"
    )]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the data directory {path} is not writable (read-only or no permission); the server \
         must write its database there, so choose a writable directory"
    )]
    ReadOnlyDataDir { path: PathBuf },
    #[error(
        "the data directory {path} is already used by another running dagster-deploy server \
         (it holds {lock}); stop that server or choose another data directory"
    )]
    DataDirInUse { path: PathBuf, lock: PathBuf },
    #[error("cannot listen on {addr}: {source}; is another process using that port?")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server stopped with an error: {0}")]
    Serve(#[source] std::io::Error),
    /// The agent cannot run code servers as configured (the message names the flag).
    #[error("{0}")]
    Agent(String),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failure of the storage backend. The message never contains secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the database {}: {source}; the data directory must be a writable folder \
         of this user (choose another with --data)",
        path.display()
    )]
    Open {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "the database is locked by another process (a long write, or a tool holding it open); \
         nothing was changed: try again in a moment"
    )]
    Busy,
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Why a deployment operation was refused. Each variant maps to one protocol answer
/// (`InvalidLocationError`, `UnauthorizedError`, `PythonError`).
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("invalid location document:\n{}", .0.join("\n"))]
    InvalidLocation(Vec<String>),
    #[error(
        "deployment '{name}' does not exist (existing deployments: {}); create it first or check \
         the deployment name",
        if .existing.is_empty() { "none".to_string() } else { .existing.join(", ") }
    )]
    UnknownDeployment { name: String, existing: Vec<String> },
    #[error("deployment '{0}' already exists")]
    DeploymentExists(String),
    #[error(
        "invalid deployment name '{0}': use 1 to 63 characters from a-z, A-Z, 0-9, '-' and '_'"
    )]
    InvalidDeploymentName(String),
    #[error("no deployment has id {0}")]
    UnknownDeploymentId(i64),
    #[error("location '{location}' does not exist in deployment '{deployment}'")]
    UnknownLocation {
        deployment: String,
        location: String,
    },
    #[error(
        "revision {revision} is not a revision of location '{location}' in deployment '{deployment}'"
    )]
    UnknownRevision {
        deployment: String,
        location: String,
        revision: i64,
    },
    #[error(
        "location '{location}' in deployment '{deployment}' has no earlier document to roll back to"
    )]
    NothingToRollBack {
        deployment: String,
        location: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("internal server error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => StoreError::Busy,
            _ => StoreError::Database(Box::new(e)),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
