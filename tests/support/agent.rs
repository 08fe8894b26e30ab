//! What the agent tests stand on: a `dagster-deploy serve` process running code servers, a
//! real code-location image (the local `python:3.11-slim` with Dagster from PyPI), and what
//! runs afterwards (containers by label, processes by pid file, workspace files). Everything a
//! test started is stopped and removed when its `AgentServe` is dropped, also on failure.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Services;

/// The Dagster release code-location images install (what the research used).
pub const DAGSTER_VERSION: &str = "1.13.28";

/// A location that loads, one whose import raises with a cause, in one image.
const GOOD: &str = "import dagster as dg\n\n@dg.asset\ndef hello():\n    return 1\n\ndefs = dg.Definitions(assets=[hello])\n";
const BAD: &str = "def _load_config():\n    try:\n        {}[\"missing_key\"]\n    except KeyError as e:\n        raise RuntimeError(\"could not load config for bad_loc\") from e\n\n_load_config()\n";

/// The image with Dagster installed, built once per machine (its tag names its content).
fn dagster_image(s: &Services) -> String {
    static DONE: Mutex<Option<String>> = Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(tag) = done.as_ref() {
        return tag.clone();
    }
    let tag = format!("dagster-deploy-test/agent-dagster:{DAGSTER_VERSION}");
    let have = Command::new("docker")
        .args(["image", "inspect", &tag])
        .env("DOCKER_HOST", &s.docker_host)
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM python:3.11-slim\nRUN pip install --no-cache-dir dagster=={DAGSTER_VERSION}\n"
            ),
        )
        .unwrap();
        s.docker(&["build", "-q", "-t", &tag, &dir.path().to_string_lossy()]);
    }
    *done = Some(tag.clone());
    tag
}

/// A code-location image in the test registry with modules `good_loc` and `bad_loc` in
/// `/app`; removed from the local engine by `cleanup`.
pub fn location_image(s: &Services, cleanup: &mut super::Cleanup) -> String {
    let base = dagster_image(s);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nWORKDIR /app\nCOPY *.py /app/\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("good_loc.py"), GOOD).unwrap();
    std::fs::write(dir.path().join("bad_loc.py"), BAD).unwrap();
    let image = cleanup.image(&format!(
        "{}/{}:1",
        s.registry,
        super::unique("dagster-deploy-test/agent")
    ));
    s.docker(&["build", "-q", "-t", &image, &dir.path().to_string_lossy()]);
    push(s, &image);
    image
}

/// `python:3.11-slim` (no Dagster) in the test registry.
pub fn python_image(s: &Services, cleanup: &mut super::Cleanup) -> String {
    let image = cleanup.image(&format!(
        "{}/{}:1",
        s.registry,
        super::unique("dagster-deploy-test/agent-python")
    ));
    // An image of its own (a label makes a new id): removing it never touches the shared base.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM python:3.11-slim\nLABEL dagster-deploy-test=agent\n",
    )
    .unwrap();
    s.docker(&["build", "-q", "-t", &image, &dir.path().to_string_lossy()]);
    push(s, &image);
    image
}

