//! The Dagster `workspace.yaml` of each deployment: the `grpc_server` entries of the code servers
//! the agent has running and LOADED, written atomically under
//! `data_dir/dagster/<deployment>/workspace.yaml` so that a `dagster-webserver -w <file>` (ours or
//! the user's) loads every location. See docs/protocol.md, "Running the code".
//!
//! The agent (`agent`) decides what is serving and calls `publish`; this module owns the file
//! and telling a Dagster webserver to `reloadWorkspace` when entries are added or removed.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::private_fs;
use crate::dagster::graphql::{self, ReloadError};

/// One location's serving code server, as the webserver reaches it from the server's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceEntry {
    pub location: String,
    pub host: String,
    pub port: u16,
}

/// A Dagster webserver reading a deployment's workspace file, told to reload it on change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webserver {
    pub deployment: String,
    /// Its base URL (`http://127.0.0.1:3001`, plus any `--path-prefix`).
    pub url: String,
}

/// The workspace files of every deployment under one data directory.
#[derive(Debug, Clone)]
pub struct Workspaces {
    root: PathBuf,
    webservers: Vec<Webserver>,
    /// One reload worker per webserver, started on its first change; a new value asks it to
    /// reload (several changes while it works become one more reload).
    reloads: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
    /// Held while a file is compared, written and renamed: `serve` (`ensure`) and the agent
    /// (`publish`) write at the same time at start, and the loser's rename found the shared
    /// temporary file gone.
    writing: Arc<Mutex<()>>,
}

impl Workspaces {
    pub fn new(data_dir: &Path) -> Self {
        // Absolute: webservers run in folders of their own and print this path to users.
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        Workspaces {
            root: data_dir.join("dagster"),
            webservers: Vec::new(),
            reloads: Arc::default(),
            writing: Arc::default(),
        }
    }

    /// Also tells these webservers to reload when their deployment's entries change.
    pub fn with_webservers(mut self, webservers: Vec<Webserver>) -> Self {
        self.webservers = webservers;
        self
    }

    /// The folder of `deployment`'s Dagster files: the workspace file, and the `home/`
    /// (DAGSTER_HOME) and `logs/` of the UI `serve` runs for it.
    pub fn dir(&self, deployment: &str) -> PathBuf {
        self.root.join(deployment)
    }

    /// Where `deployment`'s workspace file is (whether or not it exists yet).
    pub fn file(&self, deployment: &str) -> PathBuf {
        self.dir(deployment).join("workspace.yaml")
    }

    /// Writes an empty workspace file for `deployment` unless it has one (a webserver cannot
    /// start on a missing file).
    pub fn ensure(&self, deployment: &str) -> io::Result<PathBuf> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let file = self.file(deployment);
        if file.exists() {
            return Ok(file);
        }
        // Nothing reads it yet: no reload.
        self.write_locked(deployment, &[]).map(|(file, _)| file)
    }

    /// Replaces `deployment`'s workspace file with `entries` (sorted by location), atomically:
    /// a webserver reading it never sees half a file. When the entries changed, the
    /// deployment's webservers are told to reload in the background (this never waits for
    /// them; failures are logged).
    pub fn publish(&self, deployment: &str, entries: &[WorkspaceEntry]) -> io::Result<PathBuf> {
        let (file, changed) = {
            let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
            self.write_locked(deployment, entries)?
        };
        if changed {
            self.request_reloads(deployment);
        }
        Ok(file)
    }

    /// Writes the file (the caller holds `writing`); says whether its entries changed.
    fn write_locked(
        &self,
        deployment: &str,
        entries: &[WorkspaceEntry],
    ) -> io::Result<(PathBuf, bool)> {
        let file = self.file(deployment);
        let dir = file.parent().unwrap_or(&self.root);
        private_fs::dir(dir)?;
        let mut sorted: Vec<&WorkspaceEntry> = entries.iter().collect();
        sorted.sort_by(|a, b| a.location.cmp(&b.location));
        let text = render(&sorted);
        // The text is a function of the sorted entries: same text, same entries.
        let changed = std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str());
        let tmp = dir.join("workspace.yaml.tmp");
        {
            let mut f = private_fs::file_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &file)?;
        Ok((file, changed))
    }

    fn request_reloads(&self, deployment: &str) {
        let Ok(mut reloads) = self.reloads.lock() else {
            return;
        };
        for ws in self
            .webservers
            .iter()
            .filter(|w| w.deployment == deployment)
        {
            if let Some(tx) = reloads.get(&ws.url) {
                tx.send_modify(|n| *n += 1);
                continue;
            }
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::warn!(
                    "cannot tell the Dagster webserver {} (deployment {deployment}) to reload: \
                     no async runtime",
                    ws.url
                );
                continue;
            };
            let (tx, mut rx) = watch::channel(0);
            // This change is the worker's first: its first `changed()` returns at once.
            rx.mark_changed();
            runtime.spawn(reload_worker(ws.clone(), rx));
            reloads.insert(ws.url.clone(), tx);
        }
    }
}

