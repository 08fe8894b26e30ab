//! The embedded deployment server: the Dagster+ GraphQL protocol (docs/protocol.md) over HTTP, a
//! SQLite store keeping every revision of every location document, API tokens, and a
//! built-in agent that reports a location LOADED once its image exists in its registry.
//!
//! Two front doors, one mechanism: the HTTP/GraphQL server (`serve`, `start`) and the plain
//! Rust API (`Deployments`) that the CLI uses directly for the local store.
//!
//! Python-executable deploys: `generateServerlessPexUrl` hands out pre-signed (HMAC) URLs to
//! `/blobs/{name}?deployment=D`, a content-addressed store under `data_dir/blobs/` with
//! write-once names per deployment (`blobs`, `presign`).
//!
//! Exposed to the network, it bounds what any client controls before trusting it: connections
//! and their timeouts (`conn`), authentication before the body and the body's size and time
//! (`http`), the query's nesting, fields, aliases and cost and the answer's size (`limits`),
//! stored documents (`document`), and which registries image checks may contact (`registry`).

mod agent;
pub mod blobs;
mod conn;
mod deployments;
mod document;
mod error;
mod graphql;
mod http;
mod http_blobs;
pub mod limits;
mod load_status;
mod presign;
mod private_fs;
mod registry;
mod status;
mod store;
mod tokens;
pub mod workspace;

use std::fs::File;
use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use agent::{AgentOptions, DEFAULT_PORTS as DEFAULT_CODE_SERVER_PORTS};
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

/// How many connections, and how long a client may take: what a slow or idle client may hold.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at once; more are answered 503 at once.
    pub max_connections: usize,
    /// For a request's headers, and for the next request on a kept-alive connection.
    pub header_timeout: Duration,
    /// For a whole GraphQL body; for uploads, the longest pause between two chunks.
    pub body_timeout: Duration,
    /// How long requests in flight may take to finish once shutdown begins.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

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
    /// Registries images are checked in besides Docker Hub and those with credentials
    /// (`--registry`); images elsewhere get a load error and their host is never contacted.
    pub trusted_registries: Vec<String>,
    /// The deployment of requests that name none (organisation tokens only; a deployment
    /// token defaults to its own deployment). Created if missing.
    pub default_deployment: String,
    pub max_body_bytes: usize,
    /// Largest file accepted at a `generateServerlessPexUrl` URL.
    pub max_blob_bytes: u64,
    pub limits: ConnectionLimits,
    /// `scheme://host[:port]` clients reach the server at: the base of pre-signed URLs (never
    /// taken from a request's `Host`). `None`: `http://` and the address listened on.
    pub public_url: Option<String>,
    pub observer: Option<RequestObserver>,
    /// Dagster webservers told to `reloadWorkspace` when their deployment's workspace entries
    /// change (`serve --dagster-ui`, `--dagster-webserver`).
    pub dagster_webservers: Vec<workspace::Webserver>,
    /// Run every location as a Dagster code server (`serve`'s default). `None`, or no
    /// `registry`: nothing runs, and the status comes from the image and file checks.
    pub agent: Option<AgentOptions>,
}

impl ServeOptions {
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        ServeOptions {
            listen,
            data_dir: data_dir.into(),
            registry: Some(RegistryAccess::default()),
            trusted_registries: Vec::new(),
            default_deployment: DEFAULT_DEPLOYMENT.to_string(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            limits: ConnectionLimits::default(),
            public_url: None,
            observer: None,
            dagster_webservers: Vec::new(),
            agent: None,
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("registry", &self.registry)
            .field("trusted_registries", &self.trusted_registries)
            .field("default_deployment", &self.default_deployment)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_blob_bytes", &self.max_blob_bytes)
            .field("limits", &self.limits)
            .field("public_url", &self.public_url)
            .field("observer", &self.observer.as_ref().map(|_| "<fn>"))
            .field("dagster_webservers", &self.dagster_webservers)
            .field("agent", &self.agent)
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
    // The port first: a taken port must not leave a data directory behind.
    let listener = bind(opts.listen).await?;
    let addr = local_addr(&listener, opts.listen)?;
    let prepared = prepare(&opts, addr)?;
    tracing::info!(addr = %addr, data_dir = %opts.data_dir.display(), "serving");
    run(prepared, listener, shutdown).await
}

/// Starts the server in the background (e.g. on `127.0.0.1:0` in tests) and returns once it
/// accepts connections.
pub async fn start(opts: ServeOptions) -> Result<RunningServer, ServerError> {
    let listener = bind(opts.listen).await?;
    let addr = local_addr(&listener, opts.listen)?;
    let prepared = prepare(&opts, addr)?;
    let (tx, rx) = oneshot::channel::<()>();
    let deployments = prepared.deployments.clone();
    let workspaces = prepared.workspaces.clone();
    let handle = tokio::spawn(run(prepared, listener, async {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        addr,
        deployments,
        workspaces,
        shutdown: Some(tx),
        handle: Some(handle),
    })
}

fn local_addr(listener: &TcpListener, asked: SocketAddr) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|source| ServerError::Bind {
        addr: asked,
        source,
    })
}

/// A server started with `start`; stopped by `shutdown` (or, without waiting, on drop).
pub struct RunningServer {
    addr: SocketAddr,
    deployments: Deployments,
    workspaces: workspace::Workspaces,
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

