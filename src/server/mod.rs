//! The embedded deployment server: the Dagster+ GraphQL protocol (docs/protocol.md) over HTTP, a
//! SQLite store keeping every revision of every location document, API tokens, and a
//! built-in agent that reports a location LOADED once its image exists in its registry.
//!
//! Two front doors, one mechanism: the HTTP/GraphQL server (`serve`, `start`) and the plain
//! Rust API (`Deployments`) that the CLI uses directly for the local store.
//!
//! Python-executable deploys: `generateServerlessPexUrl` hands out pre-signed (HMAC) URLs to
//! `/blobs/{name}`, a content-addressed store under `data_dir/blobs/` (`blobs`, `presign`).

pub mod blobs;
mod deployments;
mod document;
mod error;
mod graphql;
mod http;
mod http_blobs;
mod load_status;
mod presign;
mod registry;
mod store;
mod tokens;

use std::fs::File;
use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use deployments::{DATABASE_FILE, DEFAULT_DEPLOYMENT, Deployments, check_deployment_name};
pub use document::{
    commit_hash as document_commit_hash, image as document_image, serialized_deployment_metadata,
    validate_location, validate_locations_document,
};
pub use error::{DeployError, ServerError, StoreError};
pub use graphql::GenericScalar;
pub use registry::{ImageCheck, RegistryAccess, RegistryCredentials};
pub use store::{
    ApplyError, ApplyMode, BranchDeployment, CommitInfo, DeploymentKind, DeploymentRecord,
    HistoryPage, LocationChange, Revision, RevisionAction, SqliteStore, Store, StoredLocation,
};
pub use tokens::{Actor, TOKEN_PREFIX, TokenInfo, TokenScope};

/// The lock file that keeps two servers off one data directory.
pub const LOCK_FILE: &str = "server.lock";
/// Request bodies above this get HTTP 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Largest Python-executable file accepted (S3's limit for one PUT).
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Called with a description of every authenticated GraphQL request (never the token).
pub type RequestObserver = Arc<dyn Fn(&ObservedRequest) + Send + Sync>;

/// What a client asked for, as seen by the server (for tests and debugging).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRequest {
    /// `/graphql` or `/{deployment}/graphql`.
    pub path: String,
    pub deployment_header: Option<String>,
    pub scope_header: Option<String>,
    /// `query` or `mutation`.
    pub operation_type: Option<&'static str>,
    pub operation_name: Option<String>,
    pub root_fields: Vec<String>,
    pub variables: serde_json::Value,
    /// Every request header, names lower-cased; the token's value is `<redacted>`.
    pub headers: std::collections::BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// How to reach registries to check images. `None` turns image checks off: every
    /// location is reported LOADED as soon as it is registered.
    pub registry: Option<RegistryAccess>,
    /// The deployment of requests that name none (organisation tokens only; a deployment
    /// token defaults to its own deployment). Created if missing.
    pub default_deployment: String,
    pub max_body_bytes: usize,
    /// Largest file accepted at a `generateServerlessPexUrl` URL.
    pub max_blob_bytes: u64,
    pub observer: Option<RequestObserver>,
}

