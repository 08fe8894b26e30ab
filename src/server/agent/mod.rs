//! The agent inside `serve`: makes every registered location document a running Dagster code
//! server, and reports what really happened as the location's load status.
//!
//! One loop reconciles what is wished (for each deployment, closed branch deployments excluded,
//! the current document of each location) with what runs, when a mutation wakes it and on a
//! slow tick; it never blocks a request. Starting and loading run in tasks, at most
//! `max_concurrent_starts` at once:
//! - a new document's code server starts BESIDE the one serving; once it is LOADED the
//!   workspace file switches to it (`Workspaces::publish`) and the old one stops after
//!   `switch_grace`. A revision that fails to load stops; the previous one keeps serving and the
//!   status says both. Rollback is a registration like any other.
//! - a location deleted, or its deployment deleted or closed: its code servers stop and its
//!   workspace entry goes.
//! - a code server that exits is restarted with backoff (LOADING meanwhile).
//! - at start, code servers a previous `serve` left running (containers by label, processes by
//!   pid file) are adopted, not restarted; those no document asks for are stopped.
//!
//! `spec` turns a document into what to run, `docker` runs images as containers, `process`
//! runs Python executables as processes, `grpc` asks a code server whether it loaded, `ports`
//! hands out ports.

mod docker;
mod grpc;
mod ports;
mod process;
mod spec;
mod start;

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use super::blobs::BlobStore;
use super::deployments::Deployments;
use super::error::ServerError;
use super::load_status::{LoadStatus, PythonTrace};
use super::registry::RegistryAccess;
use super::store::{DeploymentKind, StoredLocation};
use super::workspace::{WorkspaceEntry, Workspaces};
pub use ports::DEFAULT_PORTS;
use spec::Spec;

/// How often the loop looks without being woken (crashed code servers, changes made by
/// another process on the same data folder).
const TICK: Duration = Duration::from_secs(2);
/// Longest wait between restarts of a code server that keeps exiting.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A code server that served this long before it exited is restarted at once again.
const STABLE_AFTER: Duration = Duration::from_secs(600);
/// Between two health checks of a starting code server.
const HEALTH_POLL: Duration = Duration::from_millis(250);
/// For one health check.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long stopping every code server at shutdown may take.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);
/// More than there can ever be launches in flight (starts are bounded by `starts`): shutdown
/// takes them all to wait for every launch.
const LAUNCH_SLOTS: u32 = 1 << 16;
/// The file in the data folder naming this server to the containers it labels.
const SERVER_ID_FILE: &str = "agent-id";

/// How the agent runs code servers (`serve`'s flags).
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Host ports handed to code servers (`--code-server-ports`).
    pub ports: RangeInclusive<u16>,
    /// How long a code server may take to answer and load (`--code-server-startup-timeout`).
    pub startup_timeout: Duration,
    /// How long a replaced code server keeps running after the switch (`--code-server-grace`).
    pub switch_grace: Duration,
    /// Leave code servers running when `serve` stops (`--keep-code-servers`).
    pub keep_code_servers: bool,
    /// Run Python-executable code servers as this user (`--code-server-user`); when `serve`
    /// runs as root, `nobody` unless set.
    pub code_server_user: Option<String>,
    /// Where Python-executable code servers' files go (`--code-server-dir`); default a folder
    /// in the system's temporary folder named by this server's id.
    pub run_dir: Option<PathBuf>,
    /// The Docker engine (`DOCKER_HOST`); `None`: the local socket.
    pub docker_host: Option<String>,
    /// Code servers starting at once.
    pub max_concurrent_starts: usize,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            ports: DEFAULT_PORTS,
            startup_timeout: Duration::from_secs(180),
            switch_grace: Duration::from_secs(30),
            keep_code_servers: false,
            code_server_user: None,
            run_dir: None,
            docker_host: std::env::var("DOCKER_HOST").ok(),
            max_concurrent_starts: 2 * std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// `(deployment, location)`.
type LocKey = (String, String);

/// What the agent knows of one registered location.
struct Loc {
    /// The revision the loop last saw.
    revision: i64,
    /// The key of the code server its document asks for, or why none can run.
    want: Result<String, PythonTrace>,
    /// The key of the code server in the workspace file.
    serving: Option<String>,
}

