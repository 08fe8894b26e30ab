//! Issue 10's findings that need `dagster-deploy serve` as a real process: SIGTERM with a
//! stuck client (4), `kill -9` mid-upload (8), `serve token list` / `revoke` (9) and the log
//! lines (10).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn ours() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dagster-deploy"))
}

/// A `serve` process; killed if a test fails before it ends.
struct Serve {
    child: Child,
    url: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Serve {
    /// `serve` on a free port (its stderr not collected); returns it with its stderr after
    /// the line with the URL.
    fn spawn(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Serve, BufReader<ChildStderr>) {
        let child = ours()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--no-image-checks",
                "--data",
            ])
            .arg(data)
            .args(extra)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Owned by `Serve` at once: its drop kills and reaps the process on any failure.
        let mut serve = Serve {
            child,
            url: String::new(),
            stderr: std::sync::mpsc::channel().1,
        };
        let mut stderr = BufReader::new(serve.child.stderr.take().unwrap());
        let mut line = String::new();
        while serve.url.is_empty() {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "serve printed no URL"
            );
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                serve.url = url.to_string();
            }
        }
        (serve, stderr)
    }

    /// `serve`, its stderr lines collected.
    fn start(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let (mut serve, stderr) = Serve::spawn(data, extra, env);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        serve.stderr = rx;
        serve
    }

    fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// Every stderr line printed so far.
    fn lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for the process to end (a hang detector, not a timing assertion).
    fn wait(&mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve did not stop");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_create(data: &Path, label: &str, scope: &[&str]) -> String {
    let out = ours()
        .args(["serve", "token", "create", "--label", label])
        .args(scope)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn post(url: &str, token: &str, query: &str) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{url}/graphql"))
            .header("Dagster-Cloud-Api-Token", token)
            .json(&json!({"query": query, "variables": {}}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    })
}

/// A data folder with an organization token.
fn fresh() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = token_create(&data, "t", &["--organization"]);
    (dir, data, token)
}

#[test]
fn f4_sigterm_stops_serve_despite_a_stuck_client() {
    let (_dir, data, token) = fresh();
    let mut serve = Serve::start(&data, &[], &[]);
    let mut stuck = TcpStream::connect(serve.addr()).unwrap();
    write!(
        stuck,
        "POST /graphql HTTP/1.1\r\nHost: x\r\nDagster-Cloud-Api-Token: {token}\r\n\
         Content-Length: 1000\r\n\r\n{{"
    )
    .unwrap();
    let mut half = TcpStream::connect(serve.addr()).unwrap();
    half.write_all(b"GET /hea").unwrap();
    assert_eq!(post(&serve.url, &token, "{ __typename }").0, 200);
    serve.signal("-TERM");
    assert!(serve.wait().success());
}

#[test]
fn f8_a_killed_upload_leaves_nothing_after_a_restart() {
    let (_dir, data, token) = fresh();
    let mut serve = Serve::start(&data, &[], &[]);
    let mut upload = TcpStream::connect(serve.addr()).unwrap();
    write!(
        upload,
        "PUT /blobs/deps-1.pex HTTP/1.1\r\nHost: x\r\nDagster-Cloud-Api-Token: {token}\r\n\
         Content-Length: 10000000\r\n\r\n"
    )
    .unwrap();
    upload.write_all(&[7u8; 2 << 20]).unwrap();
    let tmp = data.join("blobs/tmp");
    for _ in 0..300 {
        if std::fs::read_dir(&tmp).unwrap().count() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    serve.signal("-KILL");
    serve.wait();
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        1,
        "the upload had begun"
    );
    let mut again = Serve::start(&data, &[], &[]);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    assert_eq!(post(&again.url, &token, "{ __typename }").0, 200);
    again.signal("-TERM");
    again.wait();
}

