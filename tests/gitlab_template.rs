//! The GitLab templates run for real (`docker.gitlab-ci.yml`, and `fan-out.gitlab-ci.yml` with
//! the child pipeline its plan job writes): a small runner resolves each job's `extends` and
//! `default`, evaluates its `rules` against GitLab's predefined variables for a default-branch
//! pipeline and a merge request pipeline, expands variables in variables, and runs
//! `before_script` + `script` with `sh -e` as GitLab's shell executor does (in an empty folder
//! for `GIT_STRATEGY: none`). The install lines download this build from a local release
//! server (checked SHA-256); the deploys use the real Docker engine, the htpasswd registry and a
//! `dagster-deploy serve` process; GitLab's notes API is a recording server.
//! tests/gitlab_pipelines.rs checks the same files against GitLab's schema in an emulator.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_yaml_ng::{Mapping, Value};
use support::ci::{CommentApi, Serve, file_server, release_folder};
use support::{Cleanup, Monorepo, Services, python_shim_image, services, unique};

const GITLAB_TOKEN: &str = "glpat-recorded";

fn template(name: &str) -> Value {
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

struct JobRun {
    code: i32,
    log: String,
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
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct Runner<'a> {
    m: &'a Monorepo,
    /// The pipeline's configuration (a template, or a generated child pipeline).
    doc: Value,
    /// The job's `PATH`, standing in for its image.
    path: String,
    /// Project CI/CD variables (the settings a team adds in GitLab).
    project: BTreeMap<String, String>,
    temp: tempfile::TempDir,
}

impl Runner<'_> {
    /// The jobs of a pipeline with these predefined variables, and when each runs.
    fn jobs(&self, pipeline: &BTreeMap<String, String>) -> BTreeMap<String, String> {
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

    fn run(&self, name: &str, pipeline: &BTreeMap<String, String>) -> JobRun {
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

fn predefined(m: &Monorepo, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
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

fn dotenv(m: &Monorepo) -> BTreeMap<String, String> {
    std::fs::read_to_string(m.path().join("dagster-deploy.env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The CI/CD variables a team sets for the deployment API and the installer's download.
async fn project_vars(server: &Serve, releases: &tempfile::TempDir) -> BTreeMap<String, String> {
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
fn docker_vars(s: &Services, shim: &str) -> [(String, String); 4] {
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

fn clean_results(cleanup: &mut Cleanup, s: &Services, registry: &str) {
    for tag in support::registry_tags(s, registry.split_once('/').unwrap().1) {
        cleanup.image(&format!("{registry}:{tag}"));
    }
}

// Multi-threaded: the test blocks on child processes while its servers answer them.
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_template_deploys_the_default_branch_and_merge_requests() {
    let Some(s) = services().await else { return };
    let shim = python_shim_image(&s);
    let registry = format!("{}/{}", s.registry, unique("dagster-deploy-test/gitlab"));
    let m = Monorepo::example(&registry);
    std::fs::write(m.path().join(".gitignore"), "dagster-deploy.env\n").unwrap();
    m.commit("ignore the dotenv report");
    let server = Serve::start(&s);
    let mut cleanup = Cleanup::new(&s);
    let releases = release_folder(env!("CARGO_PKG_VERSION"));
    let (api, api_url) = CommentApi::start(("private-token", GITLAB_TOKEN)).await;
    let mut project = project_vars(&server, &releases).await;
    project.extend(docker_vars(&s, &shim));
    project.insert("DAGSTER_DEPLOY_GITLAB_TOKEN".into(), GITLAB_TOKEN.into());
    let runner = Runner {
        m: &m,
        doc: template("docker.gitlab-ci.yml"),
        path: IMAGE_PATH.into(),
        project,
        temp: tempfile::tempdir().unwrap(),
    };
    let all = ["analytics", "ingest", "ml", "reporting"];

    // A pipeline on main runs only the deploy job: every location lands in prod.
    let before = m.git(&["rev-parse", "HEAD"]);
    m.commit("an unrelated commit on main");
    let main = predefined(
        &m,
        &[
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_COMMIT_BEFORE_SHA", &before),
        ],
    );
    assert_eq!(
        runner.jobs(&main),
        BTreeMap::from([("dagster-deploy".to_string(), "on_success".to_string())])
    );
    let deployed = runner.run("dagster-deploy", &main);
    clean_results(&mut cleanup, &s, &registry);
    assert_eq!(deployed.code, 0, "{deployed}");
    assert!(
        deployed.log.contains("section_start:"),
        "collapsible sections: {deployed}"
    );
    assert!(!deployed.log.contains(&s.password), "{deployed}");
    assert!(!deployed.log.contains(&server.token), "{deployed}");
    let prod = server.images("prod");
    assert_eq!(prod.keys().collect::<Vec<_>>(), all);
    assert_eq!(dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"], "prod");
    assert_eq!(dotenv(&m)["DAGSTER_DEPLOY_IS_BRANCH_DEPLOYMENT"], "false");
    assert_eq!(
        api.count("GET") + api.count("POST"),
        0,
        "no note outside a merge request"
    );

    // A merge request pipeline: its branch deployment gets every location, one note is
    // posted, and the stop job is offered as a manual job.
    let base = m.git(&["rev-parse", "HEAD"]);
    m.git(&["checkout", "-q", "-b", "faster-ingest"]);
    m.write("ingest/ingest/extra.py", "FAST = True\n");
    m.commit("faster ingest");
    let mr = |m: &Monorepo| {
        predefined(
            m,
            &[
                ("CI_PIPELINE_SOURCE", "merge_request_event"),
                ("CI_COMMIT_REF_NAME", "faster-ingest"),
                ("CI_MERGE_REQUEST_IID", "5"),
                ("CI_MERGE_REQUEST_PROJECT_ID", "7"),
                ("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "7"),
                ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "faster-ingest"),
                ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
                ("CI_MERGE_REQUEST_DIFF_BASE_SHA", &base),
                ("CI_API_V4_URL", &api_url),
            ],
        )
    };
    let pipeline = mr(&m);
    assert_eq!(
        runner.jobs(&pipeline),
        BTreeMap::from([
            (
                "dagster-deploy-branch".to_string(),
                "on_success".to_string()
            ),
            (
                "dagster-deploy-branch-close".to_string(),
                "manual".to_string()
            ),
        ])
    );
    let opened = runner.run("dagster-deploy-branch", &pipeline);
    clean_results(&mut cleanup, &s, &registry);
    assert_eq!(opened.code, 0, "{opened}");
    let branch = dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"].clone();
    assert_ne!(branch, "prod");
    assert_eq!(dotenv(&m)["DAGSTER_DEPLOY_IS_BRANCH_DEPLOYMENT"], "true");
    let images = server.images(&branch);
    assert_eq!(images.keys().collect::<Vec<_>>(), all);
    assert_ne!(images["ingest"], prod["ingest"]);
    assert_eq!(images["ml"], prod["ml"]);
    assert_eq!(server.pull_request_status(&branch).as_deref(), Some("OPEN"));
    let notes = api.bodies();
    assert_eq!(notes.len(), 1, "{opened}");
    assert!(notes[0].contains("branch deployment of !5"), "{notes:?}");
    assert!(notes[0].contains("| ingest | built |"), "{notes:?}");

    // Another push to the merge request: the same branch deployment, the note edited.
    m.write("ingest/ingest/extra.py", "FAST = 'yes'\n");
    m.commit("even faster ingest");
    let updated = runner.run("dagster-deploy-branch", &mr(&m));
    clean_results(&mut cleanup, &s, &registry);
    assert_eq!(updated.code, 0, "{updated}");
    assert_eq!(dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"], branch);
    assert_eq!(api.bodies().len(), 1);
    assert_eq!((api.count("POST"), api.count("PUT")), (1, 1));

    // The environment's stop action closes the branch deployment, without a checkout (the
    // branch may be gone); prod is untouched.
    let closed = runner.run("dagster-deploy-branch-close", &mr(&m));
    assert!(
        !closed.log.contains("not inside a git repository"),
        "{closed}"
    );
    assert_eq!(closed.code, 0, "{closed}");
    assert_eq!(
        server.pull_request_status(&branch).as_deref(),
        Some("CLOSED")
    );
    assert_eq!(server.images("prod"), prod);
}

/// The fan-out template in a merge request pipeline: the plan job starts the session (creating
/// the branch deployment, reported in its dotenv) and writes the child pipeline; the child's
/// build jobs and its deploy job run with the plan job's artifacts; the stop job closes it.
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_fan_out_builds_in_a_child_pipeline_and_closes_the_branch_deployment() {
    let Some(s) = services().await else { return };
    let shim = python_shim_image(&s);
    let registry = format!("{}/{}", s.registry, unique("dagster-deploy-test/fanout"));
    let m = Monorepo::example(&registry);
    std::fs::write(
        m.path().join(".gitignore"),
        "dagster-deploy.env\ndagster-deploy-child.yml\n.dagster-deploy-*/\n",
    )
    .unwrap();
    m.commit("ignore the pipeline's files");
    let server = Serve::start(&s);
    let mut cleanup = Cleanup::new(&s);
    let releases = release_folder(env!("CARGO_PKG_VERSION"));
    let mut project = project_vars(&server, &releases).await;
    project.extend(docker_vars(&s, &shim));
    let parent = Runner {
        m: &m,
        doc: template("fan-out.gitlab-ci.yml"),
        path: IMAGE_PATH.into(),
        project: project.clone(),
        temp: tempfile::tempdir().unwrap(),
    };

    let base = m.git(&["rev-parse", "HEAD"]);
    m.git(&["checkout", "-q", "-b", "faster-ingest"]);
    m.write("ingest/ingest/extra.py", "FAST = True\n");
    m.commit("faster ingest");
    let pipeline = predefined(
        &m,
        &[
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_PIPELINE_ID", "4242"),
            ("CI_COMMIT_REF_NAME", "faster-ingest"),
            ("CI_MERGE_REQUEST_IID", "9"),
            ("CI_MERGE_REQUEST_PROJECT_ID", "7"),
            ("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "7"),
            ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "faster-ingest"),
            ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
            ("CI_MERGE_REQUEST_DIFF_BASE_SHA", &base),
        ],
    );
    let jobs = parent.jobs(&pipeline);
    assert_eq!(
        jobs.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "dagster-deploy-branch-close",
            "dagster-deploy-plan-branch",
            "dagster-deploy-run-branch"
        ]
    );
    let planned = parent.run("dagster-deploy-plan-branch", &pipeline);
    assert_eq!(planned.code, 0, "{planned}");
    let branch = dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"].clone();
    assert_ne!(branch, "prod", "{planned}");
    assert_eq!(dotenv(&m)["DAGSTER_DEPLOY_IS_BRANCH_DEPLOYMENT"], "true");
    assert_eq!(server.pull_request_status(&branch).as_deref(), Some("OPEN"));

    // The trigger job runs the child pipeline the plan job wrote, as GitLab would.
    let child_text = std::fs::read_to_string(m.path().join("dagster-deploy-child.yml")).unwrap();
    assert!(
        child_text.contains("job: dagster-deploy-plan-branch"),
        "{child_text}"
    );
    let child = Runner {
        m: &m,
        doc: serde_yaml_ng::from_str(&child_text).unwrap(),
        path: IMAGE_PATH.into(),
        project,
        temp: tempfile::tempdir().unwrap(),
    };
    let mut child_pipeline = pipeline.clone();
    child_pipeline.insert("PARENT_PIPELINE_ID".into(), "4242".into());
    let child_jobs = child.jobs(&child_pipeline);
    assert!(child_jobs.contains_key("build:ingest"), "{child_text}");
    for job in child_jobs.keys().filter(|j| j.starts_with("build:")) {
        let built = child.run(job, &child_pipeline);
        clean_results(&mut cleanup, &s, &registry);
        assert_eq!(built.code, 0, "{job}: {built}");
        assert!(!built.log.contains(&s.password), "{built}");
    }
    let deployed = child.run("deploy", &child_pipeline);
    assert_eq!(deployed.code, 0, "{deployed}");
    assert!(!deployed.log.contains(&server.token), "{deployed}");
    let images = server.images(&branch);
    assert!(images.contains_key("ingest"), "{images:?}\n{deployed}");
    assert!(server.images("prod").is_empty());

    // Closing the merge request: the stop job runs without a checkout.
    let closed = parent.run("dagster-deploy-branch-close", &pipeline);
    assert_eq!(closed.code, 0, "{closed}");
    assert_eq!(
        server.pull_request_status(&branch).as_deref(),
        Some("CLOSED")
    );
}

/// The Python-executable template: every deploy job writes its dotenv report and the merge
/// request note, also when nothing changed, so later jobs always learn the deployment.
#[cfg_attr(
    not(ci),
    ignore = "needs python3.11, pex and uv (scripts/pex-tools.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_python_executable_template_reports_its_deployment() {
    // python3.11 and the pex tools, as in tests/pex_deploy.rs; no Docker.
    let python = Command::new("python3.11")
        .args(["-c", "import sys; print(sys.executable)"])
        .output();
    let tools = std::env::var("DAGSTER_DEPLOY_TOOLS_DIR").ok();
    let (Ok(python), Some(tools)) = (python, tools) else {
        support::missing::<()>(
            "python3.11 and DAGSTER_DEPLOY_TOOLS_DIR are needed",
            "run `scripts/pex-tools.sh` first",
        );
        return;
    };
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();
    let python_dir = Path::new(&python).parent().unwrap().display().to_string();

    let m = Monorepo::new();
    m.write(
        "dagster_cloud.yaml",
        "locations:\n  - location_name: tiny\n    code_source:\n      module_name: tiny\n    build:\n      directory: tiny\n",
    );
    m.write("tiny/tiny/__init__.py", "VALUE = 1\n");
    m.write(
        "tiny/setup.py",
        "from setuptools import setup\nsetup(name='tiny', packages=['tiny'], install_requires=['dagster'])\n",
    );
    m.write(".gitignore", "dagster-deploy.env\n");
    m.commit("a tiny location");
    let server = Serve::with_args(&["--no-image-checks"], &[]);
    let releases = release_folder(env!("CARGO_PKG_VERSION"));
    let (api, api_url) = CommentApi::start(("private-token", GITLAB_TOKEN)).await;
    let mut project = project_vars(&server, &releases).await;
    project.insert("DAGSTER_DEPLOY_GITLAB_TOKEN".into(), GITLAB_TOKEN.into());
    project.insert("DAGSTER_DEPLOY_TOOLS_DIR".into(), tools);
    // uv's and pex's caches, as a GitLab `cache:` would keep them between pipelines.
    project.insert(
        "XDG_CACHE_HOME".into(),
        format!("{}/.cache", std::env::var("HOME").unwrap_or_default()),
    );
    let runner = Runner {
        m: &m,
        doc: template("python-executable.gitlab-ci.yml"),
        // The image is python:3.11-slim: Python comes first on its PATH.
        path: format!("{python_dir}:{IMAGE_PATH}"),
        project,
        temp: tempfile::tempdir().unwrap(),
    };

    let main = |m: &Monorepo, before: &str| {
        predefined(
            m,
            &[
                ("CI_PIPELINE_SOURCE", "push"),
                ("CI_COMMIT_BRANCH", "main"),
                ("CI_COMMIT_REF_NAME", "main"),
                ("CI_COMMIT_BEFORE_SHA", before),
            ],
        )
    };
    let root = m.git(&["rev-list", "--max-parents=0", "HEAD"]);
    let first = runner.run("dagster-deploy", &main(&m, &root));
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(server.images("prod").keys().collect::<Vec<_>>(), ["tiny"]);
    assert_eq!(dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"], "prod", "{first}");

    // Nothing changed since the last deploy: still a report for later jobs.
    std::fs::remove_file(m.path().join("dagster-deploy.env")).unwrap();
    let before = m.git(&["rev-parse", "HEAD"]);
    m.write("README.md", "docs only\n");
    m.commit("docs");
    let unchanged = runner.run("dagster-deploy", &main(&m, &before));
    assert_eq!(unchanged.code, 0, "{unchanged}");
    assert_eq!(
        dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"],
        "prod",
        "{unchanged}"
    );
    assert_eq!(dotenv(&m)["DAGSTER_DEPLOY_IS_BRANCH_DEPLOYMENT"], "false");

    // A merge request: the branch deployment in the dotenv report, and one note.
    let base = m.git(&["rev-parse", "HEAD"]);
    m.git(&["checkout", "-q", "-b", "tiny-change"]);
    m.write("tiny/tiny/__init__.py", "VALUE = 2\n");
    m.commit("change tiny");
    let pipeline = predefined(
        &m,
        &[
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_COMMIT_REF_NAME", "tiny-change"),
            ("CI_MERGE_REQUEST_IID", "3"),
            ("CI_MERGE_REQUEST_PROJECT_ID", "7"),
            ("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "7"),
            ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "tiny-change"),
            ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
            ("CI_MERGE_REQUEST_DIFF_BASE_SHA", &base),
            ("CI_API_V4_URL", &api_url),
        ],
    );
    let opened = runner.run("dagster-deploy-branch", &pipeline);
    assert_eq!(opened.code, 0, "{opened}");
    let branch = dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"].clone();
    assert_ne!(branch, "prod", "{opened}");
    assert_eq!(dotenv(&m)["DAGSTER_DEPLOY_IS_BRANCH_DEPLOYMENT"], "true");
    assert_eq!(server.images(&branch).keys().collect::<Vec<_>>(), ["tiny"]);
    let notes = api.bodies();
    assert_eq!(notes.len(), 1, "{opened}");
    assert!(notes[0].contains("| tiny |"), "{notes:?}");

    let closed = runner.run("dagster-deploy-branch-close", &pipeline);
    assert_eq!(closed.code, 0, "{closed}");
    assert_eq!(
        server.pull_request_status(&branch).as_deref(),
        Some("CLOSED")
    );
}
