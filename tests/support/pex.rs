//! What the Python-executable deploy tests stand on: their tools (pex, uv, python3.11), and a
//! `dagster-deploy serve` process the deploys go to, with what they read back from it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use super::serve::ours;
use super::server as common;

/// Skips (or, in CI, fails) without the tools.
pub fn prerequisites() -> bool {
    let mut missing = Vec::new();
    if !Command::new("python3.11")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        missing.push("python3.11".to_string());
    }
    let dir = dagster_deploy::pex::tools::tools_dir();
    for tool in ["pex", "uv"] {
        let there = dir.join("venv/bin").join(tool).exists()
            || dagster_deploy::python_tools::which(tool).is_some();
        if !there {
            missing.push(format!("{tool} (in {})", dir.display()));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("missing {}", missing.join(", "));
    super::missing::<()>(&why, "run `scripts/pex-tools.sh` first").is_some()
}

/// A `dagster-deploy serve` process (no image checks: nothing here is a Docker image), and
/// the URL the deploys use (a test may put a proxy in front of it).
pub struct Serve {
    /// Held for its process, which stops when this is dropped.
    _server: super::serve::Serve,
    pub url: String,
    pub token: String,
}

/// A `serve` process started with `extra` arguments.
pub fn serve(extra: &[&str]) -> Serve {
    let mut args = vec!["--no-image-checks"];
    args.extend_from_slice(extra);
    let server = super::serve::Serve::with_args(&args, &[]);
    Serve {
        url: server.url.clone(),
        token: server.token.clone(),
        _server: server,
    }
}

impl Serve {
    pub fn client(&self) -> common::Client {
        common::Client {
            http: reqwest::Client::new(),
            base: self.url.clone(),
            token: Some(self.token.clone()),
            deployment: Some("prod".into()),
        }
    }

    /// `dagster-deploy ARGS` in `dir`, pointed at this server. HOME stays the user's, so the
    /// pex/uv caches and built dependencies are reused between runs.
    pub fn deploy(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = ours();
        cmd.current_dir(dir)
            .args(["serverless", "deploy-python-executable"])
            .args(args)
            .env("DAGSTER_CLOUD_URL", &self.url)
            .env("DAGSTER_CLOUD_DEPLOYMENT", "prod")
            .env("DAGSTER_CLOUD_API_TOKEN", &self.token)
            .env("DAGSTER_CLOUD_CLI_CONFIG", dir.join(".no-config"))
            .env_remove("DAGSTER_CLOUD_ORGANIZATION")
            .envs(env.iter().copied());
        let started = std::time::Instant::now();
        let out = cmd.output().unwrap();
        eprintln!(
            "$ dagster-deploy serverless deploy-python-executable {} ({:.1} s, {})\n{}{}",
            args.join(" "),
            started.elapsed().as_secs_f64(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub async fn documents(&self) -> Vec<Value> {
        let data = self
            .client()
            .data(common::LOCATIONS_AS_DOCUMENT, json!({}))
            .await;
        data["locationsAsDocument"]["document"]["locations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Downloads a stored file through a GET URL of `generateServerlessPexUrl`.
    pub async fn download(&self, name: &str, to: &Path) -> PathBuf {
        let data = self
            .client()
            .data(
                "mutation G($filenames: [String!]!) { \
                 generateServerlessPexUrl(filenames: $filenames, method:GET) { url } }",
                json!({ "filenames": [name] }),
            )
            .await;
        let url = data["generateServerlessPexUrl"][0]["url"].as_str().unwrap();
        let resp = reqwest::get(url).await.unwrap();
        assert_eq!(resp.status(), 200, "download {name}");
        let path = to.join(name);
        std::fs::write(&path, resp.bytes().await.unwrap()).unwrap();
        path
    }
}