/// Delays between attempts to reach a webserver: about three minutes in all, long enough for
/// one that is still starting (a first start installs dagster, about a minute, then takes 5 to
/// 20 s).
const RETRY_DELAYS: [Duration; 16] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(15),
];

/// Reloads `ws` each time its deployment's entries change, until the `Workspaces` is gone.
async fn reload_worker(ws: Webserver, mut changes: watch::Receiver<u64>) {
    let http = reqwest::Client::new();
    while changes.changed().await.is_ok() {
        changes.borrow_and_update();
        let mut delays = RETRY_DELAYS.iter();
        loop {
            match graphql::reload_workspace(&http, &ws.url).await {
                Ok(names) => {
                    tracing::info!(
                        "Dagster webserver {} reloaded the workspace of deployment {}: {} \
                         location(s)",
                        ws.url,
                        ws.deployment,
                        names.len()
                    );
                    break;
                }
                Err(e) => match delays.next().filter(|_| e.is_retryable()) {
                    Some(delay) => {
                        tracing::debug!("reloading {}: {e}; retrying", ws.url);
                        tokio::time::sleep(*delay).await;
                    }
                    None => {
                        log_failure(&ws, &e);
                        break;
                    }
                },
            }
        }
    }
}

fn log_failure(ws: &Webserver, e: &ReloadError) {
    tracing::warn!(
        "cannot make the Dagster webserver {} reload the workspace of deployment {}: {e}; it \
         shows the previous locations until it reloads (its Reload button) or restarts",
        ws.url,
        ws.deployment
    );
}

#[derive(Serialize)]
struct GrpcServer<'a> {
    host: &'a str,
    port: u16,
    location_name: &'a str,
}

#[derive(Serialize)]
struct LoadFrom<'a> {
    grpc_server: GrpcServer<'a>,
}

#[derive(Serialize)]
struct File<'a> {
    load_from: Vec<LoadFrom<'a>>,
}

