//! Shared helpers for the build tests: the real services started by `scripts/services.sh start`,
//! the `docker` CLI as a reference, fixture trees, and clean-up of what a test creates.
//!
//! Run `scripts/services.sh start` (as root) before `cargo test`. The variables come from the
//! environment (`eval "$(scripts/services.sh env)"`) or, when unset, from `scripts/services.sh
//! env` itself. Without the services a test skips with a notice — except under `CI`, where it
//! fails, so CI can never pass by skipping.
#![allow(dead_code)]

#[path = "../changes_support/mod.rs"]
mod changes_support;
pub use changes_support::bin;
pub mod agent;
pub mod ci;
pub mod dagster;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use dagster_deploy::build::{DockerEngine, Engine, RegistryCredentials};

/// The running services, as the tests see them.
pub struct Services {
    pub engine: DockerEngine,
    pub docker_host: String,
    /// Registry host as used in image names, e.g. `localhost:5000`.
    pub registry: String,
    pub user: String,
    pub password: String,
    /// Local image the fixtures build `FROM`.
    pub base_image: String,
}

impl Services {
    pub fn credentials(&self) -> RegistryCredentials {
        RegistryCredentials {
            registry: self.registry.clone(),
            username: self.user.clone(),
            password: self.password.clone().into(),
        }
    }

    /// Runs the `docker` CLI against the same engine; panics with its output when it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        self.docker_in(None, args)
    }

    pub fn docker_in(&self, dir: Option<&Path>, args: &[&str]) -> String {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_HOST", &self.docker_host)
            // The classic builder: the same one the engine API build uses, and the one whose
            // client-side context upload we compare with.
            .env("DOCKER_BUILDKIT", "0");
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let out = cmd.output().expect("run the docker CLI");
        assert!(
            out.status.success(),
            "docker {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Reads a file from an image by running it once.
    pub fn read_from_image(&self, image: &str, path: &str) -> String {
        self.docker(&["run", "--rm", "--network", "none", image, "cat", path])
    }
}

/// Connects to the services, or returns `None` (outside CI) after printing why.
pub async fn services() -> Option<Services> {
    match try_services().await {
        Ok(services) => Some(services),
        Err(reason) => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            if ci {
                panic!(
                    "{reason}\nCI is set, so this test must not skip: run `scripts/services.sh start` first"
                );
            }
            eprintln!(
                "SKIPPED (no services): {reason}; run `scripts/services.sh start` to run this test"
            );
            None
        }
    }
}

async fn try_services() -> Result<Services, String> {
    let vars = service_vars()?;
    let get = |name: &str| {
        vars.get(name)
            .cloned()
            .ok_or_else(|| format!("{name} is not set"))
    };
    let docker_host = get("DOCKER_HOST")?;
    let engine = DockerEngine::connect_to(Some(&docker_host))
        .await
        .map_err(|e| e.to_string())?;
    let base_image = get("DAGSTER_DEPLOY_TEST_BASE_IMAGE")?;
    let has_base = engine
        .image_exists(&base_image)
        .await
        .map_err(|e| e.to_string())?;
    if !has_base {
        return Err(format!("the base image {base_image} is missing"));
    }
    Ok(Services {
        engine,
        docker_host,
        registry: get("DAGSTER_DEPLOY_TEST_REGISTRY")?,
        user: get("DAGSTER_DEPLOY_TEST_REGISTRY_USER")?,
        password: get("DAGSTER_DEPLOY_TEST_REGISTRY_PASSWORD")?,
        base_image,
    })
}

