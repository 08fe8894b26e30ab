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

pub use super::free_port;

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

/// A `dagster-deploy serve` process with its agent and `--dagster-ui`, checking images in the
/// test registry; stopped with SIGTERM (so it stops its code servers and UI) when dropped.
pub struct ServeWithUi {
    child: Child,
    /// The deployment API (`DAGSTER_CLOUD_URL`).
    pub url: String,
    /// The Dagster webserver.
    pub ui: String,
    pub token: String,
    pub data: tempfile::TempDir,
}

impl ServeWithUi {
    /// `ports` is the code servers' port range (`START-END`), distinct per test.
    pub fn start(s: &super::Services, ports: &str) -> ServeWithUi {
        ServeWithUi::with_args(
            &[
                "--registry",
                &s.registry,
                "--registry-user",
                &s.user,
                "--code-server-ports",
                ports,
            ],
            &[
                ("DAGSTER_DEPLOY_REGISTRY_PASSWORD", &s.password),
                ("DOCKER_HOST", &s.docker_host),
            ],
        )
    }

    /// `serve --dagster-ui` on a free port with these extra arguments and environment.
    pub fn with_args(args: &[&str], env: &[(&str, &str)]) -> ServeWithUi {
        let data = tempfile::tempdir().expect("tempdir");
        let ours = || Command::new(env!("CARGO_BIN_EXE_dagster-deploy"));
        let out = ours()
            .args(["serve", "token", "create", "--organization", "--data"])
            .arg(data.path())
            .output()
            .expect("token create");
        assert!(out.status.success(), "{out:?}");
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let ui = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(data.path().join("serve.log")).expect("log");
        let child = ours()
            .args(["serve", "--listen", "127.0.0.1:0", "--dagster-ui", &ui])
            .args(args)
            .arg("--data")
            .arg(data.path())
            .envs(env.iter().copied())
            .stderr(log)
            .spawn()
            .expect("start serve");
        let mut serve = ServeWithUi {
            child,
            url: String::new(),
            ui: format!("http://{ui}"),
            token,
            data,
        };
        let began = Instant::now();
        while serve.url.is_empty() {
            let first = serve.log().lines().next().unwrap_or_default().to_string();
            match first.split_whitespace().find(|w| w.starts_with("http://")) {
                Some(url) => serve.url = url.to_string(),
                None => {
                    assert!(
                        began.elapsed() < Duration::from_secs(30),
                        "serve: {}",
                        serve.log()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        serve
    }

    /// Everything serve has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("serve.log")).unwrap_or_default()
    }

    /// The id the agent labels its containers with.
    pub fn server_id(&self) -> String {
        std::fs::read_to_string(self.data.path().join("agent-id"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// `dagster-deploy ARGS` registering with this server.
    pub fn against(&self, cmd: &mut Command) -> super::Run {
        super::Run::of(
            cmd.env("DAGSTER_CLOUD_URL", &self.url)
                .env("DAGSTER_CLOUD_API_TOKEN", &self.token),
        )
    }

    /// SIGTERM, then waits (SIGKILL after a minute).
    pub fn stop(&mut self) {
        // SAFETY: a plain kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeWithUi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The code-server containers (running or not) a server labelled, as `location` names.
pub fn containers_of(s: &super::Services, server_id: &str) -> Vec<String> {
    let out = s.docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=dagster-deploy.server={server_id}"),
        "--format",
        "{{.Label \"dagster-deploy.location\"}}",
    ]);
    let mut names: Vec<String> = out.lines().map(str::to_string).collect();
    names.sort();
    names
}

/// `python:3.11-slim` as scripts/python-base-image.sh makes it: the example's Dockerfiles
/// build on it. Missing is a failure under CI (scripts/test.sh makes it).
pub fn require_python_base(s: &super::Services) {
    let out = Command::new("docker")
        .args(["image", "inspect", "python:3.11-slim"])
        .env("DOCKER_HOST", &s.docker_host)
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "python:3.11-slim is missing: run scripts/python-base-image.sh"
    );
}