fn push(s: &Services, image: &str) {
    let config = tempfile::tempdir().unwrap();
    let login = Command::new("docker")
        .args(["login", "-u", &s.user, "--password-stdin", &s.registry])
        .env("DOCKER_HOST", &s.docker_host)
        .env("DOCKER_CONFIG", config.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(s.password.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(login.success(), "docker login failed");
    let push = Command::new("docker")
        .args(["push", "-q", image])
        .env("DOCKER_HOST", &s.docker_host)
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    assert!(push.status.success(), "{push:?}");
}

/// `dagster-deploy serve` with its agent, on ports `ports` for code servers.
pub struct AgentServe {
    child: Option<Child>,
    pub url: String,
    pub token: String,
    pub data: PathBuf,
    pub run_dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Everything it printed on stderr (for failing tests).
    pub log: Arc<Mutex<String>>,
    _dir: Arc<tempfile::TempDir>,
}

impl AgentServe {
    /// Starts serve trusting the test registry, with `extra` arguments (e.g. the ports).
    pub fn start(s: &Services, extra: &[&str], env: &[(&str, &str)]) -> AgentServe {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let data = dir.path().join("data");
        let run_dir = dir.path().join("run");
        let out = bin()
            .args(["serve", "token", "create", "--organization", "--data"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let mut args: Vec<String> = [
            "--registry",
            &s.registry,
            "--registry-user",
            &s.user,
            "--code-server-grace",
            "1",
            "--code-server-startup-timeout",
            "120",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push((
            "DAGSTER_DEPLOY_REGISTRY_PASSWORD".into(),
            s.password.clone(),
        ));
        let mut serve = AgentServe {
            child: None,
            url: String::new(),
            token,
            data,
            run_dir,
            args,
            env,
            log: Arc::default(),
            _dir: dir,
        };
        serve.restart();
        serve
    }

    /// Starts the process (again, after `stop`), on a new port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "serve is running");
        let mut child = bin()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&self.data)
            .arg("--code-server-dir")
            .arg(&self.run_dir)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        self.child = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                    let _ = tx.send(url.to_string());
                }
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        self.url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("serve printed no URL:\n{}", self.log()));
    }

    /// SIGTERM, then waits for it to exit (stopping its code servers unless kept).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The id labelling this server's containers.
    pub fn agent_id(&self) -> String {
        std::fs::read_to_string(self.data.join("agent-id"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// This server's containers as `(location, running)`, sorted.
    pub fn containers(&self) -> Vec<(String, bool)> {
        let out = Command::new("docker")
            .args(["ps", "-a", "--filter"])
            .arg(format!("label=dagster-deploy.server={}", self.agent_id()))
            .args([
                "--format",
                "{{.ID}} {{.Label \"dagster-deploy.location\"}} {{.State}}",
            ])
            .output()
            .unwrap();
        let mut found: Vec<(String, bool)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let _id = parts.next()?;
                Some((parts.next()?.to_string(), parts.next()? == "running"))
            })
            .collect();
        found.sort();
        found
    }

    /// The container ids of this server (to tell a restart from a new container).
    pub fn container_ids(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--no-trunc", "--filter"])
            .arg(format!("label=dagster-deploy.server={}", self.agent_id()))
            .output()
            .unwrap();
        let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    }

    /// Live code-server processes by their pid files: `(location, pid)`.
    pub fn processes(&self) -> Vec<(String, i32)> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(self.run_dir.join("state"))
            .into_iter()
            .flatten()
        {
            let Ok(entry) = entry else { continue };
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let record: Value = serde_json::from_str(&text).unwrap_or_default();
            let pid = record["pid"].as_i64().unwrap_or(0) as i32;
            if pid > 0 && Path::new(&format!("/proc/{pid}")).exists() {
                found.push((record["location"].as_str().unwrap_or("").to_string(), pid));
            }
        }
        found.sort();
        found
    }

    /// The `(location, port)` entries of `deployment`'s workspace file.
    pub fn workspace(&self, deployment: &str) -> Vec<(String, u16)> {
        let file = self
            .data
            .join("dagster")
            .join(deployment)
            .join("workspace.yaml");
        let Ok(text) = std::fs::read_to_string(file) else {
            return Vec::new();
        };
        let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
        doc["load_from"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let g = &e["grpc_server"];
                assert_eq!(g["host"], "127.0.0.1");
                (
                    g["location_name"].as_str().unwrap().to_string(),
                    g["port"].as_u64().unwrap() as u16,
                )
            })
            .collect()
    }

    /// `dagster-deploy ARGS` against this server's `deployment`.
    pub fn ours(&self, deployment: &str, args: &[&str]) -> super::Run {
        let mut cmd = bin();
        cmd.args(args)
            .env("DAGSTER_CLOUD_URL", format!("{}/{deployment}", self.url))
            .env("DAGSTER_CLOUD_DEPLOYMENT", deployment)
            .env("DAGSTER_CLOUD_API_TOKEN", &self.token)
            .env("DAGSTER_CLOUD_CLI_CONFIG", self.data.join("no-config"))
            .env_remove("DAGSTER_CLOUD_ORGANIZATION");
        let run = super::Run::of(&mut cmd);
        eprintln!("$ dagster-deploy {}\n{run}", args.join(" "));
        run
    }

    /// A GraphQL request (organisation token) at `path`, answered 200.
    pub async fn graphql(&self, path: &str, query: &str, variables: Value) -> Value {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .header("Dagster-Cloud-Api-Token", &self.token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.unwrap()
    }

    /// `deployment`'s location entries: name → `(loadStatus, locationOrLoadError)`.
    pub async fn statuses(&self, deployment: &str) -> Vec<(String, String, Value)> {
        let body = self
            .graphql(
                &format!("/{deployment}/graphql"),
                WORKSPACE_OR_ERROR,
                json!({}),
            )
            .await;
        body["data"]["workspaceOrError"]["locationEntries"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["loadStatus"].as_str().unwrap().to_string(),
                    e["locationOrLoadError"].clone(),
                )
            })
            .collect()
    }

    /// Polls until every one of `locations` is LOADED (loaded or with its load error); returns
    /// the deployment's entries then.
    pub async fn settled(
        &self,
        deployment: &str,
        locations: &[&str],
    ) -> Vec<(String, String, Value)> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let statuses = self.statuses(deployment).await;
            let done = locations.iter().all(|l| {
                statuses
                    .iter()
                    .any(|(name, status, _)| name == l && status == "LOADED")
            });
            if done {
                return statuses;
            }
            assert!(
                Instant::now() < deadline,
                "{locations:?} never finished loading: {statuses:?}; serve's log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until `check` holds (with the server's log in the failure).
    pub async fn until<F: FnMut() -> bool>(&self, what: &str, mut check: F) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; serve's log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for AgentServe {
    fn drop(&mut self) {
        self.stop();
        // Whatever is left (a test that failed with code servers kept, or serve killed).
        for id in self.container_ids() {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
        for (_, pid) in self.processes() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagster-deploy"));
    cmd.env_remove("RUST_LOG");
    cmd
}

pub const WORKSPACE_OR_ERROR: &str = "query { workspaceOrError { __typename ... on Workspace {
    locationEntries { name loadStatus locationOrLoadError { __typename
        ... on RepositoryLocation { name }
        ... on PythonError { message stack errorChain { isExplicitLink error { message stack } } }
    } } } } }";
