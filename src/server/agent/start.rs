//! Starting one code server (or restarting it, or checking one adopted) and waiting until it
//! loaded: gRPC health until SERVING within the startup timeout, then ListRepositories, whose
//! answer is LOADED or the Python error. A code server that failed to load is removed; its
//! status stays, as the location's load error.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::grpc::{CodeServer, Loaded};
use super::process::{LOG_TAIL_LINES, strip_colours};
use super::spec::{Runtime, Spec};
use super::{Agent, HEALTH_POLL, HEALTH_TIMEOUT, Handle, Phase, Start};
use crate::server::load_status::PythonTrace;

impl Agent {
    pub(super) fn spawn_start(self: &Arc<Self>, key: String, how: Start) {
        let this = Arc::clone(self);
        tokio::spawn(async move { this.start_task(key, how).await });
    }

    /// Starts (or restarts, or only checks) one code server, then waits until it loaded.
    async fn start_task(self: Arc<Self>, key: String, how: Start) {
        let Ok(_permit) = self.starts.acquire().await else {
            return;
        };
        let started = Instant::now();
        let Some((generation, spec, port)) = self.prepare_start(&key, how) else {
            return;
        };
        if how != Start::Check {
            let Ok(_launch) = self.launches.acquire().await else {
                return;
            };
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let handle = match self.launch(&key, spec.as_ref(), port, how).await {
                Ok(h) => h,
                Err(message) => {
                    let failed = Phase::Failed(PythonTrace::message(message));
                    if !self.finish(&key, generation, failed, how) {
                        // Retired while launching: the port was left to this task.
                        self.ports().release(port);
                    }
                    return;
                }
            };
            if let Some(orphan) = self.install(&key, generation, handle) {
                // Retired while starting.
                self.stop_handle(orphan).await;
                self.ports().release(port);
                return;
            }
        }
        let outcome = self.wait_loaded(&key, generation, port).await;
        if let Phase::Loaded = outcome {
            tracing::info!(
                key = super::spec::short(&key),
                port,
                seconds = started.elapsed().as_secs_f64(),
                "code server LOADED"
            );
        }
        self.finish(&key, generation, outcome, how);
    }

    /// The entry's generation, spec and port (a new port when it has none); `None` when the
    /// entry is gone or no port is free (then it failed).
    fn prepare_start(&self, key: &str, how: Start) -> Option<(u64, Option<Spec>, u16)> {
        let mut st = self.state();
        let s = st.servers.get_mut(key)?;
        if how != Start::Check && s.spec.is_none() {
            // Adopted and never wished again: the loop stops it.
            s.busy = false;
            return None;
        }
        let port = match s.port {
            Some(p) => p,
            None => match self.ports().allocate() {
                Some(p) => {
                    s.port = Some(p);
                    p
                }
                None => {
                    let range = &self.opts.ports;
                    s.phase = Phase::Failed(PythonTrace::message(format!(
                        "location '{}': every code-server port of {}-{} is in use; stop other \
                     programs using them, or give serve a larger --code-server-ports range",
                        s.location,
                        range.start(),
                        range.end()
                    )));
                    s.busy = false;
                    return None;
                }
            },
        };
        s.launching = how != Start::Check;
        Some((s.generation, s.spec.clone(), port))
    }

    /// Starts the process or container.
    async fn launch(
        &self,
        key: &str,
        spec: Option<&Spec>,
        port: u16,
        how: Start,
    ) -> Result<Handle, String> {
        let spec = spec.ok_or_else(|| "no document asks for this code server".to_string())?;
        match &spec.runtime {
            Runtime::Image(image) => {
                let existing = match &self.state().servers.get(key).map(|s| &s.handle) {
                    Some(Handle::Container(id)) if how == Start::Restart => Some(id.clone()),
                    _ => None,
                };
                match existing {
                    Some(id) if self.engine.restart(&id).await.is_ok() => Ok(Handle::Container(id)),
                    _ => self
                        .engine
                        .start(spec, image, port)
                        .await
                        .map(Handle::Container),
                }
            }
            Runtime::Pex {
                python_version,
                deps,
                source,
            } => {
                if how == Start::Restart {
                    let old = self
                        .state()
                        .servers
                        .get_mut(key)
                        .map(|s| std::mem::replace(&mut s.handle, Handle::None));
                    if let Some(old) = old {
                        self.stop_handle(old).await;
                    }
                }
                let runner = Arc::clone(&self.runner);
                let (spec, v, d, s) = (
                    spec.clone(),
                    python_version.clone(),
                    deps.clone(),
                    source.clone(),
                );
                // Copies files and forks: off the async threads.
                tokio::task::spawn_blocking(move || runner.start(&spec, &v, &d, &s, port))
                    .await
                    .map_err(|e| format!("starting the code server failed: {e}"))?
                    .map(Handle::Process)
            }
        }
    }

    /// Puts the started handle in its entry; gives it back when the entry is gone.
    fn install(&self, key: &str, generation: u64, handle: Handle) -> Option<Handle> {
        let mut st = self.state();
        if self.stopping.load(Ordering::SeqCst) {
            return Some(handle);
        }
        match st.servers.get_mut(key) {
            Some(s) if s.generation == generation => {
                s.handle = handle;
                s.launching = false;
                None
            }
            _ => Some(handle),
        }
    }

