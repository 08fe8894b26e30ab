//! The real services the Docker tests use (`scripts/services.sh start`: engine, htpasswd
//! registry, base image), the `docker` CLI as a reference, and clean-up of what a test creates.
//!
//! The variables come from the environment (`. scripts/services.sh env`) or, when unset, from
//! `scripts/services.sh env` itself.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use dagster_deploy::build::{DockerEngine, Engine, RegistryCredentials};

use super::files::{Node, write_tree};
use super::git::TestRepo;
use super::missing;

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

/// Connects to the services. A test calling this is marked `#[cfg_attr(not(ci), ignore =
/// ...)]`: it runs under CI (and fails there when they are missing); run by hand without
/// them, it says why and returns `None`.
pub async fn services() -> Option<Services> {
    match try_services().await {
        Ok(services) => Some(services),
        Err(reason) => missing(&reason, "run `scripts/services.sh start` first"),
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

/// A repository with one location, `app`, whose Dockerfile builds `dockerfile` on the base
/// image and pushes to `registry`.
pub fn one_location(s: &Services, registry: &str, dockerfile: &str) -> TestRepo {
    let m = TestRepo::new();
    m.write(
        "dagster_cloud.yaml",
        &format!(
            "locations:\n  - location_name: app\n    code_source:\n      package_name: app\n    \
             build:\n      directory: app\n      registry: {registry}\n"
        ),
    );
    m.write(
        "app/Dockerfile",
        &format!("FROM {}\n{dockerfile}", s.base_image),
    );
    m.write("app/hello.txt", "hello\n");
    m.commit("app");
    m
}