    /// The deployments' Dagster workspace files (and the webservers reloaded on change).
    pub fn workspaces(&self) -> &workspace::Workspaces {
        &self.workspaces
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
    workspaces: workspace::Workspaces,
    limits: ConnectionLimits,
    /// Stopped (with its code servers, unless told to keep them) after the last request.
    agent: Option<Arc<agent::Agent>>,
    /// Held (locked) for as long as the server runs.
    _lock: File,
}

fn prepare(opts: &ServeOptions, addr: SocketAddr) -> Result<Prepared, ServerError> {
    let lock = lock_data_dir(&opts.data_dir)?;
    let deployments = Deployments::open(&opts.data_dir)?;
    deployments.ensure_deployment(&opts.default_deployment)?;
    let data_dir_error = |source: std::io::Error| ServerError::DataDir {
        path: opts.data_dir.clone(),
        source,
    };
    let blobs = blobs::BlobStore::open(&opts.data_dir)
        .map_err(|e| data_dir_error(std::io::Error::other(e.to_string())))?;
    if blobs.has_legacy_names() {
        blobs
            .adopt_legacy_names(&pex_files_in_use(&deployments)?)
            .map_err(|e| data_dir_error(std::io::Error::other(e.to_string())))?;
    }
    let signer = presign::Signer::open(&opts.data_dir).map_err(data_dir_error)?;
    let public_url = match &opts.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{addr}"),
    };
    // The agent publishes each deployment's workspace file; these webservers are reloaded.
    let workspaces =
        workspace::Workspaces::new(&opts.data_dir).with_webservers(opts.dagster_webservers.clone());
    let (status, agent) = match (&opts.agent, &opts.registry) {
        (Some(agent_opts), Some(access)) => {
            let agent = agent::Agent::start(
                agent_opts.clone(),
                &opts.data_dir,
                deployments.clone(),
                blobs.clone(),
                access.clone(),
                opts.trusted_registries.clone(),
                workspaces.clone(),
            )?;
            (status::StatusSource::Agent(agent.clone()), Some(agent))
        }
        _ => (
            status::StatusSource::Checks(load_status::LoadChecker::new(
                opts.registry.clone(),
                opts.trusted_registries.clone(),
                Some(blobs.clone()),
            )),
            None,
        ),
    };
    let state = graphql::AppState {
        deployments: deployments.clone(),
        status,
        default_deployment: opts.default_deployment.clone(),
        signer: signer.clone(),
        public_url,
    };
    let http_state = http::HttpState {
        schema: graphql::build_schema(state),
        deployments: deployments.clone(),
        observer: opts.observer.clone(),
        max_body_bytes: opts.max_body_bytes,
        limits: opts.limits,
        default_deployment: opts.default_deployment.clone(),
        blobs: http::BlobState {
            store: blobs,
            signer,
            max_blob_bytes: opts.max_blob_bytes,
        },
    };
    Ok(Prepared {
        router: http::router(Arc::new(http_state)),
        deployments,
        workspaces,
        limits: opts.limits,
        agent,
        _lock: lock,
    })
}

/// Every deployment with the Python-executable files its current documents name.
fn pex_files_in_use(deployments: &Deployments) -> Result<Vec<(String, Vec<String>)>, ServerError> {
    let mut uses = Vec::new();
    for d in deployments.deployments()? {
        let files = deployments
            .locations(&d.name)?
            .iter()
            .filter_map(|l| l.document.pointer("/pex_metadata/pex_tag")?.as_str())
            .flat_map(|tag| {
                load_status::pex_tag_files(tag)
                    .into_iter()
                    .map(str::to_string)
            })
            .collect();
        uses.push((d.name, files));
    }
    Ok(uses)
}

/// Creates the data directory if needed (0700) and takes its exclusive lock.
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
    private_fs::dir(dir).map_err(io_error)?;
    let lock_path = dir.join(LOCK_FILE);
    let file = private_fs::file_options()
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
    let Prepared {
        router,
        limits,
        agent,
        _lock,
        ..
    } = prepared;
    conn::serve(listener, router, limits, shutdown).await;
    if let Some(agent) = agent {
        agent.shutdown().await;
    }
    drop(_lock);
    Ok(())
}
