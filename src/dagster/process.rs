//! A long-running child process kept alive: started in its own process group with a minimal
//! environment and its output appended to a log file, restarted when it exits, stopped with
//! SIGTERM to the whole group, a grace period, then SIGKILL.
//! (`child_process` says why.)

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::child_process::signal_group;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How to run one process.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Names it in log lines (`dagster-webserver for prod`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The whole environment: nothing of the server's own is passed on.
    pub env: Vec<(String, OsString)>,
    pub cwd: PathBuf,
    /// stdout and stderr are appended here.
    pub log: PathBuf,
    /// Between SIGTERM and SIGKILL when stopping.
    pub grace: Duration,
}

/// A supervised process; `stop` ends it (dropping it does too, without waiting).
pub struct Supervised {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// First restart delay; doubled after each quick exit up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long counts as healthy: the next crash restarts after `MIN_BACKOFF` again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

impl Supervised {
    /// Starts `spec` now and keeps it running (needs a tokio runtime).
    pub fn start(spec: Spec) -> Supervised {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(spec, stopped));
        Supervised {
            stop,
            task: Some(task),
        }
    }

    /// Stops the process (SIGTERM to its group, SIGKILL after the grace period) and waits.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn supervise(spec: Spec, mut stopped: watch::Receiver<bool>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let began = Instant::now();
        match spawn(&spec) {
            Ok(mut child) => {
                tracing::info!(
                    "{} started (pid {}; log {})",
                    spec.name,
                    child.id().unwrap_or(0),
                    spec.log.display()
                );
                tokio::select! {
                    status = child.wait() => {
                        let how = match status {
                            Ok(s) => s.to_string(),
                            Err(e) => e.to_string(),
                        };
                        if began.elapsed() >= HEALTHY_RUN {
                            backoff = MIN_BACKOFF;
                        }
                        tracing::warn!(
                            "{} exited ({how}); restarting in {}s (its log: {})",
                            spec.name,
                            backoff.as_secs(),
                            spec.log.display()
                        );
                    }
                    _ = until_true(&mut stopped) => {
                        terminate(&spec, &mut child).await;
                        return;
                    }
                }
            }
            Err(e) => tracing::error!(
                "cannot start {} ({}): {e}; retrying in {}s",
                spec.name,
                spec.program.display(),
                backoff.as_secs()
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = until_true(&mut stopped) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn spawn(spec: &Spec) -> std::io::Result<Child> {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&spec.log)?;
    let mut cmd = std::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    crate::child_process::own_group_default_signals(&mut cmd);
    Command::from(cmd).spawn()
}

/// SIGTERM to the child's group, then SIGKILL once the grace period has passed.
async fn terminate(spec: &Spec, child: &mut Child) {
    let Some(pid) = child.id() else {
        return; // already reaped
    };
    let group = pid as libc::pid_t;
    signal_group(group, libc::SIGTERM);
    if tokio::time::timeout(spec.grace, child.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} did not stop {}s after SIGTERM: killing it",
            spec.name,
            spec.grace.as_secs()
        );
    }
    // The leader may be gone while children it started are not: the group gets SIGKILL anyway.
    signal_group(group, libc::SIGKILL);
    let _ = child.wait().await;
    tracing::info!("{} stopped", spec.name);
}

/// Returns once `flag` is true (or its sender is gone, which means the same).
pub(crate) async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await;
}
