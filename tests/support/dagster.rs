//! Real open-source Dagster for the tests: the install `serve --dagster-ui` uses (made on first
//! use, so CI installs it from PyPI), code servers started by hand, and what a webserver's
//! GraphQL `workspaceOrError` says it loaded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// dagster and dagster-webserver, as `serve` finds or installs them (the first run takes a
/// minute). Fails the test when that is impossible: these tests never skip.
pub fn install() -> dagster_deploy::dagster::Install {
    dagster_deploy::dagster::install::find_or_install(&|m| eprintln!("{m}"))
        .unwrap_or_else(|e| panic!("cannot install Dagster for the test: {e}"))
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `dagster api grpc` of one Python file, in its own process group, killed (group and all)
/// when dropped.
pub struct CodeServer {
    child: Child,
    pub port: u16,
}

impl CodeServer {
    /// Starts it and waits until its port is open (for `api grpc` that means the code loaded).
    pub fn start(install: &dagster_deploy::dagster::Install, file: &Path, location: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let child = Command::new(install.bin_dir().join("dagster"))
            .args([
                "api",
                "grpc",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-f",
            ])
            .arg(file)
            .args(["--location-name", location])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start dagster api grpc");
        let server = CodeServer { child, port };
        let began = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(180),
                "code server for {} never opened port {port}",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }
}

impl Drop for CodeServer {
    fn drop(&mut self) {
        // SAFETY: signals the group this child leads (process_group(0)).
        unsafe { libc::killpg(self.child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Writes a code location file with one asset per name.
pub fn asset_file(dir: &Path, name: &str, assets: &[&str]) -> PathBuf {
    let mut code = String::from("import dagster as dg\n\n");
    for a in assets {
        code.push_str(&format!("@dg.asset\ndef {a}() -> int:\n    return 1\n\n"));
    }
    code.push_str(&format!(
        "defs = dg.Definitions(assets=[{}])\n",
        assets.join(", ")
    ));
    let file = dir.join(format!("{name}.py"));
    std::fs::write(&file, code).expect("write code");
    file
}

/// One location as the webserver shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub name: String,
    /// `RepositoryLocation` when its definitions loaded, `PythonError` when not.
    pub typename: String,
    /// Every asset key, `/`-joined, sorted.
    pub assets: Vec<String>,
    pub error: Option<String>,
}

const WORKSPACE: &str = "{ workspaceOrError { __typename ... on Workspace { locationEntries { \
    name loadStatus locationOrLoadError { __typename \
    ... on RepositoryLocation { repositories { assetNodes { assetKey { path } } } } \
    ... on PythonError { message } } } } } }";

/// What the webserver at `base` lists, by location name; `None` when it does not answer.
pub async fn workspace(http: &reqwest::Client, base: &str) -> Option<Vec<Location>> {
    let answer: Value = http
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": WORKSPACE }))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let entries = answer["data"]["workspaceOrError"]["locationEntries"].as_array()?;
    let mut out: Vec<Location> = entries
        .iter()
        .map(|e| {
            let loaded = &e["locationOrLoadError"];
            let mut assets: Vec<String> = loaded["repositories"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["assetNodes"].as_array().cloned().unwrap_or_default())
                .map(|n| {
                    n["assetKey"]["path"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect();
            assets.sort();
            Location {
                name: e["name"].as_str().unwrap_or_default().to_string(),
                typename: loaded["__typename"].as_str().unwrap_or("null").to_string(),
                assets,
                error: loaded["message"].as_str().map(str::to_string),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Some(out)
}

/// Polls `workspace` until `ok` holds, or panics after `limit` with the last answer.
pub async fn wait_for(
    http: &reqwest::Client,
    base: &str,
    limit: Duration,
    what: &str,
    ok: impl Fn(&[Location]) -> bool,
) -> Vec<Location> {
    let began = Instant::now();
    let mut last = None;
    while began.elapsed() < limit {
        if let Some(locations) = workspace(http, base).await {
            if ok(&locations) {
                return locations;
            }
            last = Some(locations);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the webserver at {base} never showed {what}; last answer: {last:#?}");
}

/// The loaded locations' names and asset keys.
pub fn loaded(locations: &[Location]) -> Vec<(String, Vec<String>)> {
    locations
        .iter()
        .filter(|l| l.typename == "RepositoryLocation")
        .map(|l| (l.name.clone(), l.assets.clone()))
        .collect()
}

/// Name and assets, for comparing with `loaded`.
pub fn want(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    pairs
        .iter()
        .map(|(n, a)| (n.to_string(), a.iter().map(|s| s.to_string()).collect()))
        .collect()
}
