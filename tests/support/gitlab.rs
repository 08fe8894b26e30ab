//! A small GitLab runner for the template tests: it resolves each job's `extends` and
//! `default`, evaluates its `rules` against GitLab's predefined variables for a default-branch
//! pipeline and a merge request pipeline, expands variables in variables, and runs
//! `before_script` + `script` with `sh -e` as GitLab's shell executor does (in an empty folder
//! for `GIT_STRATEGY: none`); and the variables a project sets for the templates.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_yaml_ng::{Mapping, Value};

use super::ci::{Serve, file_server};
use super::{Cleanup, Monorepo, Services};

/// The token the recording notes API expects.
pub const GITLAB_TOKEN: &str = "glpat-recorded";

/// A template of `ci-templates/gitlab`, parsed.
pub fn template(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("ci-templates/gitlab")
        .join(name);
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The keys of `default:` that a job without its own takes.
const DEFAULT_KEYS: [&str; 3] = ["image", "before_script", "services"];

/// The job with its `extends` chain (and the file's `default`) merged in, as GitLab does:
/// mappings merge key by key (the job's own values win), anything else is replaced.
fn resolved(doc: &Value, name: &str) -> Mapping {
    let mut job = resolved_extends(doc, name);
    if let Some(defaults) = doc.get("default").and_then(Value::as_mapping) {
        for key in DEFAULT_KEYS {
            if let (None, Some(v)) = (job.get(key), defaults.get(key)) {
                job.insert(key.into(), v.clone());
            }
        }
    }
    job
}

fn resolved_extends(doc: &Value, name: &str) -> Mapping {
    let job = doc[name]
        .as_mapping()
        .unwrap_or_else(|| panic!("no job {name}"));
    let mut merged = match job.get("extends") {
        Some(Value::String(parent)) => resolved_extends(doc, parent),
        Some(other) => panic!("unsupported extends: {other:?}"),
        None => Mapping::new(),
    };
    for (k, v) in job {
        if k.as_str() == Some("extends") {
            continue;
        }
        match (merged.get_mut(k), v) {
            (Some(Value::Mapping(base)), Value::Mapping(over)) => {
                for (kk, vv) in over {
                    base.insert(kk.clone(), vv.clone());
                }
            }
            _ => {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    merged
}

/// `$A == $B` and `$A == "text"`: the rule forms the templates use. `None`: no rule matched.
fn rule_when(job: &Mapping, vars: &BTreeMap<String, String>) -> Option<String> {
    let operand = |s: &str| -> String {
        let s = s.trim();
        match s.strip_prefix('$') {
            Some(name) => vars.get(name).cloned().unwrap_or_default(),
            None => s.trim_matches('"').to_string(),
        }
    };
    for rule in job.get("rules")?.as_sequence()? {
        let condition = rule["if"].as_str().expect("a rule without if");
        let (left, right) = condition
            .split_once("==")
            .unwrap_or_else(|| panic!("unsupported rule: {condition}"));
        let defined = |s: &str| {
            !s.trim().starts_with('$') || vars.contains_key(s.trim().trim_start_matches('$'))
        };
        if defined(left) && operand(left) == operand(right) {
            return Some(rule["when"].as_str().unwrap_or("on_success").to_string());
        }
    }
    None
}

/// What a job did: its exit code and its log.
pub struct JobRun {
    pub code: i32,
    pub log: String,
}

impl std::fmt::Display for JobRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n{}", self.code, self.log)
    }
}

/// `$NAME` and `${NAME}` replaced by their values, as GitLab expands variables in variables.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let re = regex::Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?").unwrap();
    re.replace_all(text, |c: &regex::Captures| {
        vars.get(&c[1]).cloned().unwrap_or_default()
    })
    .into_owned()
}

/// How this machine reaches package indexes (its CA bundle, proxies), as a runner's host
/// configures its jobs; the jobs' environment is otherwise only the pipeline's variables.
const HOST_NETWORK_VARS: [&str; 12] = [
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "PIP_INDEX_URL",
    "PIP_FIND_LINKS",
    "UV_INDEX_URL",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

/// The `PATH` of a job: a small image's.
pub const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs a pipeline's jobs in the checkout `m` as GitLab's shell executor does.
pub struct Runner<'a> {
    pub m: &'a Monorepo,
    /// The pipeline's configuration (a template, or a generated child pipeline).
    pub doc: Value,
    /// The job's `PATH`, standing in for its image.
    pub path: String,
    /// Project CI/CD variables (the settings a team adds in GitLab).
    pub project: BTreeMap<String, String>,
    pub temp: tempfile::TempDir,
}

impl Runner<'_> {
    /// The jobs of a pipeline with these predefined variables, and when each runs.
    pub fn jobs(&self, pipeline: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut jobs = BTreeMap::new();
        for (name, _) in self.doc.as_mapping().unwrap() {
            let name = name.as_str().unwrap();
            if name.starts_with('.')
                || ["variables", "include", "default", "stages"].contains(&name)
            {
                continue;
            }
            let job = resolved(&self.doc, name);
            // A child pipeline's jobs have no rules: they always run.
            let when = match job.get("rules") {
                Some(_) => rule_when(&job, pipeline),
                None => Some("on_success".to_string()),
            };
            if let Some(when) = when {
                jobs.insert(name.to_string(), when);
            }
        }
        jobs
    }

    /// Runs the job `name` in a pipeline with these predefined variables.
    pub fn run(&self, name: &str, pipeline: &BTreeMap<String, String>) -> JobRun {
        let job = resolved(&self.doc, name);
        // Predefined variables first: the file's variables may refer to them.
        let mut vars: BTreeMap<String, String> = pipeline.clone();
        vars.insert("CI_JOB_NAME".into(), name.into());
        for scope in [self.doc.get("variables"), job.get("variables")]
            .into_iter()
            .flatten()
        {
            for (k, v) in scope.as_mapping().unwrap() {
                let value = expand(v.as_str().unwrap(), &vars);
                vars.insert(k.as_str().unwrap().into(), value);
            }
        }
        // Project variables override the file's; predefined ones describe the pipeline.
        vars.extend(self.project.clone());
        vars.extend(pipeline.clone());
        vars.insert("CI_JOB_NAME".into(), name.into());
        let lines = |key: &str| -> Vec<String> {
            job.get(key)
                .and_then(Value::as_sequence)
                .map(|l| l.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        let mut script = lines("before_script");
        script.extend(lines("script"));
        assert!(!script.is_empty(), "{name} has no script");
        let home = tempfile::tempdir_in(self.temp.path()).unwrap();
        // Without a checkout the job starts in an empty build folder.
        let empty = tempfile::tempdir_in(self.temp.path()).unwrap();
        let workdir = match vars.get("GIT_STRATEGY").map(String::as_str) {
            Some("none") => empty.path(),
            _ => self.m.path(),
        };
        let file = home.path().join("job.sh");
        std::fs::write(&file, script.join("\n")).unwrap();
        let out = Command::new("sh")
            .arg("-e")
            .arg(&file)
            .env_clear()
            .envs(
                HOST_NETWORK_VARS
                    .iter()
                    .filter_map(|k| Some((k, std::env::var(k).ok()?))),
            )
            .envs(&vars)
            .env("HOME", home.path())
            .env("PATH", &self.path)
            .current_dir(workdir)
            .output()
            .unwrap();
        JobRun {
            code: out.status.code().unwrap_or(-1),
            log: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

/// GitLab's predefined variables for a pipeline of `m`'s HEAD, with `extra` set too.
pub fn predefined(m: &Monorepo, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = [
        ("CI", "true"),
        ("GITLAB_CI", "true"),
        ("CI_DEFAULT_BRANCH", "main"),
        ("CI_PROJECT_NAME", "mono"),
        ("CI_PROJECT_PATH", "acme/mono"),
        ("CI_PROJECT_URL", "https://gitlab.example/acme/mono"),
        ("CI_PROJECT_ID", "7"),
        ("CI_SERVER_URL", "https://gitlab.example"),
        ("CI_JOB_URL", "https://gitlab.example/acme/mono/-/jobs/99"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.insert("CI_PROJECT_DIR".into(), m.path().display().to_string());
    vars.insert("CI_COMMIT_SHA".into(), m.git(&["rev-parse", "HEAD"]));
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    vars
}

/// What the jobs reported in `dagster-deploy.env` (their dotenv report).
pub fn dotenv(m: &Monorepo) -> BTreeMap<String, String> {
    std::fs::read_to_string(m.path().join("dagster-deploy.env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The CI/CD variables a team sets for the deployment API and the installer's download.
pub async fn project_vars(
    server: &Serve,
    releases: &tempfile::TempDir,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DAGSTER_CLOUD_URL".into(), server.url.clone()),
        ("DAGSTER_CLOUD_API_TOKEN".into(), server.token.clone()),
        (
            "DAGSTER_DEPLOY_DOWNLOAD_URL".into(),
            file_server(releases.path().to_path_buf()).await,
        ),
    ])
}

/// The registry's credentials, and the runner's engine standing in for the dind service;
/// Docker Hub is out of reach, so the example builds from a local image.
pub fn docker_vars(s: &Services, shim: &str) -> [(String, String); 4] {
    [
        ("DAGSTER_DEPLOY_REGISTRY_USERNAME".into(), s.user.clone()),
        (
            "DAGSTER_DEPLOY_REGISTRY_PASSWORD".into(),
            s.password.clone(),
        ),
        ("DOCKER_HOST".into(), s.docker_host.clone()),
        (
            "DAGSTER_DEPLOY_BUILD_ARGS".into(),
            format!("BASE_IMAGE={shim}"),
        ),
    ]
}

/// Removes (at the end of the test) every tag the pipelines pushed to `registry`.
pub fn clean_results(cleanup: &mut Cleanup, s: &Services, registry: &str) {
    for tag in super::registry_tags(s, registry.split_once('/').unwrap().1) {
        cleanup.image(&format!("{registry}:{tag}"));
    }
}