enum Handle {
    /// Being started (or stopped after a failure).
    None,
    Container(String),
    Process(process::Proc),
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Loading,
    Loaded,
    Failed(PythonTrace),
    /// Exited; restarted at `restart_at`.
    Exited(i64),
}

struct Server {
    deployment: String,
    location: String,
    revision: i64,
    /// Filled by the loop from the wished document (an adopted server has none until then).
    spec: Option<Spec>,
    port: Option<u16>,
    handle: Handle,
    phase: Phase,
    /// Distinguishes this entry from a later one with the same key (tasks check it).
    generation: u64,
    /// A task (start, load check) is working on it.
    busy: bool,
    /// Its start task is creating it and owns its port until the handle is installed: a
    /// server retired meanwhile leaves releasing the port to that task.
    launching: bool,
    retire_at: Option<Instant>,
    restarts: u32,
    restart_at: Option<Instant>,
    /// When it last became LOADED: one that served for `STABLE_AFTER` restarts without the
    /// backoff of its earlier crashes.
    loaded_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    locations: HashMap<LocKey, Loc>,
    /// By key (a key names deployment, location and what runs).
    servers: HashMap<String, Server>,
    /// What each deployment's workspace file lists now.
    published: HashMap<String, Vec<WorkspaceEntry>>,
}

/// One wished location, read from the store.
struct Wish {
    deployment: String,
    location: String,
    revision: i64,
    spec: Result<Spec, String>,
}

pub(crate) struct Agent {
    opts: AgentOptions,
    deployments: Deployments,
    blobs: BlobStore,
    workspaces: Workspaces,
    engine: docker::Engine,
    runner: Arc<process::Runner>,
    state: Mutex<State>,
    ports: Mutex<ports::Ports>,
    wake: Notify,
    starts: Semaphore,
    /// One permit per launch in flight (creating a container or spawning a process): shutdown
    /// waits for them, so a stop never leaves a half-made code server behind.
    launches: Semaphore,
    stopping: AtomicBool,
    /// Set by the first reconcile.
    reconciled: AtomicBool,
    generation: AtomicU64,
}

/// A code server found running at start, as its labels or pid file describe it.
struct Adopted {
    deployment: String,
    location: String,
    revision: i64,
    key: String,
    port: u16,
}

/// What a start task does.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    /// Create and start the code server.
    New,
    /// Start it again after it exited.
    Restart,
    /// It runs already (adopted): only check that it loaded.
    Check,
}

