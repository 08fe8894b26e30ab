//! The Dagster `workspace.yaml` of each deployment: the `grpc_server` entries of the code servers
//! the agent has running and LOADED, written atomically under
//! `data_dir/dagster/<deployment>/workspace.yaml` so that a `dagster-webserver -w <file>` (ours or
//! the user's) loads every location. See docs/protocol.md, "Running the code".
//!
//! The agent (`agent`) decides what is serving and calls `publish`; this module owns the file
//! and telling a Dagster webserver to `reloadWorkspace` when entries are added or removed.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::private_fs;

/// One location's serving code server, as the webserver reaches it from the server's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceEntry {
    pub location: String,
    pub host: String,
    pub port: u16,
}

/// The workspace files of every deployment under one data directory.
#[derive(Debug, Clone)]
pub struct Workspaces {
    root: PathBuf,
}

impl Workspaces {
    pub fn new(data_dir: &Path) -> Self {
        Workspaces {
            root: data_dir.join("dagster"),
        }
    }

    /// Where `deployment`'s workspace file is (whether or not it exists yet).
    pub fn file(&self, deployment: &str) -> PathBuf {
        self.root.join(deployment).join("workspace.yaml")
    }

    /// Replaces `deployment`'s workspace file with `entries` (sorted by location), atomically:
    /// a webserver reading it never sees half a file.
    pub fn publish(&self, deployment: &str, entries: &[WorkspaceEntry]) -> io::Result<PathBuf> {
        let file = self.file(deployment);
        let dir = file.parent().unwrap_or(&self.root);
        private_fs::dir(dir)?;
        let mut sorted: Vec<&WorkspaceEntry> = entries.iter().collect();
        sorted.sort_by(|a, b| a.location.cmp(&b.location));
        let text = render(&sorted);
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
        Ok(file)
    }
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
}
