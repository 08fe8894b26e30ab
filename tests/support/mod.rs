//! Shared helpers for the build tests: the real services started by `scripts/services.sh start`,
//! the `docker` CLI as a reference, fixture trees, and clean-up of what a test creates.
//!
//! Run `scripts/services.sh start` (as root) before `cargo test`. The variables come from the
//! environment (`eval "$(scripts/services.sh env)"`) or, when unset, from `scripts/services.sh
//! env` itself. Without the services a test skips with a notice — except under `CI`, where it
//! fails, so CI can never pass by skipping.
#![allow(dead_code)]

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

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for image in &self.images {
            let _ = Command::new("docker")
                .args(["rmi", "-f", image])
                .env("DOCKER_HOST", &self.services.docker_host)
                .output();
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