    /// Records how the start ended; `false` when the entry is gone. A new code server that
    /// failed to load is stopped (its status stays, for the location's load error); one that
    /// served before (restarted or adopted) is tried again with backoff, since what failed may
    /// be passing (a database down, a busy host).
    fn finish(self: &Arc<Self>, key: &str, generation: u64, phase: Phase, how: Start) -> bool {
        let stop = {
            let mut st = self.state();
            let Some(s) = st
                .servers
                .get_mut(key)
                .filter(|s| s.generation == generation)
            else {
                return false;
            };
            s.busy = false;
            s.launching = false;
            if let Phase::Failed(trace) = &phase {
                tracing::warn!(deployment = %s.deployment, location = %s.location, revision = s.revision, "code server failed to load: {}", trace.message.trim_end());
            }
            let failed = match phase {
                Phase::Failed(_) if how != Start::New => {
                    let backoff = s.restart_later(-1, Instant::now());
                    tracing::warn!(deployment = %s.deployment, location = %s.location, revision = s.revision, "restarting the code server in {backoff:?}");
                    false
                }
                phase => {
                    if phase == Phase::Loaded {
                        s.loaded_at = Some(Instant::now());
                    }
                    let failed = matches!(phase, Phase::Failed(_));
                    s.phase = phase;
                    failed
                }
            };
            failed.then(|| {
                (
                    std::mem::replace(&mut s.handle, Handle::None),
                    s.port.take(),
                )
            })
        };
        if let Some((handle, port)) = stop {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                this.stop_handle_as(handle, false).await;
                if let Some(port) = port {
                    this.ports().release(port);
                }
            });
        }
        self.wake();
        true
    }

    /// Health until SERVING, then ListRepositories: LOADED or the load error.
    async fn wait_loaded(&self, key: &str, generation: u64, port: u16) -> Phase {
        let limit = self.opts.startup_timeout;
        let deadline = Instant::now() + limit;
        let location = self
            .state()
            .servers
            .get(key)
            .map(|s| s.location.clone())
            .unwrap_or_default();
        let health = match CodeServer::new("127.0.0.1", port, HEALTH_TIMEOUT) {
            Ok(c) => c,
            Err(e) => return Phase::Failed(PythonTrace::message(e)),
        };
        let mut last;
        loop {
            if let Some(code) = self.exited(key, generation).await {
                return Phase::Failed(PythonTrace::message(format!(
                    "location '{location}': the code server exited with code {code} before \
                     serving{}",
                    self.log_tail(key).await
                )));
            }
            match health.serving().await {
                Ok(true) => break,
                Ok(false) => last = "NOT_SERVING".into(),
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                return Phase::Failed(PythonTrace::message(format!(
                    "location '{location}': the code server did not answer its health check within \
                     {} s (last: {last}); raise --code-server-startup-timeout if its code takes \
                     longer to import{}",
                    limit.as_secs(),
                    self.log_tail(key).await
                )));
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(HEALTH_TIMEOUT);
        let list = match CodeServer::new("127.0.0.1", port, remaining) {
            Ok(c) => c.list_repositories().await,
            Err(e) => Err(e),
        };
        match list {
            Ok(Loaded::Ok(_)) => Phase::Loaded,
            Ok(Loaded::Error(trace)) => Phase::Failed(trace),
            Err(e) => Phase::Failed(PythonTrace::message(format!(
                "location '{location}': the code server answered its health check but not \
                 ListRepositories: {e}"
            ))),
        }
    }

    /// The exit code when the entry's code server has ended (or the entry is gone).
    async fn exited(&self, key: &str, generation: u64) -> Option<i64> {
        let container = {
            let mut st = self.state();
            match st
                .servers
                .get_mut(key)
                .filter(|s| s.generation == generation)
            {
                None => return Some(-1),
                Some(s) => match &mut s.handle {
                    Handle::Process(p) => return p.exited(),
                    Handle::Container(id) => id.clone(),
                    Handle::None => return None,
                },
            }
        };
        self.engine.exited(&container).await.ok().flatten()
    }

    /// The end of the code server's output, for a load error when it exits or hangs.
    async fn log_tail(&self, key: &str) -> String {
        let container = {
            let st = self.state();
            match st.servers.get(key).map(|s| &s.handle) {
                Some(Handle::Process(p)) => Err(p.log_tail()),
                Some(Handle::Container(id)) => Ok(id.clone()),
                _ => Err(String::new()),
            }
        };
        let tail = match container {
            Ok(id) => self.engine.log_tail(&id, LOG_TAIL_LINES).await,
            Err(tail) => tail,
        };
        let tail = strip_colours(tail.trim_end());
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its output ends with:\n{tail}")
        }
    }

    /// Stops a code server: gracefully when it may be serving, at once when it failed.
    pub(super) async fn stop_handle(&self, handle: Handle) {
        self.stop_handle_as(handle, true).await;
    }

    async fn stop_handle_as(&self, handle: Handle, graceful: bool) {
        match handle {
            Handle::None => {}
            Handle::Container(id) => self.engine.remove(&id, graceful).await,
            Handle::Process(p) => {
                let _ = tokio::task::spawn_blocking(move || p.stop()).await;
            }
        }
    }
}
