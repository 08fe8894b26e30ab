//! One deployment's Dagster UI: `dagster-webserver` and `dagster-daemon` reading the workspace
//! file the agent publishes, each a supervised child process (`process`), with their own
//! `DAGSTER_HOME` (runs, schedules and event logs persist there; telemetry off) and log files.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::graphql;
use super::install::{self, Install};
use super::process::{Spec, Supervised, until_true};

/// What to run for one deployment.
#[derive(Debug, Clone)]
pub struct UiOptions {
    pub deployment: String,
    /// Where the webserver listens.
    pub addr: SocketAddr,
    /// The deployment's `workspace.yaml` (it must exist).
    pub workspace: PathBuf,
    /// Holds `home/` (DAGSTER_HOME) and `logs/`.
    pub dir: PathBuf,
}

impl UiOptions {
    /// `http://addr`: the UI, and the base of its GraphQL API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Between SIGTERM and SIGKILL: the daemon takes about 3 s to stop, the webserver less.
const GRACE: Duration = Duration::from_secs(10);
/// How long a first start may take before the log says something is wrong.
const READY_WITHIN: Duration = Duration::from_secs(180);

/// Installs Dagster if needed, runs the webserver and daemon until `stop` turns true, then
/// stops both. Failures are logged (the server keeps serving the API without a UI).
pub async fn run(opts: UiOptions, mut stop: watch::Receiver<bool>) {
    let install = tokio::select! {
        found = find_or_install() => found,
        _ = until_true(&mut stop) => return,
    };
    let install = match install {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(
                "no Dagster UI for deployment {}: cannot install dagster: {e}",
                opts.deployment
            );
            return;
        }
    };
    let (webserver, daemon) = match specs(&opts, &install) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "no Dagster UI for deployment {}: cannot prepare {}: {e}",
                opts.deployment,
                opts.dir.display()
            );
            return;
        }
    };
    let webserver = Supervised::start(webserver);
    let daemon = Supervised::start(daemon);
    tokio::select! {
        _ = announce_when_ready(&opts) => {}
        _ = until_true(&mut stop) => {}
    }
    until_true(&mut stop).await;
    tokio::join!(webserver.stop(), daemon.stop());
}

/// The install runs on a thread of its own: pip may take a minute, and a server stopped
/// meanwhile must not wait for it.
async fn find_or_install() -> Result<Install, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let found = install::find_or_install(&|m| tracing::info!("{m}"));
        let _ = tx.send(found.map_err(|e| e.to_string()));
    });
    rx.await
        .unwrap_or_else(|_| Err("the install thread ended".into()))
}

fn specs(opts: &UiOptions, install: &Install) -> std::io::Result<(Spec, Spec)> {
    let home = opts.dir.join("home");
    let logs = opts.dir.join("logs");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&logs)?;
    // Without it the webserver prints a telemetry banner and reports usage.
    std::fs::write(home.join("dagster.yaml"), "telemetry:\n  enabled: false\n")?;
    let env = environment(install, &home);
    let workspace = opts.workspace.as_os_str().to_owned();
    let spec = |name: &str, program: &Path, args: Vec<OsString>, log: &str| Spec {
        name: format!("{name} for deployment {}", opts.deployment),
        program: program.to_path_buf(),
        args,
        env: env.clone(),
        cwd: home.clone(),
        log: logs.join(log),
        grace: GRACE,
    };
    let webserver = spec(
        "dagster-webserver",
        &install.webserver,
        vec![
            "-h".into(),
            opts.addr.ip().to_string().into(),
            "-p".into(),
            opts.addr.port().to_string().into(),
            "-w".into(),
            workspace.clone(),
        ],
        "webserver.log",
    );
    let daemon = spec(
        "dagster-daemon",
        &install.daemon,
        vec!["run".into(), "-w".into(), workspace],
        "daemon.log",
    );
    Ok((webserver, daemon))
}

/// Only what Dagster needs: never the server's own environment (tokens, registry password).
fn environment(install: &Install, home: &Path) -> Vec<(String, OsString)> {
    let mut path = install.bin_dir().into_os_string();
    path.push(":/usr/local/bin:/usr/bin:/bin");
    let mut env = vec![
        ("PATH".to_string(), path),
        ("DAGSTER_HOME".to_string(), home.as_os_str().to_owned()),
        ("LANG".to_string(), "C.UTF-8".into()),
    ];
    for keep in ["HOME", "TMPDIR", "TZ"] {
        if let Some(v) = std::env::var_os(keep) {
            env.push((keep.to_string(), v));
        }
    }
    env
}

/// Logs one line once the webserver answers, or a warning if it does not in time.
async fn announce_when_ready(opts: &UiOptions) {
    let http = reqwest::Client::new();
    let url = opts.url();
    let began = Instant::now();
    while began.elapsed() < READY_WITHIN {
        if graphql::is_up(&http, &url).await {
            tracing::info!(
                "Dagster UI for deployment {} at {url} (workspace {})",
                opts.deployment,
                opts.workspace.display()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::warn!(
        "the Dagster webserver for deployment {} does not answer at {url} after {}s; see {}",
        opts.deployment,
        READY_WITHIN.as_secs(),
        opts.dir.join("logs/webserver.log").display()
    );
}