/// The variables from the environment, else from `scripts/services.sh env`.
fn service_vars() -> Result<HashMap<String, String>, String> {
    const NAMES: [&str; 5] = [
        "DOCKER_HOST",
        "DAGSTER_DEPLOY_TEST_REGISTRY",
        "DAGSTER_DEPLOY_TEST_REGISTRY_USER",
        "DAGSTER_DEPLOY_TEST_REGISTRY_PASSWORD",
        "DAGSTER_DEPLOY_TEST_BASE_IMAGE",
    ];
    let from_env: HashMap<String, String> = NAMES
        .iter()
        .filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v)))
        .collect();
    if NAMES[1..].iter().all(|n| from_env.contains_key(*n)) {
        let mut vars = from_env;
        vars.entry("DOCKER_HOST".into())
            .or_insert_with(|| "unix:///var/run/docker.sock".into());
        return Ok(vars);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("env")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} env failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// A name no other test (or test run) uses at the same time.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Removes the images it was given when dropped (also when the test fails).
pub struct Cleanup<'a> {
    services: &'a Services,
    images: Vec<String>,
}

impl<'a> Cleanup<'a> {
    pub fn new(services: &'a Services) -> Cleanup<'a> {
        Cleanup {
            services,
            images: Vec::new(),
        }
    }

    pub fn image(&mut self, name: &str) -> String {
        self.images.push(name.to_string());
        name.to_string()
    }
}

/// Removes every tag a `build`/`deploy --json` run pushed from the local engine at the end.
pub fn clean_pushed(cleanup: &mut Cleanup, json: &serde_json::Value) {
    for r in json["results"].as_array().into_iter().flatten() {
        for tag in r["pushed_tags"].as_array().into_iter().flatten() {
            cleanup.image(tag.as_str().unwrap_or_default());
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .env("DOCKER_HOST", &self.services.docker_host)
                .output()
        };
        for image in &self.images {
            let _ = docker(&["rmi", "-f", image]);
            // A pulled image whose tag moved to a newer build stays behind untagged, still
            // known by its repository's digest: remove what is left of the test's repository
            // (tests name their repositories with `unique`).
            let repository = match image.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => repo,
                _ => image.as_str(),
            };
            if !repository.contains(&format!("-{}-", std::process::id())) {
                continue;
            }
            let Ok(out) = docker(&[
                "images",
                "-q",
                "--filter",
                &format!("reference={repository}"),
            ]) else {
                continue;
            };
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker(&["rmi", "-f", id]);
            }
        }
    }
}

/// One thing in a fixture tree.
pub enum Node<'a> {
    File(&'a str, &'a str),
    /// A file with explicit permission bits.
    Mode(&'a str, &'a str, u32),
    Dir(&'a str, u32),
    Link(&'a str, &'a str),
}

/// Creates the nodes under `root` (parents as needed).
pub fn write_tree(root: &Path, nodes: &[Node]) {
    for node in nodes {
        match node {
            Node::File(path, content) => write(root, path, content, None),
            Node::Mode(path, content, mode) => write(root, path, content, Some(*mode)),
            Node::Dir(path, mode) => {
                let p = root.join(path);
                std::fs::create_dir_all(&p).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            Node::Link(path, target) => {
                let p = root.join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, &p).unwrap();
            }
        }
    }
}

fn write(root: &Path, path: &str, content: &str, mode: Option<u32>) {
    let p: PathBuf = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    if let Some(mode) = mode {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Entry names of a tar archive, in order, with a type letter: `d`, `f`, `l -> target`.
pub fn tar_listing(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let header = e.header();
            let mode = header.mode().unwrap() & 0o7777;
            match header.entry_type() {
                tar::EntryType::Directory => format!("{path} d {mode:o}"),
                tar::EntryType::Symlink => {
                    let target = e.link_name().unwrap().unwrap();
                    format!("{path} l {}", target.display())
                }
                tar::EntryType::Regular => format!("{path} f {mode:o}"),
                other => format!("{path} {other:?}"),
            }
        })
        .collect()
}

/// The manifest digest the registry serves for `repository_path:tag` (HEAD with credentials),
/// `None` when it has no such tag.
pub fn registry_digest(s: &Services, repository_path: &str, tag: &str) -> Option<String> {
    let url = format!("http://{}/v2/{repository_path}/manifests/{tag}", s.registry);
    let out = Command::new("curl")
        .args(["-sfI", "-u", &format!("{}:{}", s.user, s.password)])
        .args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
        ])
        .arg(&url)
        .output()
        .expect("run curl");
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("docker-content-digest")
            .then(|| value.trim().to_string())
    })
}

