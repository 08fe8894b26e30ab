//! Issue 10's findings that need `dagster-deploy serve` as a real process: SIGTERM with a
//! stuck client (4), `kill -9` mid-upload (8), `serve token list` / `revoke` (9) and the log
//! lines (10).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use support::serve::{Serve, ours, token_create};

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
    let mut serve = Serve::start_in(&data, &["--no-image-checks"], &[]);
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
    let mut serve = Serve::start_in(&data, &["--no-image-checks"], &[]);
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
    let mut again = Serve::start_in(&data, &["--no-image-checks"], &[]);
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
    let mut serve = Serve::start_in(&data, &["--no-image-checks"], &[]);
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
    let mut serve = Serve::start_in(&data, &["--no-image-checks", "--log-format", "json"], &[]);
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
    let mut quiet = Serve::start_in(&data, &["--no-image-checks"], &[("RUST_LOG", "warn")]);
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
    let (serve, stderr) = Serve::spawn(&data, &["--no-image-checks"], &[]);
    drop(stderr);
    for _ in 0..3 {
        assert_eq!(post(&serve.url, &token, "{ __typename }").0, 200);
    }
}