impl Agent {
    /// Prepares the agent and starts its loop.
    pub(crate) fn start(
        opts: AgentOptions,
        data_dir: &Path,
        deployments: Deployments,
        blobs: BlobStore,
        access: RegistryAccess,
        trusted: Vec<String>,
        workspaces: Workspaces,
    ) -> Result<Arc<Agent>, ServerError> {
        let server_id = server_id(data_dir)?;
        // SAFETY: geteuid has no failure mode.
        let root = unsafe { libc::geteuid() } == 0;
        let user = match (&opts.code_server_user, root) {
            (Some(u), _) => Some(u.as_str()),
            (None, true) => Some("nobody"),
            (None, false) => None,
        };
        let run_dir = opts.run_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("dagster-deploy-code-servers-{server_id}"))
        });
        let runner = process::Runner::new(run_dir, user).map_err(ServerError::Agent)?;
        let agent = Arc::new(Agent {
            engine: docker::Engine::new(opts.docker_host.clone(), server_id, access, trusted),
            runner: Arc::new(runner),
            ports: Mutex::new(ports::Ports::new(opts.ports.clone())),
            starts: Semaphore::new(opts.max_concurrent_starts.max(1)),
            launches: Semaphore::new(LAUNCH_SLOTS as usize),
            opts,
            deployments,
            workspaces,
            blobs,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            reconciled: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        });
        tokio::spawn(Arc::clone(&agent).run());
        Ok(agent)
    }

    /// Reconcile now rather than at the next tick.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The load status of `location` as it is now stored.
    pub(crate) fn status(&self, deployment: &str, location: &StoredLocation) -> LoadStatus {
        if let Some(why) = &location.damaged {
            return LoadStatus::Failed(PythonTrace::message(why.clone()));
        }
        let st = self.state();
        let key = (deployment.to_string(), location.name.clone());
        let Some(loc) = st
            .locations
            .get(&key)
            .filter(|l| l.revision == location.revision_id)
        else {
            drop(st);
            self.wake();
            return LoadStatus::Loading;
        };
        let failed = |trace: &PythonTrace, key: Option<&String>| {
            let serving = loc
                .serving
                .as_ref()
                .filter(|s| Some(*s) != key)
                .and_then(|s| st.servers.get(s));
            let mut trace = trace.clone();
            if let Some(old) = serving {
                trace.message = format!(
                    "Revision {} of location '{}' failed to load; revision {} keeps serving.\n{}",
                    location.revision_id, location.name, old.revision, trace.message
                );
            }
            LoadStatus::Failed(trace)
        };
        match &loc.want {
            Err(trace) => failed(trace, None),
            Ok(key) => match st.servers.get(key).map(|s| &s.phase) {
                // LOADED once the workspace file lists it, not a moment before.
                Some(Phase::Loaded) if loc.serving.as_ref() == Some(key) => LoadStatus::Loaded,
                Some(Phase::Loaded) => LoadStatus::Loading,
                Some(Phase::Failed(trace)) => failed(trace, Some(key)),
                Some(Phase::Loading | Phase::Exited(_)) | None => LoadStatus::Loading,
            },
        }
    }

    /// Stops what the agent started, unless told to leave code servers running.
    pub(crate) async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake();
        if self.opts.keep_code_servers {
            tracing::info!("leaving code servers running (--keep-code-servers)");
            return;
        }
        // Launches in flight finish first, and stop what they made themselves (`install` hands
        // it back once stopping): cut short, a container would stay behind "Created".
        let launches = self.launches.acquire_many(LAUNCH_SLOTS);
        if tokio::time::timeout(SHUTDOWN_LIMIT, launches)
            .await
            .is_err()
        {
            tracing::warn!(
                "a code server was still being created after {SHUTDOWN_LIMIT:?}; the next \
                 serve on this data folder removes it"
            );
        }
        let handles: Vec<Handle> = {
            let mut st = self.state();
            st.servers
                .drain()
                .map(|(_, mut s)| std::mem::replace(&mut s.handle, Handle::None))
                .collect()
        };
        let stops = handles.into_iter().map(|h| self.stop_handle(h));
        if tokio::time::timeout(SHUTDOWN_LIMIT, futures_util::future::join_all(stops))
            .await
            .is_err()
        {
            tracing::warn!("some code servers did not stop within {SHUTDOWN_LIMIT:?}");
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ports(&self) -> MutexGuard<'_, ports::Ports> {
        self.ports.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run(self: Arc<Self>) {
        self.adopt().await;
        while !self.stopping.load(Ordering::SeqCst) {
            self.reconcile().await;
            tokio::select! {
                _ = self.wake.notified() => {
                    // Let a burst of changes (one deploy of many locations) arrive first.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    // ---- adoption ------------------------------------------------------------------------

    /// Takes over the code servers a previous `serve` on this data folder left running.
    async fn adopt(self: &Arc<Self>) {
        let mut found = Vec::new();
        match self.engine.list().await {
            Ok(containers) => {
                for c in containers {
                    let exited = c.exited;
                    let handle = Handle::Container(c.id);
                    found.push((
                        c.deployment,
                        c.location,
                        c.revision,
                        c.key,
                        c.port,
                        handle,
                        exited,
                    ));
                }
            }
            Err(e) => tracing::info!("no code server containers adopted: {e}"),
        }
        for (r, proc) in self.runner.adopt() {
            let handle = Handle::Process(proc);
            found.push((
                r.deployment,
                r.location,
                r.revision,
                r.key,
                r.port,
                handle,
                None,
            ));
        }
        for (deployment, location, revision, key, port, handle, exited) in found {
            let adopted = Adopted {
                deployment,
                location,
                revision,
                key,
                port,
            };
            match self.adopted(adopted, handle, exited) {
                Ok(Some(key)) => self.spawn_start(key, Start::Check),
                Ok(None) => {}
                // The same code server twice (a crash mid-start): one is enough.
                Err(duplicate) => self.stop_handle(duplicate).await,
            }
        }
    }

    /// Records one adopted code server; the handle back when it duplicates one already
    /// adopted. Returns the key to check when it runs (one that exited is restarted).
    fn adopted(
        &self,
        a: Adopted,
        handle: Handle,
        exited: Option<i64>,
    ) -> Result<Option<String>, Handle> {
        let mut st = self.state();
        if st.servers.contains_key(&a.key) {
            return Err(handle);
        }
        tracing::info!(deployment = %a.deployment, location = %a.location, revision = a.revision, port = a.port, "adopting a code server left running");
        self.ports().claim(a.port);
        // Serving until the loop decides otherwise: a location keeps its workspace entry
        // through a restart of `serve`.
        st.locations
            .entry((a.deployment.clone(), a.location.clone()))
            .or_insert(Loc {
                revision: -1,
                want: Err(PythonTrace::default()),
                serving: Some(a.key.clone()),
            });
        let phase = match exited {
            Some(code) => Phase::Exited(code),
            None => Phase::Loading,
        };
        st.servers.insert(
            a.key.clone(),
            Server {
                deployment: a.deployment,
                location: a.location,
                revision: a.revision,
                spec: None,
                port: Some(a.port),
                handle,
                busy: exited.is_none(),
                phase,
                generation: self.generation.fetch_add(1, Ordering::Relaxed),
                retire_at: None,
                launching: false,
                restarts: 0,
                loaded_at: None,
                restart_at: exited.map(|_| Instant::now()),
            },
        );
        Ok(exited.is_none().then_some(a.key))
    }

    // ---- the loop ------------------------------------------------------------------------

    async fn reconcile(self: &Arc<Self>) {
        let deployments = self.deployments.clone();
        let blobs = self.blobs.clone();
        let read = tokio::task::spawn_blocking(move || wishes(&deployments, &blobs)).await;
        let (wishes, active) = match read {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => {
                tracing::warn!("agent: cannot read the registered locations: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!("agent: reading the registered locations failed: {e}");
                return;
            }
        };
        let containers = self.container_states().await;
        let now = Instant::now();
        let mut starts = Vec::new();
        let mut stops = Vec::new();
        let mut publish = Vec::new();
        {
            let mut st = self.state();
            let st = &mut *st;
            let mut wished: HashSet<LocKey> = HashSet::new();
            for w in wishes {
                let lk = (w.deployment.clone(), w.location.clone());
                wished.insert(lk.clone());
                let want = match w.spec {
                    Ok(spec) => {
                        let key = spec.key.clone();
                        self.wish_server(st, spec, &mut starts);
                        Ok(key)
                    }
                    Err(message) => Err(PythonTrace::message(message)),
                };
                let loc = st.locations.entry(lk).or_insert(Loc {
                    revision: w.revision,
                    want: want.clone(),
                    serving: None,
                });
                loc.revision = w.revision;
                loc.want = want;
            }
            self.watch_exits(st, containers.as_ref(), now, &mut starts);
            let mut dirty: HashSet<String> = HashSet::new();
            // Switch each location to its wished code server once that one is LOADED.
            for ((deployment, location), loc) in st.locations.iter_mut() {
                if let Ok(key) = &loc.want
                    && st
                        .servers
                        .get(key)
                        .is_some_and(|s| s.phase == Phase::Loaded)
                    && loc.serving.as_ref() != Some(key)
                {
                    if let Some(old) = loc.serving.replace(key.clone())
                        && let Some(s) = st.servers.get_mut(&old)
                    {
                        s.retire_at = Some(now + self.opts.switch_grace);
                    }
                    tracing::info!(deployment, location, "switched to its new code server");
                    dirty.insert(deployment.clone());
                }
                if let Some(key) = &loc.serving
                    && !st.servers.contains_key(key)
                {
                    loc.serving = None;
                    dirty.insert(deployment.clone());
                }
            }
            // Locations no longer registered (or in a closed deployment).
            st.locations.retain(|lk, _| {
                let keep = wished.contains(lk);
                if !keep {
                    dirty.insert(lk.0.clone());
                }
                keep
            });
            // Code servers nobody asks for, once their grace period is over.
            let retire: Vec<String> = st
                .servers
                .iter()
                .filter(|(key, s)| {
                    let loc = st
                        .locations
                        .get(&(s.deployment.clone(), s.location.clone()));
                    let wanted = loc.is_some_and(|l| {
                        l.want.as_ref().ok() == Some(*key) || l.serving.as_ref() == Some(*key)
                    });
                    // A replaced code server finishes what it serves for the grace period;
                    // one whose location is gone stops at once.
                    let in_grace = loc.is_some() && s.retire_at.is_some_and(|t| t > now);
                    !wanted && !in_grace
                })
                .map(|(key, _)| key.clone())
                .collect();
            for key in retire {
                if let Some(mut s) = st.servers.remove(&key) {
                    tracing::info!(deployment = %s.deployment, location = %s.location, revision = s.revision, "stopping code server");
                    let port = if s.launching { None } else { s.port };
                    stops.push((std::mem::replace(&mut s.handle, Handle::None), port));
                }
            }
            // Each deployment's workspace file, when its entries changed.
            let mut by_deployment: HashMap<String, Vec<WorkspaceEntry>> = HashMap::new();
            for ((deployment, location), loc) in &st.locations {
                if let Some(port) = loc
                    .serving
                    .as_ref()
                    .and_then(|k| st.servers.get(k))
                    .and_then(|s| s.port)
                {
                    by_deployment
                        .entry(deployment.clone())
                        .or_default()
                        .push(WorkspaceEntry {
                            location: location.clone(),
                            host: "127.0.0.1".into(),
                            port,
                        });
                }
            }
            // The first pass rewrites every deployment's file: what ran before may be gone.
            if !self.reconciled.swap(true, Ordering::SeqCst) {
                dirty.extend(active.iter().cloned());
            }
            let names: HashSet<String> = st
                .published
                .keys()
                .cloned()
                .chain(by_deployment.keys().cloned())
                .chain(dirty.iter().cloned())
                .collect();
            for deployment in names {
                let mut entries = by_deployment.remove(&deployment).unwrap_or_default();
                entries.sort_by(|a, b| a.location.cmp(&b.location));
                let was = st.published.get(&deployment);
                let changed = match was {
                    Some(was) => *was != entries,
                    None => !entries.is_empty() || dirty.contains(&deployment),
                };
                if changed {
                    publish.push((deployment.clone(), entries.clone()));
                    if entries.is_empty() && !active.contains(&deployment) {
                        st.published.remove(&deployment);
                    } else {
                        st.published.insert(deployment, entries);
                    }
                }
            }
        }
        for (deployment, entries) in publish {
            match self.workspaces.publish(&deployment, &entries) {
                Ok(file) => {
                    tracing::info!(deployment, entries = entries.len(), file = %file.display(), "published the workspace")
                }
                Err(e) => tracing::warn!(deployment, "cannot write the workspace file: {e}"),
            }
        }
        for (handle, port) in stops {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                this.stop_handle(handle).await;
                if let Some(port) = port {
                    this.ports().release(port);
                }
            });
        }
        for (key, how) in starts {
            self.spawn_start(key, how);
        }
    }

    /// Makes sure a code server for `spec` exists (or is retried after a re-registration).
    fn wish_server(&self, st: &mut State, spec: Spec, starts: &mut Vec<(String, Start)>) {
        let key = spec.key.clone();
        if let Some(s) = st.servers.get_mut(&key) {
            // Wished again while in its grace period (a rollback): it serves again at once.
            s.retire_at = None;
            let retry =
                matches!(s.phase, Phase::Failed(_)) && s.revision != spec.revision && !s.busy;
            s.revision = spec.revision;
            s.spec = Some(spec);
            if retry {
                s.phase = Phase::Loading;
                s.busy = true;
                starts.push((key, Start::New));
            }
            return;
        }
        tracing::info!(deployment = %spec.deployment, location = %spec.location, revision = spec.revision, "starting a code server");
        st.servers.insert(
            key.clone(),
            Server {
                deployment: spec.deployment.clone(),
                location: spec.location.clone(),
                revision: spec.revision,
                spec: Some(spec),
                port: None,
                handle: Handle::None,
                phase: Phase::Loading,
                generation: self.generation.fetch_add(1, Ordering::Relaxed),
                busy: true,
                retire_at: None,
                launching: false,
                restarts: 0,
                loaded_at: None,
                restart_at: None,
            },
        );
        starts.push((key, Start::New));
    }

    /// Marks code servers that exited, and restarts those whose backoff is over.
    fn watch_exits(
        &self,
        st: &mut State,
        containers: Option<&HashMap<String, Option<i64>>>,
        now: Instant,
        starts: &mut Vec<(String, Start)>,
    ) {
        for (key, s) in st.servers.iter_mut() {
            if s.busy {
                continue;
            }
            match s.phase {
                Phase::Loaded | Phase::Loading => {
                    let code = match &mut s.handle {
                        Handle::Process(p) => p.exited(),
                        // Gone from the engine's list, or stopped (not known: the engine did
                        // not answer).
                        Handle::Container(id) => match containers.map(|c| c.get(id)) {
                            Some(Some(exited)) => *exited,
                            Some(None) => Some(-1),
                            None => None,
                        },
                        Handle::None => None,
                    };
                    if let Some(code) = code {
                        let backoff = s.restart_later(code, now);
                        tracing::warn!(deployment = %s.deployment, location = %s.location, revision = s.revision, code, "code server exited; restarting after exit code {code} in {backoff:?}");
                    }
                }
                Phase::Exited(_) if s.restart_at.is_some_and(|t| t <= now) => {
                    s.phase = Phase::Loading;
                    s.busy = true;
                    s.restart_at = None;
                    starts.push((key.clone(), Start::Restart));
                }
                _ => {}
            }
        }
    }

    /// Running state of this server's containers by id; `None` when there are none, or the
    /// engine does not answer (then no container is taken as exited).
    async fn container_states(&self) -> Option<HashMap<String, Option<i64>>> {
        let any = self
            .state()
            .servers
            .values()
            .any(|s| matches!(s.handle, Handle::Container(_)));
        if !any {
            return None;
        }
        let list = self.engine.list().await.ok()?;
        Some(list.into_iter().map(|c| (c.id, c.exited)).collect())
    }
}

/// Every wished location (deployments whose branch is closed excluded), and the names of the
/// deployments that exist and are not closed.
fn wishes(
    deployments: &Deployments,
    blobs: &BlobStore,
) -> Result<(Vec<Wish>, HashSet<String>), super::error::DeployError> {
    let mut wishes = Vec::new();
    let mut active = HashSet::new();
    for d in deployments.deployments()? {
        let closed = d.kind == DeploymentKind::Branch
            && d.branch.as_ref().is_some_and(|b| {
                matches!(
                    b.pull_request_status.as_deref(),
                    Some("CLOSED") | Some("MERGED")
                )
            });
        if closed {
            continue;
        }
        active.insert(d.name.clone());
        for l in deployments.locations(&d.name)? {
            let spec = match &l.damaged {
                Some(why) => Err(why.clone()),
                None => spec::spec(&d.name, &l.name, l.revision_id, &l.document, blobs),
            };
            wishes.push(Wish {
                deployment: d.name.clone(),
                location: l.name,
                revision: l.revision_id,
                spec,
            });
        }
    }
    Ok((wishes, active))
}

/// This server's id (labels on its containers), made once per data folder.
fn server_id(data_dir: &Path) -> Result<String, ServerError> {
    let file = data_dir.join(SERVER_ID_FILE);
    let data_dir_error = |source: std::io::Error| ServerError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(&file) {
        Ok(id) if id.trim().len() == 16 && id.trim().bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Ok(id.trim().to_string());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(data_dir_error(e)),
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| data_dir_error(std::io::Error::other(e.to_string())))?;
    let id = crate::protocol::hex(&bytes);
    std::fs::write(&file, &id).map_err(data_dir_error)?;
    Ok(id)
}

impl Server {
    /// Marks it exited with `code` and schedules its restart after the backoff its crashes
    /// earned (forgotten once it had served for `STABLE_AFTER`); returns the backoff.
    fn restart_later(&mut self, code: i64, now: Instant) -> Duration {
        if self
            .loaded_at
            .is_some_and(|t| now.duration_since(t) >= STABLE_AFTER)
        {
            self.restarts = 0;
        }
        self.restarts += 1;
        let backoff = backoff(self.restarts);
        self.phase = Phase::Exited(code);
        self.restart_at = Some(now + backoff);
        backoff
    }
}

/// 1 s, 2 s, 4 s, ... up to `MAX_BACKOFF`.
fn backoff(restarts: u32) -> Duration {
    Duration::from_secs(1u64 << restarts.saturating_sub(1).min(6)).min(MAX_BACKOFF)
}
