//! `dagster-deploy serve` as a real process: the one way tests start it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Duration;

use dagster_deploy::server::Deployments;

/// The binary under test, with nothing else set.
pub fn ours() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dagster-deploy"))
}

/// `serve token create --label LABEL SCOPE... --data DATA`: the new token.
pub fn token_create(data: &Path, label: &str, scope: &[&str]) -> String {
    let out = ours()
        .args(["serve", "token", "create", "--label", label])
        .args(scope)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&token));
    token
}

/// A `serve` process on a free loopback port; killed and reaped when dropped (also when the
/// test fails first).
pub struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// An organization token for `data` (empty when the test made its own tokens).
    pub token: String,
    /// The data folder.
    pub data: PathBuf,
    /// Owns `data` when the folder is temporary.
    _temp: Option<tempfile::TempDir>,
    /// stderr lines after the one with the URL, when collected.
    lines: Option<(Receiver<String>, JoinHandle<()>)>,
}

impl Serve {
    /// `serve` over a temporary data folder with an organization token (branch deployments
    /// need one), plus these arguments and environment (e.g. `--no-image-checks` for tests
    /// without the Docker services); its stderr is collected.
    pub fn with_args(args: &[&str], env: &[(&str, &str)]) -> Serve {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().to_path_buf();
        let token = token_create(&data, "test", &["--organization"]);
        let mut serve = Serve::start_in(&data, args, env);
        serve.token = token;
        serve._temp = Some(temp);
        serve
    }

    /// `serve` over `data` (tokens are the caller's), its stderr collected: see [`Serve::lines`].
    pub fn start_in(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let (mut serve, stderr) = Serve::spawn(data, args, env);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        serve.lines = Some((rx, reader));
        serve
    }

    /// `serve` over `data`; returns it with its stderr after the line with the URL (dropping
    /// that closes the pipe).
    pub fn spawn(
        data: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Serve, BufReader<ChildStderr>) {
        let child = ours()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Owned by `Serve` at once: its drop kills and reaps the process on any failure.
        let mut serve = Serve {
            child,
            url: String::new(),
            token: String::new(),
            data: data.to_path_buf(),
            _temp: None,
            lines: None,
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

    /// `host:port`.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`-TERM`, `-KILL`, ...) with `kill`.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal} failed");
    }

    /// Waits for the process to end (a hang detector, not a timing assertion); collected
    /// stderr is then complete.
    pub fn wait(&mut self) -> ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some((rx, reader)) = self.lines.take() {
                    let _ = reader.join();
                    self.lines = Some((rx, std::thread::spawn(|| {})));
                }
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve did not stop");
    }

    /// Every collected stderr line printed since the last call.
    pub fn lines(&self) -> Vec<String> {
        match &self.lines {
            Some((rx, _)) => rx.try_iter().collect(),
            None => Vec::new(),
        }
    }

    pub fn deployments(&self) -> Deployments {
        Deployments::open(&self.data).unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
