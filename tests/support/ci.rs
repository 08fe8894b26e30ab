//! What the CI pipeline tests (action.yml, the GitLab templates) stand on: a `dagster-deploy
//! serve` process, a release server holding this build as the release archive `install.sh`
//! downloads, and a recording stand-in for GitHub's or GitLab's comment API.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use dagster_deploy::server::Deployments;
use serde_json::{Value, json};

use super::Services;

/// `dagster-deploy serve` with an organization token (branch deployments need one), checking
/// images in the test registry; killed when the test ends.
pub struct Serve {
    child: Child,
    pub url: String,
    pub token: String,
    pub data: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Images are checked, not run (`--no-code-servers`): the pipeline tests build the
    /// example on a stand-in Python image without Dagster.
    pub fn start(s: &Services) -> Serve {
        Serve::with_args(
            &[
                "--registry",
                &s.registry,
                "--registry-user",
                &s.user,
                "--no-code-servers",
            ],
            &[("DAGSTER_DEPLOY_REGISTRY_PASSWORD", &s.password)],
        )
    }

    /// `serve` with these extra arguments and environment (e.g. `--no-image-checks`, for
    /// tests without the Docker services).
    pub fn with_args(args: &[&str], env: &[(&str, &str)]) -> Serve {
        let data = tempfile::tempdir().unwrap();
        let ours = || Command::new(env!("CARGO_BIN_EXE_dagster-deploy"));
        let out = ours()
            .args(["serve", "token", "create", "--organization", "--data"])
            .arg(data.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let mut child = ours()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .arg("--data")
            .arg(data.path())
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_string();
        Serve {
            child,
            url,
            token,
            data,
        }
    }

    pub fn deployments(&self) -> Deployments {
        Deployments::open(self.data.path()).unwrap()
    }

    /// Location → registered image.
    pub fn images(&self, deployment: &str) -> BTreeMap<String, String> {
        self.deployments()
            .locations(deployment)
            .unwrap()
            .into_iter()
            .map(|l| {
                let image = l.document["image"].as_str().unwrap_or("").to_string();
                (l.name, image)
            })
            .collect()
    }

    /// The branch deployment's pull request status (`OPEN`, `CLOSED`, `MERGED`).
    pub fn pull_request_status(&self, deployment: &str) -> Option<String> {
        let record = self.deployments().deployment(deployment).unwrap();
        record.branch.and_then(|b| b.pull_request_status)
    }
}

/// Serves `root`'s files over HTTP on a free port; returns the base URL.
pub async fn file_server(root: PathBuf) -> String {
    let app = Router::new().fallback(move |uri: Uri| {
        let root = root.clone();
        async move {
            let rel = uri.path().trim_start_matches('/');
            match std::fs::read(root.join(rel)) {
                Ok(bytes) if !rel.contains("..") => (StatusCode::OK, bytes),
                _ => (StatusCode::NOT_FOUND, Vec::new()),
            }
        }
    });
    spawn(app).await
}

async fn spawn(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A release folder (`v<version>/...`) as `.github/workflows/release.yml` publishes it: this
/// build of the binary as the Linux archive for this machine, its `.sha256`, and `install.sh`.
pub fn release_folder(version: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    let out = dir.path().join(format!("v{version}"));
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_dagster-deploy"),
        stage.join("dagster-deploy"),
    )
    .unwrap();
    let install_sh = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci-templates/install.sh");
    std::fs::copy(install_sh, out.join("install.sh")).unwrap();
    let arch = match std::env::consts::ARCH {
        "aarch64" => "aarch64",
        _ => "x86_64",
    };
    let archive = format!("dagster-deploy-{arch}-unknown-linux-musl.tar.gz");
    let status = Command::new("tar")
        .arg("czf")
        .arg(out.join(&archive))
        .arg("-C")
        .arg(&stage)
        .arg("dagster-deploy")
        .status()
        .unwrap();
    assert!(status.success());
    let sum = Command::new("sha256sum")
        .arg(&archive)
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(sum.status.success());
    std::fs::write(out.join(format!("{archive}.sha256")), sum.stdout).unwrap();
    dir
}

/// A comment API (GitHub issue comments, GitLab merge request notes): lists, posts and edits
/// the comments it keeps, and records every request. Requests without the expected
/// credentials header are refused.
pub struct CommentApi {
    auth: (String, String),
    pub comments: Mutex<Vec<Value>>,
    pub requests: Mutex<Vec<String>>,
}

impl CommentApi {
    /// Starts it; `auth` is the header name and value every request must carry.
    pub async fn start(auth: (&str, &str)) -> (Arc<CommentApi>, String) {
        let api = Arc::new(CommentApi {
            auth: (auth.0.to_string(), auth.1.to_string()),
            comments: Mutex::default(),
            requests: Mutex::default(),
        });
        let app = Router::new().fallback(handle).with_state(api.clone());
        (api, spawn(app).await)
    }

    pub fn bodies(&self) -> Vec<String> {
        let comments = self.comments.lock().unwrap();
        comments
            .iter()
            .map(|c| c["body"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// How many requests used `method`.
    pub fn count(&self, method: &str) -> usize {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.starts_with(&format!("{method} ")))
            .count()
    }
}

async fn handle(
    State(api): State<Arc<CommentApi>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    api.requests
        .lock()
        .unwrap()
        .push(format!("{method} {}", uri.path()));
    let given = headers
        .get(api.auth.0.as_str())
        .and_then(|v| v.to_str().ok());
    if given != Some(api.auth.1.as_str()) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({})));
    }
    let mut comments = api.comments.lock().unwrap();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match method {
        Method::GET => (StatusCode::OK, axum::Json(json!(*comments))),
        Method::POST => {
            let comment = json!({
                "id": comments.len() + 1,
                "user": {"login": "github-actions[bot]"},
                "body": body["body"],
            });
            comments.push(comment.clone());
            (StatusCode::CREATED, axum::Json(comment))
        }
        Method::PATCH | Method::PUT => {
            let id: u64 = uri.path().rsplit('/').next().unwrap().parse().unwrap();
            let comment = comments
                .iter_mut()
                .find(|c| c["id"] == id)
                .expect("an edit of an unknown comment");
            comment["body"] = body["body"].clone();
            (StatusCode::OK, axum::Json(comment.clone()))
        }
        _ => (StatusCode::METHOD_NOT_ALLOWED, axum::Json(json!({}))),
    }
}