fn render(entries: &[&WorkspaceEntry]) -> String {
    let doc = File {
        load_from: entries
            .iter()
            .map(|e| LoadFrom {
                grpc_server: GrpcServer {
                    host: &e.host,
                    port: e.port,
                    location_name: &e.location,
                },
            })
            .collect(),
    };
    let body = serde_yaml_ng::to_string(&doc).unwrap_or_else(|_| "load_from: []\n".to_string());
    format!(
        "# Written by dagster-deploy serve: the code servers its agent runs. Do not edit.\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_writes_sorted_grpc_server_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Workspaces::new(dir.path());
        let entries = vec![
            WorkspaceEntry {
                location: "b".into(),
                host: "127.0.0.1".into(),
                port: 4001,
            },
            WorkspaceEntry {
                location: "a".into(),
                host: "127.0.0.1".into(),
                port: 4000,
            },
        ];
        let file = ws.publish("prod", &entries).expect("publish");
        assert_eq!(file, dir.path().join("dagster/prod/workspace.yaml"));
        let parsed: serde_json::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&file).expect("read")).expect("yaml");
        assert_eq!(parsed["load_from"][0]["grpc_server"]["location_name"], "a");
        assert_eq!(parsed["load_from"][0]["grpc_server"]["port"], 4000);
        assert_eq!(parsed["load_from"][1]["grpc_server"]["location_name"], "b");
        let empty = ws.publish("prod", &[]).expect("publish");
        let parsed: serde_json::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&empty).expect("read")).expect("yaml");
        assert_eq!(parsed["load_from"].as_array().map(Vec::len), Some(0));
    }

    fn entry(location: &str, port: u16) -> WorkspaceEntry {
        WorkspaceEntry {
            location: location.into(),
            host: "127.0.0.1".into(),
            port,
        }
    }

    /// Reload requests the fake webserver has received so far.
    async fn reloads(server: &wiremock::MockServer) -> usize {
        server.received_requests().await.unwrap_or_default().len()
    }

    async fn settle(server: &wiremock::MockServer, want: usize) -> usize {
        for _ in 0..100 {
            if reloads(server).await >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Anything more would have arrived by now.
        tokio::time::sleep(Duration::from_millis(200)).await;
        reloads(server).await
    }

    /// A fake webserver answering every `/graphql` POST with `reload`, and the `prod`
    /// workspaces it is told about.
    async fn webserver_answering(
        reload: serde_json::Value,
        dir: &Path,
    ) -> (wiremock::MockServer, Workspaces) {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/graphql"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"data": {"reloadWorkspace": reload}})),
            )
            .mount(&server)
            .await;
        let ws = Workspaces::new(dir).with_webservers(vec![Webserver {
            deployment: "prod".into(),
            url: server.uri(),
        }]);
        (server, ws)
    }

    #[tokio::test]
    async fn only_a_change_of_entries_reloads_the_deployments_webserver() {
        let dir = tempfile::tempdir().expect("tempdir");
        let workspace = serde_json::json!({"__typename": "Workspace", "locationEntries": []});
        let (server, ws) = webserver_answering(workspace, dir.path()).await;
        ws.publish("prod", &[entry("a", 4000)]).expect("publish");
        assert_eq!(settle(&server, 1).await, 1, "a new entry reloads");
        ws.publish("prod", &[entry("a", 4000)]).expect("publish");
        assert_eq!(settle(&server, 2).await, 1, "the same entries do not");
        ws.publish("staging", &[entry("b", 4001)]).expect("publish");
        assert_eq!(
            settle(&server, 2).await,
            1,
            "another deployment's change does not"
        );
        ws.publish("prod", &[entry("a", 4002)]).expect("publish");
        assert_eq!(settle(&server, 2).await, 2, "a switch to a new port does");
        ws.publish("prod", &[]).expect("publish");
        assert_eq!(settle(&server, 3).await, 3, "a removal does");
        let body: serde_json::Value = server.received_requests().await.unwrap_or_default()[0]
            .body_json()
            .expect("json body");
        assert!(
            body["query"]
                .as_str()
                .unwrap_or_default()
                .contains("reloadWorkspace")
        );
    }

    #[tokio::test]
    async fn a_read_only_webserver_is_not_asked_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let refused = serde_json::json!({"__typename": "UnauthorizedError", "message": "Authorization failed"});
        let (server, ws) = webserver_answering(refused, dir.path()).await;
        ws.publish("prod", &[entry("a", 4000)]).expect("publish");
        // A retry would come 0.5 s later.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(reloads(&server).await, 1);
    }

    #[tokio::test]
    async fn publish_succeeds_while_the_webserver_is_unreachable() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Nothing listens on port 9 of loopback (discard is not run here).
        let ws = Workspaces::new(dir.path()).with_webservers(vec![Webserver {
            deployment: "prod".into(),
            url: "http://127.0.0.1:9".into(),
        }]);
        for port in 4000..4010 {
            ws.publish("prod", &[entry("a", port)]).expect("publish");
        }
        let text = std::fs::read_to_string(ws.file("prod")).expect("read");
        assert!(text.contains("port: 4009"), "{text}");
    }
}