/// Every tag of a repository in the registry (empty when it has none).
pub fn registry_tags(s: &Services, repository_path: &str) -> Vec<String> {
    let url = format!("http://{}/v2/{repository_path}/tags/list", s.registry);
    let out = Command::new("curl")
        .args(["-sf", "-u", &format!("{}:{}", s.user, s.password)])
        .arg(&url)
        .output()
        .expect("run curl");
    if !out.status.success() {
        return Vec::new();
    }
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut tags: Vec<String> = value["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags
}

/// The `pip` stand-in of [`python_shim_image`]: it records its arguments in `/pip.log`, and
/// `pip wheel --wheel-dir D` creates `D` with a file in it, so the example monorepo's
/// Dockerfiles (pip install, pip wheel, COPY --from) run unchanged with no network.
const PIP_SHIM: &str = "#!/bin/sh\n\
echo \"pip $*\" >> /pip.log\n\
prev=\"\"\n\
for a in \"$@\"; do\n\
  if [ \"$prev\" = \"--wheel-dir\" ]; then mkdir -p \"$a\" && echo wheel > \"$a/fake.whl\"; fi\n\
  prev=\"$a\"\n\
done\n";

/// A local image standing in for `python:3.11-slim`: the base image plus a `pip` that only
/// records what it was asked to do. Built once per machine (same content, same tag).
pub fn python_shim_image(s: &Services) -> String {
    static DONE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(tag) = done.as_ref() {
        return tag.clone();
    }
    let tag = "dagster-deploy-test/python-shim:1".to_string();
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File(
                "Dockerfile",
                &format!("FROM {}\nCOPY pip /bin/pip\n", s.base_image),
            ),
            Node::Mode("pip", PIP_SHIM, 0o755),
        ],
    );
    let dir = tmp.path().to_string_lossy().into_owned();
    s.docker(&["build", "-q", "--network", "none", "-t", &tag, &dir]);
    *done = Some(tag.clone());
    tag
}

/// A git repository for the binary to plan and build.
pub struct Monorepo {
    pub dir: tempfile::TempDir,
}

impl Monorepo {
    pub fn new() -> Monorepo {
        let m = Monorepo {
            dir: tempfile::tempdir().unwrap(),
        };
        m.git(&["init", "-q", "-b", "main"]);
        m
    }

    /// A copy of `examples/monorepo` with its registry replaced by `registry`.
    pub fn example(registry: &str) -> Monorepo {
        let m = Monorepo::new();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo");
        copy_dir(&src, m.path());
        let yaml = std::fs::read_to_string(m.path().join("dagster_cloud.yaml")).unwrap();
        let replaced = yaml.replace("localhost:5000/dagster-example", registry);
        assert_ne!(yaml, replaced, "the example's registry changed");
        m.write("dagster_cloud.yaml", &replaced);
        m.commit("example");
        m
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) {
        write(self.path(), rel, content, None);
    }

    pub fn git(&self, args: &[&str]) -> String {
        changes_support::git_in(self.path(), args)
    }

    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// `dagster-deploy ARGS` in this repository, against the test services, with the
    /// registry credentials in the environment, no user Docker config, no CI markers and no
    /// Dagster+ settings (so `deploy` registers in the repository's local store).
    pub fn command(&self, s: &Services, args: &[&str]) -> Command {
        let mut cmd = bin(self.path());
        cmd.args(args)
            .env("DOCKER_HOST", &s.docker_host)
            .env("DAGSTER_DEPLOY_REGISTRY_USERNAME", &s.user)
            .env("DAGSTER_DEPLOY_REGISTRY_PASSWORD", &s.password)
            .env("DOCKER_CONFIG", self.path().join(".no-docker-config"));
        cmd
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Output of a finished command: exit code, stdout, stderr.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(cmd: &mut Command) -> Run {
        let out = cmd.output().expect("run dagster-deploy");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}
