//! `deploy` in CI with bad input fails before any work, says what to fix, and creates nothing:
//! no token (naming the GitHub Action input or the GitLab variable), an event payload that
//! cannot be read, a branch deployment asked for outside a pull request.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| support::git_in(dir.path(), args);
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(
        dir.path().join("dagster_cloud.yaml"),
        "locations:\n  - location_name: a\n    code_source:\n      package_name: a\n    build:\n      registry: localhost:5000/x\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("a/f.py"), "x = 1\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "init"]);
    dir
}

/// `deploy ARGS` in `dir` with only `vars` in the environment (and no Docker engine).
fn deploy(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_dagster-deploy"))
        .arg("deploy")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn nothing_created(dir: &Path) {
    assert!(!dir.join(".dagster-deploy").exists());
}

#[test]
fn without_a_token_github_names_the_action_input_and_gitlab_the_variable() {
    let r = repo();
    let (code, out) = deploy(r.path(), &[("GITHUB_ACTIONS", "true")], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no deployment to register with"), "{out}");
    assert!(out.contains("`api-token` input"), "{out}");
    let (code, out) = deploy(
        r.path(),
        &[
            ("GITLAB_CI", "true"),
            ("DAGSTER_CLOUD_ORGANIZATION", "acme"),
        ],
        &[],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no Dagster+ API token"), "{out}");
    assert!(
        out.contains("CI/CD variable DAGSTER_CLOUD_API_TOKEN"),
        "{out}"
    );
    nothing_created(r.path());
}

#[test]
fn an_unreadable_event_payload_is_named_and_nothing_happens() {
    let r = repo();
    let event = r.path().join("event.json");
    std::fs::write(&event, "{broken").unwrap();
    let event = event.to_string_lossy().into_owned();
    let (code, out) = deploy(
        r.path(),
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", &event),
            ("DAGSTER_CLOUD_URL", "http://127.0.0.1:9"),
            ("DAGSTER_CLOUD_API_TOKEN", "secret-token-value"),
        ],
        &["--branch-deployment", "auto"],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("cannot read the CI event payload"), "{out}");
    assert!(out.contains(&event), "{out}");
    // Masked for the runner, and otherwise never printed.
    assert_eq!(out.matches("secret-token-value").count(), 1, "{out}");
    assert!(out.contains("::add-mask::secret-token-value"), "{out}");
    nothing_created(r.path());
}

#[test]
fn a_branch_deployment_outside_a_pull_request_is_refused() {
    let r = repo();
    let event = r.path().join("push.json");
    std::fs::write(
        &event,
        r#"{"ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000"}"#,
    )
    .unwrap();
    let (code, out) = deploy(
        r.path(),
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_EVENT_PATH", &event.to_string_lossy()),
            ("DAGSTER_CLOUD_URL", "http://127.0.0.1:9"),
            ("DAGSTER_CLOUD_API_TOKEN", "t"),
        ],
        &["--branch-deployment"],
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("this run builds no pull (merge) request"),
        "{out}"
    );
    nothing_created(r.path());
}

#[test]
fn on_github_config_problems_are_annotations_on_their_lines() {
    let r = repo();
    std::fs::write(
        r.path().join("dagster_cloud.yaml"),
        "locations:\n  - location_name: a\n    code_source:\n      package_name: a\n  - location_name: a\n    code_source:\n      package_name: b\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dagster-deploy"))
        .arg("check")
        .current_dir(r.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", r.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    let annotation = stderr
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no annotation in {stderr}"));
    assert!(
        annotation.starts_with("::error file=dagster_cloud.yaml,line=5,"),
        "{annotation}"
    );
    assert!(annotation.contains("::"), "{annotation}");
}

#[test]
fn a_dry_run_of_a_forks_pull_request_touches_no_engine() {
    let r = repo();
    let event = r.path().join("fork.json");
    std::fs::write(
        &event,
        r#"{"pull_request": {"number": 7, "head": {"ref": "f",
            "repo": {"full_name": "fork/r", "fork": true}},
            "base": {"repo": {"full_name": "o/r"}}}, "repository": {"full_name": "o/r"}}"#,
    )
    .unwrap();
    let event = event.to_string_lossy().into_owned();
    let (code, out) = deploy(
        r.path(),
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", &event),
        ],
        &["--dry-run", "--all"],
    );
    // The engine of `deploy` does not exist: a dry run must not have asked it anything.
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("build only"), "{out}");
    assert!(!out.contains("nonexistent"), "{out}");
    nothing_created(r.path());
}
