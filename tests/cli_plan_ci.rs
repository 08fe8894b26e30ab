//! `dagster-deploy plan` in CI: event payloads, shallow clones and the fan-out outputs
//! (GitHub matrix, GitLab child pipeline).

mod support;

use std::fs;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use tempfile::TempDir;

use serde_json::Value;
use support::git_in;
use support::mono::*;

#[test]
fn in_ci_the_work_tree_is_not_counted_by_default() {
    let m = Mono::new();
    m.write("c/c/defs.py", "dirty = 1\n");
    let out = m
        .cmd()
        .env("CI", "true")
        .args(["plan", "--json", "--base", "HEAD"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["head"]["dirty"], false);
    assert_eq!(location(&plan, "c")["action"], "skip");
}

#[test]
fn github_push_from_nothing_builds_everything_and_says_why() {
    let m = Mono::new();
    let event = m.path().join("event.json");
    fs::write(
        &event,
        r#"{"before": "0000000000000000000000000000000000000000", "after": "abc", "ref": "refs/heads/main"}"#,
    )
    .expect("event");
    let out = m.github("push", &event, &["plan", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_schema(&plan);
    assert_eq!(plan["base"]["status"], "missing");
    assert_eq!(plan["summary"]["build"], 3);
    assert_eq!(location(&plan, "a")["reason"]["code"], "no-base");
}

#[test]
fn a_broken_event_payload_does_not_block_an_explicit_base() {
    let m = Mono::new();
    let missing = m.path().join("no-such-event.json");
    let run = |args: &[&str]| m.github("push", &missing, args);
    let out = run(&["plan", "--json", "--base", "HEAD"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without --base the payload is needed, and its problem is reported.
    let out = run(&["plan", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(err["error"]["code"], "ci-event-payload");
}

#[test]
fn github_merge_group_events_give_the_queue_base() {
    let m = Mono::new();
    let base = m.git(&["rev-parse", "HEAD"]);
    m.write("c/c/defs.py", "x = 2\n");
    m.commit("queued change");
    let event = m.path().join("event.json");
    fs::write(
        &event,
        format!(r#"{{"merge_group": {{"base_sha": "{base}", "head_sha": "x"}}}}"#),
    )
    .expect("event");
    let out = m.github("merge_group", &event, &["plan", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_schema(&plan);
    assert_eq!(plan["base"]["source"], "github-merge-group");
    assert_eq!(plan["base"]["commit"], base.as_str());
    assert_actions(
        &plan,
        &[
            ("a", "skip", "unchanged"),
            ("b", "skip", "unchanged"),
            ("c", "build", "inputs-changed"),
        ],
    );
}

#[test]
fn a_relative_base_missing_from_a_shallow_clone_says_so() {
    let m = Mono::new();
    m.write("c/c/defs.py", "x = 2\n");
    m.commit("second");
    let clone = TempDir::new().expect("tempdir");
    let url = format!("file://{}", m.path().display());
    git_in(clone.path(), &["clone", "-q", "--depth", "1", &url, "c"]);
    let out = Command::cargo_bin("dagster-deploy")
        .expect("binary")
        .current_dir(clone.path().join("c"))
        .args(["plan", "--base", "HEAD~1"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not in this shallow clone"), "{err}");
    assert!(err.contains("fetch-depth: 0"), "{err}");
}

#[test]
fn fan_out_outputs_list_exactly_what_ci_init_selects() {
    let m = Mono::new();
    let base = m.git(&["rev-parse", "HEAD"]);
    m.write("libs/common/common/__init__.py", "X = 1\n");
    m.write(
        "dagster_cloud.yaml",
        &YAML.replace("MODE=prod", "MODE=staging"),
    );
    m.commit("lib and c's entry");
    // a and b build; c is only redeployed, yet the session must record an image for it too.
    assert_actions(
        &m.plan(&["--base", &base]),
        &[
            ("a", "build", "inputs-changed"),
            ("b", "build", "inputs-changed"),
            ("c", "redeploy", "entry-changed"),
        ],
    );

    let (code, matrix, err) = plan_text(&m, &["--base", &base, "--github-matrix"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        matrix,
        "{\"include\":[{\"location\":\"a\"},{\"location\":\"b\"},{\"location\":\"c\"}]}\n"
    );

    let (code, text, err) = plan_text(
        &m,
        &[
            "--base",
            &base,
            "--gitlab-child-pipeline",
            "--statedir",
            "./state/",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let child: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("valid YAML");
    assert_eq!(
        gitlab_jobs(&child),
        ["build:a", "build:b", "build:c", "deploy"]
    );
    assert_eq!(child["variables"]["DAGSTER_BUILD_STATEDIR"], "state");
    let stages = child["stages"].as_sequence().expect("stages");
    for job in gitlab_jobs(&child) {
        assert!(stages.contains(&child[job.as_str()]["stage"]), "{job}");
    }
    for name in ["a", "b", "c"] {
        let job = &child[format!("build:{name}").as_str()];
        assert_eq!(
            job["script"][0],
            format!("dagster-deploy ci build --location-name '{name}'").as_str()
        );
        assert_eq!(job["needs"][0]["job"], "plan");
    }
    let deploy_needs: Vec<&str> = child["deploy"]["needs"]
        .as_sequence()
        .expect("needs")
        .iter()
        .filter_map(|n| n["job"].as_str())
        .collect();
    assert_eq!(deploy_needs, ["plan", "build:a", "build:b", "build:c"]);
    assert_eq!(child["deploy"]["script"][1], "dagster-deploy ci deploy");

    // `ci init` on the same commits selects the same locations.
    let statedir = TempDir::new().expect("tempdir");
    let out = m
        .cmd()
        .args(["ci", "init", "--base", &base, "-o", "acme", "-d", "prod"])
        .arg("--statedir")
        .arg(statedir.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut selected: Vec<String> = fs::read_dir(statedir.path())
        .expect("state folder")
        .filter_map(|e| fs::read(e.expect("entry").path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(|s| s["selected"] == true)
        .filter_map(|s| s["location_name"].as_str().map(String::from))
        .collect();
    selected.sort();
    assert_eq!(selected, ["a", "b", "c"]);
}

#[test]
fn with_nothing_to_build_the_fan_out_outputs_stay_valid() {
    let m = Mono::new();
    let (code, matrix, err) = plan_text(&m, &["--base", "HEAD", "--github-matrix"]);
    assert_eq!(
        (code, matrix.as_str()),
        (Some(0), "{\"include\":[]}\n"),
        "{err}"
    );

    let (code, text, err) = plan_text(
        &m,
        &[
            "--base",
            "HEAD",
            "--gitlab-child-pipeline",
            "--statedir",
            "s",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let child: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("valid YAML");
    // GitLab refuses a pipeline without jobs: one job says there is nothing to do.
    assert_eq!(gitlab_jobs(&child), ["nothing to deploy"]);
}

#[test]
fn the_child_pipeline_needs_a_state_folder_inside_the_project() {
    let m = Mono::new();
    let (code, _, err) = plan_text(&m, &["--base", "HEAD", "--gitlab-child-pipeline"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("needs the build-session folder"), "{err}");
    assert!(err.contains("DAGSTER_BUILD_STATEDIR"), "{err}");
    for outside in ["/elsewhere/state", "../state", "."] {
        let (code, _, err) = plan_text(
            &m,
            &[
                "--base",
                "HEAD",
                "--gitlab-child-pipeline",
                "--statedir",
                outside,
            ],
        );
        assert_eq!(code, Some(2), "{outside}: {err}");
        assert!(err.contains("inside the project directory"), "{err}");
    }
    let (code, _, err) = plan_text(&m, &["--json", "--github-matrix"]);
    assert_eq!(code, Some(2), "{err}");
}
