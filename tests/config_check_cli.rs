//! `dagster-deploy check` end to end: what it reports, how, and what it never prints.

mod support;

use support::{TestRepo, bin, run};

const TEMPLATED: &str = "\
locations:
  - location_name: a
    build:
      directory: a
    container_context:
      k8s:
        env_vars: [DATABASE_URL={{ get_env(\"DATABASE_URL\") }}]
";

const SECRET_URL: &str = "postgres://app:hunter2-pw@db.internal/app?sslmode=require";

#[test]
fn values_from_the_environment_never_appear_in_diagnostics() {
    let t = TestRepo::new();
    t.write("a/x.py", "x\n");
    t.write("dagster_cloud.yaml", TEMPLATED);
    for json in [false, true] {
        let mut cmd = bin(t.path());
        cmd.env("DATABASE_URL", SECRET_URL).arg("check");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("runs");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{all}");
        // The `?` makes the flow value invalid for PyYAML: the diagnostic quotes the value.
        assert!(all.contains("must be quoted inside"), "{all}");
        assert!(!all.contains("hunter2"), "{all}");
        assert!(!all.contains("db.internal"), "{all}");
        assert!(all.contains("DATABASE_URL=***"), "{all}");
    }
    // Defaults are part of the file, not of the environment: they are shown.
    t.write(
        "dagster_cloud.yaml",
        &TEMPLATED.replace("get_env(\"DATABASE_URL\")", "get_env(\"NOPE\", \"x?y\")"),
    );
    run(t.path(), &["check"])
        .exits(1)
        .says("`DATABASE_URL=x?y`");
}

#[test]
fn a_missing_build_directory_is_reported_with_every_other_problem() {
    let t = TestRepo::new();
    t.write(
        "dagster_cloud.yaml",
        "locations:\n  - location_name: a\n    imgae: x\n    build:\n      directory: missing\n  - location_name: b\n    build:\n      directory: also-missing\n",
    );
    let ran = run(t.path(), &["check"]);
    ran.exits(1);
    ran.says("unknown key `imgae`");
    ran.says("build directory `missing` of location `a` does not exist");
    ran.says("build directory `also-missing` of location `b` does not exist");
    assert!(
        ran.stderr
            .starts_with("error: dagster_cloud.yaml has 3 problems\n"),
        "{}",
        ran.stderr
    );
}

#[test]
fn the_heading_counts_problems_per_file() {
    let t = TestRepo::new();
    t.write("a/x.py", "x\n");
    t.write(
        "dagster_cloud.yaml",
        "locations:\n  - location_name: a\n    imgae: x\n    build:\n      directory: a\n",
    );
    t.write(
        "dagster-deploy.toml",
        "[locations.a]\nwatchh = []\nfoo = 1\n",
    );
    let ran = run(t.path(), &["check"]);
    ran.exits(1);
    assert!(
        ran.stderr.starts_with(
            "error: dagster_cloud.yaml has 1 problem, dagster-deploy.toml has 2 problems\n"
        ),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_problem_without_a_field_is_rendered_without_an_empty_one() {
    let t = TestRepo::new();
    t.write(
        "dagster_cloud.yaml",
        "locations:\n  - location_name: {{ x( }}\n",
    );
    let ran = run(t.path(), &["check"]);
    ran.exits(1);
    ran.says("dagster_cloud.yaml:2:26: template error: syntax error");
    assert!(!ran.stderr.contains(": : "), "{}", ran.stderr);
}

#[test]
fn a_file_that_is_not_utf8_is_invalid_not_unreadable() {
    let t = TestRepo::new();
    t.write("a/x.py", "x\n");
    let mut bytes =
        b"locations:\n  - location_name: a\n    build:\n      directory: a\n    image: caf"
            .to_vec();
    bytes.extend_from_slice(&[0xe9, b'\n']);
    std::fs::write(t.abs("dagster_cloud.yaml"), &bytes).expect("write");
    t.commit("latin-1");
    let ran = run(t.path(), &["check"]);
    ran.exits(1);
    ran.says("dagster_cloud.yaml:5:15: the file is not valid UTF-8");
    ran.says("save it as UTF-8");
    assert!(
        !ran.stderr.contains("run from the folder"),
        "{}",
        ran.stderr
    );
    // `plan` agrees.
    let ran = run(t.path(), &["plan", "--base", "HEAD"]);
    ran.exits(1);
    ran.says("dagster_cloud.yaml:5:15: the file is not valid UTF-8");
}

#[test]
fn a_config_path_that_does_not_exist_is_unreadable_for_check_and_plan_alike() {
    let t = TestRepo::new();
    t.write("dagster_cloud.yaml", "locations: []\n");
    t.commit("init");
    let check = run(t.path(), &["check", "--config", "nope/dagster_cloud.yaml"]);
    let plan = run(t.path(), &["plan", "--config", "nope/dagster_cloud.yaml"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    assert!(
        check
            .stderr
            .starts_with("error: cannot read nope/dagster_cloud.yaml: "),
        "{}",
        check.stderr
    );
    assert_eq!(plan.stderr, check.stderr);
}
