//! The GitLab template `python-executable.gitlab-ci.yml` runs for real: its deploy jobs build and
//! upload a Python executable to a `dagster-deploy serve` process (no Docker) and always report the
//! deployment. The install lines download this build from a local release server (checked SHA-256);
//! GitLab's notes API is a recording server. support::gitlab is the runner (it resolves `extends`,
//! `default` and `rules` and runs the scripts with `sh -e` as GitLab's shell executor does);
//! tests/gitlab_pipelines.rs checks the same files against GitLab's schema in an emulator.

mod support;

use std::path::Path;
use std::process::Command;

use support::Monorepo;
use support::ci::{CommentApi, Serve, release_folder};
use support::gitlab::{
    GITLAB_TOKEN, IMAGE_PATH, Runner, dotenv, predefined, project_vars, template,
};

/// The Python-executable template: every deploy job writes its dotenv report and the merge
/// request note, also when nothing changed, so later jobs always learn the deployment.
#[cfg_attr(
    not(ci),
    ignore = "needs python3.11, pex and uv (scripts/pex-tools.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_python_executable_template_reports_its_deployment() {
    // python3.11 and the pex tools, as the pex_deploy_* tests need them; no Docker.
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