#[test]
fn f9_tokens_are_listed_without_secrets_and_revoked_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let org = token_create(&data, "ops", &["--organization"]);
    let ci = token_create(&data, "ci-staging", &["--deployment", "staging"]);
    let mut serve = Serve::start(&data, &[], &[]);
    assert_eq!(post(&serve.url, &ci, "{ __typename }").0, 200);

    let list = |json: bool| {
        let mut cmd = ours();
        cmd.args(["serve", "token", "list", "--data"]).arg(&data);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // The last use is recorded off the request's path: give it a moment.
    let mut rows = Value::Null;
    for _ in 0..100 {
        rows = serde_json::from_str(&list(true)).unwrap();
        if !rows[1]["last_used"].is_null() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rows[0]["label"], "ops");
    assert_eq!(rows[0]["scope"], "organization");
    assert_eq!(rows[0]["last_used"], Value::Null);
    assert_eq!(rows[1]["label"], "ci-staging");
    assert_eq!(rows[1]["scope"], "staging");
    assert!(rows[1]["last_used"].is_string(), "{rows}");
    assert_eq!(rows[1]["revoked"], false);
    let text = list(false);
    assert!(text.contains("ci-staging\tstaging\t"), "{text}");
    for secret in [&org, &ci] {
        assert!(!text.contains(secret.as_str()) && !rows.to_string().contains(secret.as_str()));
    }

    let id = rows[1]["id"].to_string();
    let out = ours()
        .args(["serve", "token", "revoke", &id, "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(post(&serve.url, &ci, "{ __typename }").0, 401);
    assert_eq!(post(&serve.url, &org, "{ __typename }").0, 200);
    let again = ours()
        .args(["serve", "token", "revoke", &id, "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no active token has id"));
    serve.signal("-TERM");
    serve.wait();
}

#[test]
fn f10_one_json_log_line_per_request_and_never_a_token() {
    let (_dir, data, token) = fresh();
    let mut serve = Serve::start(&data, &["--log-format", "json"], &[]);
    assert_eq!(
        post(
            &serve.url,
            &token,
            "query CliLocationsQuery { workspaceOrError { __typename } }"
        )
        .0,
        200
    );
    assert_eq!(post(&serve.url, "ddp_wrong", "{ __typename }").0, 401);
    serve.signal("-TERM");
    serve.wait();
    let lines = serve.lines();
    let requests: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 2, "{lines:#?}");
    assert_eq!(requests[0]["operation"], "CliLocationsQuery");
    assert_eq!(requests[0]["deployment"], "prod");
    assert_eq!(requests[0]["status"], 200);
    assert!(requests[0]["ms"].is_number());
    assert_eq!(requests[1]["status"], 401);
    let all = lines.join("\n");
    assert!(!all.contains(&token) && !all.contains("ddp_wrong"), "{all}");

    // RUST_LOG sets the level: warnings only, no request lines.
    let mut quiet = Serve::start(&data, &[], &[("RUST_LOG", "warn")]);
    assert_eq!(post(&quiet.url, &token, "{ __typename }").0, 200);
    quiet.signal("-TERM");
    quiet.wait();
    assert!(!quiet.lines().iter().any(|l| l.contains("request")));
}

#[test]
fn f10_cli_warnings_reach_stderr() {
    // A deployment API that is always unavailable: the client retries, and says so.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 65536];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let home = tempfile::tempdir().unwrap();
    let out = ours()
        .args(["deployment", "list-locations"])
        .env_remove("RUST_LOG")
        .env("HOME", home.path())
        .env("DAGSTER_CLOUD_CLI_CONFIG", home.path().join("none.yaml"))
        .env("DAGSTER_CLOUD_URL", &url)
        .env("DAGSTER_CLOUD_API_TOKEN", "ddp_secret_token")
        .env("DAGSTER_CLOUD_DEPLOYMENT", "prod")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("WARN") && stderr.contains("retrying"),
        "{stderr}"
    );
    assert!(!stderr.contains("ddp_secret_token"), "{stderr}");
}

#[test]
fn f10_a_closed_stderr_does_not_break_serving() {
    let (_dir, data, token) = fresh();
    // Read the URL, then close the pipe as a script that stops listening would.
    let (serve, stderr) = Serve::spawn(&data, &[], &[]);
    drop(stderr);
    for _ in 0..3 {
        assert_eq!(post(&serve.url, &token, "{ __typename }").0, 200);
    }
}
