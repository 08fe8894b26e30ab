//! What `dagster-deploy plan` and `check` print: the human plan, errors and hints, paths.

mod support;

use std::fs;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use tempfile::TempDir;

use serde_json::Value;
use support::mono::*;

#[test]
fn human_plan_lists_actions_and_reasons() {
    let m = Mono::new();
    let base = m.git(&["rev-parse", "HEAD"]);
    m.write("c/c/defs.py", "x = 1\n");
    m.commit("c");
    let out = m
        .cmd()
        .args(["plan", "--base", &base])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("base  {} ({base}, flag)", &base[..7])),
        "{text}"
    );
    assert!(
        text.contains("skip      a  no changes in its build inputs or entry"),
        "{text}"
    );
    assert!(text.contains("build     c  changed: c/c/defs.py"), "{text}");
    assert!(
        text.contains("3 locations: 1 to build, 0 to redeploy, 2 unchanged"),
        "{text}"
    );
}

#[test]
fn plan_outside_a_repository_fails_with_a_hint() {
    let dir = TempDir::new().expect("tempdir");
    fs::write(
        dir.path().join("dagster_cloud.yaml"),
        "locations:\n  - location_name: a\n",
    )
    .expect("write");
    let out = Command::cargo_bin("dagster-deploy")
        .expect("binary")
        .current_dir(dir.path())
        .args(["plan"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not inside a git repository"), "{err}");
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn unknown_revision_is_a_usage_error_and_json_errors_have_a_code() {
    let m = Mono::new();
    let out = m
        .cmd()
        .args(["plan", "--json", "--base", "no-such-branch"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&out.stdout).expect("JSON error on stdout");
    assert_eq!(err["error"]["code"], "unknown-revision");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no-such-branch")
    );
    assert!(!err["error"]["hint"].as_str().unwrap_or_default().is_empty());
}

#[test]
fn build_directory_outside_the_repository_is_refused() {
    let m = Mono::new();
    m.write(
        "dagster_cloud.yaml",
        &YAML.replace("directory: c", "directory: ../elsewhere"),
    );
    let out = m
        .cmd()
        .args(["plan", "--base", "HEAD"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "dagster_cloud.yaml:19:18: locations[2].build.directory: build directory `../elsewhere` of location `c` is outside the repository"
        ),
        "{err}"
    );
}

#[test]
fn check_reports_valid_and_invalid_files_with_exit_codes() {
    let m = Mono::new();
    let out = m.cmd().args(["check"]).output().expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "dagster_cloud.yaml is valid: 3 locations (a, b, c)\n"
    );

    m.write(
        "dagster_cloud.yaml",
        &YAML.replace("directory: b", "directory: missing"),
    );
    let out = m.cmd().args(["check"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dagster_cloud.yaml:14:18: locations[1].build.directory"),
        "{err}"
    );

    let out = m
        .cmd()
        .args(["check", "--config", "nope.yaml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.yaml"));

    let out = m
        .cmd()
        .args(["check", "--no-such-flag"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_repository_root_is_shown_as_a_dot_everywhere() {
    let m = Mono::new();
    m.write(
        "dagster_cloud.yaml",
        &YAML.replace("directory: a\n", "directory: .\n"),
    );
    m.write("Dockerfile", "FROM scratch\n");
    m.commit("root context");
    let plan = m.plan(&["--base", "HEAD", "--all"]);
    assert_eq!(location(&plan, "a")["build_directory"], ".");
    assert_eq!(location(&plan, "a")["inputs"], serde_json::json!(["."]));
}

#[test]
fn a_repository_path_that_is_not_utf8_still_gives_json() {
    use std::os::unix::ffi::OsStrExt;
    let parent = TempDir::new().expect("tempdir");
    let dir = parent
        .path()
        .join(std::ffi::OsStr::from_bytes(b"mono-\xff"));
    fs::create_dir(&dir).expect("mkdir");
    let m = Mono::new();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", m.path().display()))
        .arg(&dir)
        .status()
        .expect("cp");
    assert!(status.success());
    let out = Command::cargo_bin("dagster-deploy")
        .expect("binary")
        .current_dir(&dir)
        .args(["plan", "--json", "--base", "HEAD"])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        plan["repository"]
            .as_str()
            .is_some_and(|r| r.ends_with("mono-\u{fffd}")),
        "{plan:#}"
    );
}

#[test]
fn hints_say_what_works() {
    // No commits: --all cannot help, so the hint does not offer it.
    let m = Mono(support::TestRepo::new());
    m.write("dagster_cloud.yaml", "locations: []\n");
    let out = m.cmd().args(["plan", "--all"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no commits"), "{err}");
    assert!(!err.contains("--all"), "{err}");

    // Unknown revisions say which flag named them.
    let m = Mono::new();
    for flag in ["--base", "--head"] {
        let out = m.cmd().args(["plan", flag, "nope"]).output().expect("runs");
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("unknown revision `nope` (given to {flag})")),
            "{err}"
        );
    }

    // A removed location is not deleted; the row does not name a command that does not exist.
    let base = m.git(&["rev-parse", "HEAD"]);
    let yaml = YAML
        .split("  - location_name: c")
        .next()
        .unwrap_or_default()
        .to_string();
    m.write("dagster_cloud.yaml", &yaml);
    m.commit("drop c");
    let out = m
        .cmd()
        .args(["plan", "--base", &base])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("removed   c  removed from dagster_cloud.yaml (not deleted)\n"),
        "{text}"
    );
}