impl ServeOptions {
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        ServeOptions {
            listen,
            data_dir: data_dir.into(),
            registry: Some(RegistryAccess::default()),
            default_deployment: DEFAULT_DEPLOYMENT.to_string(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            observer: None,
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("registry", &self.registry)
            .field("default_deployment", &self.default_deployment)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_blob_bytes", &self.max_blob_bytes)
            .field("observer", &self.observer.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

/// Creates an API token in `data_dir` (works whether or not a server is running there) and
/// returns it; it is never shown again, only its hash is stored. A deployment-scoped token
/// needs its deployment to exist (`prod` always does).
pub fn create_token(data_dir: &Path, scope: TokenScope) -> Result<String, ServerError> {
    let (_, token) = Deployments::open(data_dir)?.create_token(scope, None)?;
    Ok(token)
}

/// Checks that one image exists, as the built-in agent does (for the local store, which has
/// no agent).
pub async fn check_image(access: &RegistryAccess, image: &str) -> ImageCheck {
    registry::check_image(&access.client(), access, image).await
}

/// Creates a full deployment in `data_dir`.
pub fn create_deployment(data_dir: &Path, name: &str) -> Result<DeploymentRecord, ServerError> {
    Ok(Deployments::open(data_dir)?.create_deployment(name)?)
}

/// Runs the server until `shutdown` completes.
pub async fn serve(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let prepared = prepare(&opts)?;
    let listener = bind(opts.listen).await?;
    tracing::info!(addr = %opts.listen, data_dir = %opts.data_dir.display(), "serving");
    run(prepared, listener, shutdown).await
}

/// Starts the server in the background (e.g. on `127.0.0.1:0` in tests) and returns once it
/// accepts connections.
pub async fn start(opts: ServeOptions) -> Result<RunningServer, ServerError> {
    let prepared = prepare(&opts)?;
    let listener = bind(opts.listen).await?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: opts.listen,
        source,
    })?;
    let (tx, rx) = oneshot::channel::<()>();
    let deployments = prepared.deployments.clone();
    let handle = tokio::spawn(run(prepared, listener, async {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        addr,
        deployments,
        shutdown: Some(tx),
        handle: Some(handle),
    })
}

/// A server started with `start`; stopped by `shutdown` (or, without waiting, on drop).
pub struct RunningServer {
    addr: SocketAddr,
    deployments: Deployments,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store the server works on, for direct reads and changes.
    pub fn deployments(&self) -> &Deployments {
        &self.deployments
    }

    /// `http://{addr}`: the base URL to give clients (`DAGSTER_CLOUD_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, finishes those in flight and releases the data directory.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(handle) => handle.await.map_err(|e| {
                ServerError::Serve(std::io::Error::other(format!("server task failed: {e}")))
            })?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

struct Prepared {
    router: axum::Router,
    deployments: Deployments,
    /// Held (locked) for as long as the server runs.
    _lock: File,
}

fn prepare(opts: &ServeOptions) -> Result<Prepared, ServerError> {
    let lock = lock_data_dir(&opts.data_dir)?;
    let deployments = Deployments::open(&opts.data_dir)?;
    deployments.ensure_deployment(&opts.default_deployment)?;
    let data_dir_error = |source: std::io::Error| ServerError::DataDir {
        path: opts.data_dir.clone(),
        source,
    };
    let blobs = blobs::BlobStore::open(&opts.data_dir)
        .map_err(|e| data_dir_error(std::io::Error::other(e.to_string())))?;
    let signer = presign::Signer::open(&opts.data_dir).map_err(data_dir_error)?;
    let state = graphql::AppState {
        deployments: deployments.clone(),
        checker: load_status::LoadChecker::new(opts.registry.clone(), Some(blobs.clone())),
        default_deployment: opts.default_deployment.clone(),
        signer: signer.clone(),
    };
    let http_state = http::HttpState {
        schema: graphql::build_schema(state),
        deployments: deployments.clone(),
        observer: opts.observer.clone(),
        max_body_bytes: opts.max_body_bytes,
        blobs: http::BlobState {
            store: blobs,
            signer,
            max_blob_bytes: opts.max_blob_bytes,
        },
    };
    Ok(Prepared {
        router: http::router(Arc::new(http_state)),
        deployments,
        _lock: lock,
    })
}

/// Creates the data directory if needed and takes its exclusive lock.
fn lock_data_dir(dir: &Path) -> Result<File, ServerError> {
    let io_error = |source: std::io::Error| match source.kind() {
        ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => {
            ServerError::ReadOnlyDataDir {
                path: dir.to_path_buf(),
            }
        }
        _ => ServerError::DataDir {
            path: dir.to_path_buf(),
            source,
        },
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let lock_path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::DataDirInUse {
            path: dir.to_path_buf(),
            lock: lock_path,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error(e)),
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

async fn run(
    prepared: Prepared,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let Prepared { router, _lock, .. } = prepared;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Serve)?;
    drop(_lock);
    Ok(())
}
