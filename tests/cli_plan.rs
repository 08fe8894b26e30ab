//! `dagster-deploy plan` end to end, what it decides: the binary against temporary git
//! monorepos.

mod support;

use std::fs;

use serde_json::Value;
use support::mono::*;

#[test]
fn shared_library_change_builds_both_dependents_only() {
    let m = Mono::new();
    let plan = m.commit_and_plan(
        &[("libs/common/common/__init__.py", "X = 1\n")],
        "lib change",
    );
    assert_actions(
        &plan,
        &[
            ("a", "build", "inputs-changed"),
            ("b", "build", "inputs-changed"),
            ("c", "skip", "unchanged"),
        ],
    );
    let a = location(&plan, "a");
    assert_eq!(
        a["changed_paths"],
        serde_json::json!(["libs/common/common/__init__.py"])
    );
    assert_eq!(a["inputs"], serde_json::json!(["a", "libs/common"]));
    assert_eq!(
        a["reason"]["message"],
        "changed: libs/common/common/__init__.py"
    );
    assert_eq!(
        plan["matrix"],
        serde_json::json!({"include": [{"location": "a"}, {"location": "b"}]})
    );
    assert_eq!(
        plan["summary"],
        serde_json::json!({"build": 2, "redeploy": 0, "skip": 1})
    );
    assert_eq!(plan["base"]["source"], "flag");
    assert_eq!(
        plan["base"]["commit"],
        m.git(&["rev-parse", "HEAD~1"]).as_str()
    );
}

#[test]
fn entry_change_is_a_redeploy_and_defaults_change_touches_every_location() {
    let m = Mono::new();
    let plan = m.commit_and_plan(
        &[(
            "dagster_cloud.yaml",
            &YAML.replace("MODE=prod", "MODE=staging"),
        )],
        "container context",
    );
    assert_actions(
        &plan,
        &[
            ("a", "skip", "unchanged"),
            ("b", "skip", "unchanged"),
            ("c", "redeploy", "entry-changed"),
        ],
    );
    assert_eq!(
        location(&plan, "c")["reason"]["message"],
        "dagster_cloud.yaml entry changed: container_context"
    );

    let plan = m.commit_and_plan(
        &[(
            "dagster_cloud.yaml",
            &YAML.replace("defaults:\n", "defaults:\n  agent_queue: special\n"),
        )],
        "defaults",
    );
    assert_actions(
        &plan,
        &[
            ("a", "redeploy", "entry-changed"),
            ("b", "redeploy", "entry-changed"),
            ("c", "redeploy", "entry-changed"),
        ],
    );
}

#[test]
fn registry_change_needs_a_build_and_new_location_is_built() {
    let m = Mono::new();
    let base = m.git(&["rev-parse", "HEAD"]);
    let yaml = YAML.replace("localhost:5000/mono", "localhost:5000/other")
        + "  - location_name: d\n    code_source:\n      package_name: d\n    build:\n      directory: d\n";
    m.write("dagster_cloud.yaml", &yaml);
    m.write("d/pyproject.toml", "[project]\nname = \"d\"\n");
    m.commit("move registry, add d");
    let plan = m.plan(&["--base", &base]);
    assert_actions(
        &plan,
        &[
            ("a", "build", "build-settings-changed"),
            ("b", "build", "build-settings-changed"),
            ("c", "build", "build-settings-changed"),
            ("d", "build", "new-location"),
        ],
    );
    assert_eq!(
        location(&plan, "a")["reason"]["message"],
        "build settings changed: build.registry"
    );
    assert_eq!(location(&plan, "d")["reason"]["message"], "new location");
}

#[test]
fn removed_location_is_reported_not_planned() {
    let m = Mono::new();
    let base = m.git(&["rev-parse", "HEAD"]);
    let yaml = YAML
        .split("  - location_name: c")
        .next()
        .unwrap_or_default()
        .to_string();
    m.write("dagster_cloud.yaml", &yaml);
    m.commit("drop c");
    let plan = m.plan(&["--base", &base]);
    assert_eq!(plan["removed_locations"], serde_json::json!(["c"]));
    assert_eq!(plan["locations"].as_array().map(Vec::len), Some(2));
}

#[test]
fn ignored_paths_never_trigger_a_build_but_stay_in_the_content_key() {
    let m = Mono::new();
    let base = m.git(&["rev-parse", "HEAD"]);
    let before = m.plan(&["--base", &base, "--all"]);
    m.write("a/README.md", "# docs only\n");
    m.commit("docs");
    let plan = m.plan(&["--base", &base]);
    assert_eq!(location(&plan, "a")["action"], "skip");
    // Keys are computed for what is built only.
    assert_eq!(location(&plan, "a")["content_key"], Value::Null);
    // `ignore` is a trigger policy: the file is still in the Docker context, so in the image.
    let forced = m.plan(&["--base", &base, "--all"]);
    assert_ne!(
        location(&forced, "a")["content_key"],
        location(&before, "a")["content_key"]
    );
    assert_eq!(
        location(&forced, "c")["content_key"],
        location(&before, "c")["content_key"]
    );

    m.write("a/a/__init__.py", "changed = True\n");
    m.commit("code");
    let plan = m.plan(&["--base", &base]);
    assert_eq!(location(&plan, "a")["action"], "build");
    assert!(
        location(&plan, "a")["content_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("ck-"))
    );
}

#[test]
fn forced_locations_and_all() {
    let m = Mono::new();
    let plan = m.plan(&["--base", "HEAD", "--location", "c"]);
    assert_actions(
        &plan,
        &[
            ("a", "skip", "unchanged"),
            ("b", "skip", "unchanged"),
            ("c", "build", "forced"),
        ],
    );
    let plan = m.plan(&["--base", "HEAD", "--all"]);
    assert_eq!(plan["summary"]["build"], 3);
    // The reason says which flag forced the build: --all names nobody.
    let reason = |plan: &serde_json::Value, name: &str| {
        plan["locations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap()["reason"]["message"]
            .clone()
    };
    assert_eq!(
        reason(&plan, "a"),
        "--all: every location is built whatever changed"
    );
    let plan = m.plan(&["--base", "HEAD", "--all", "--location", "c"]);
    assert_eq!(
        reason(&plan, "c"),
        "named on the command line: built whatever changed"
    );
}

#[test]
fn unknown_forced_location_is_a_usage_error_naming_the_known_ones() {
    let m = Mono::new();
    let out = m
        .cmd()
        .args(["plan", "--base", "HEAD", "--location", "nope"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--location nope: no such location in dagster_cloud.yaml"),
        "{err}"
    );
    assert!(err.contains("known locations: a, b, c"), "{err}");
}

#[test]
fn uncommitted_changes_count_on_a_laptop_but_not_when_disabled() {
    let m = Mono::new();
    m.write("c/c/defs.py", "dirty = 1\n");
    let plan = m.plan(&["--base", "HEAD"]);
    assert_eq!(plan["head"]["dirty"], true);
    assert_eq!(location(&plan, "c")["action"], "build");
    assert_eq!(
        location(&plan, "c")["changed_paths"],
        serde_json::json!(["c/c/defs.py"])
    );

    let plan = m.plan(&["--base", "HEAD", "--include-dirty=false"]);
    assert_eq!(plan["head"]["dirty"], false);
    assert_eq!(location(&plan, "c")["action"], "skip");
}

#[test]
fn an_unloadable_base_config_builds_rather_than_trusting_the_old_image() {
    let m = Mono::new();
    m.write("dagster_cloud.yaml", "locations: [\n");
    let base = m.commit("broken");
    m.write(
        "dagster_cloud.yaml",
        &YAML.replace("localhost:5000/mono", "localhost:5000/other"),
    );
    m.commit("fixed, with a new registry");
    let plan = m.plan(&["--base", &base]);
    assert_actions(
        &plan,
        &[
            ("a", "build", "base-config-unreadable"),
            ("b", "build", "base-config-unreadable"),
            ("c", "build", "base-config-unreadable"),
        ],
    );
    assert!(
        location(&plan, "a")["reason"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not load") && m.contains("building")),
        "{plan:#}"
    );
}

#[test]
fn rewriting_a_directory_or_adding_an_ignore_glob_is_not_a_build_trigger() {
    let m = Mono::new();
    let plan = m.commit_and_plan(
        &[
            (
                "dagster_cloud.yaml",
                &YAML.replace("directory: a\n", "directory: ./a/\n"),
            ),
            (
                "dagster-deploy.toml",
                "[defaults]\nignore = [\"**/*.md\", \"**/tests/**\"]\n",
            ),
        ],
        "cosmetic",
    );
    assert_actions(
        &plan,
        &[
            ("a", "skip", "unchanged"),
            ("b", "skip", "unchanged"),
            ("c", "skip", "unchanged"),
        ],
    );
}

#[test]
fn example_root_contexts_only_react_to_what_their_dockerignore_sends() {
    let m = example_repo();
    let base = m.git(&["rev-parse", "HEAD"]);
    // ingest's code is outside the other locations' contexts (their ignore files send only
    // their own folder and libs/common), although their build directory is the repo root.
    m.write("ingest/ingest/assets.py", "# changed\n");
    m.commit("ingest only");
    let plan = m.plan(&["--base", &base]);
    assert_actions(
        &plan,
        &[
            ("ingest", "build", "inputs-changed"),
            ("analytics", "skip", "unchanged"),
            ("ml", "skip", "unchanged"),
            ("reporting", "skip", "unchanged"),
        ],
    );
    assert_eq!(location(&plan, "analytics")["build_directory"], ".");

    // The shared library is sent by every context that uses it.
    let plan = m.commit_and_plan(&[("libs/common/common/extra.py", "X = 1\n")], "lib");
    let building: Vec<String> = plan["matrix"]["include"]
        .as_array()
        .expect("matrix")
        .iter()
        .map(|e| e["location"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(building, vec!["analytics", "ml", "reporting"]);

    // Editing a location's ignore file changes what its build sends.
    let base = m.git(&["rev-parse", "HEAD"]);
    let ignore =
        fs::read_to_string(m.path().join("analytics/Dockerfile.dockerignore")).expect("read");
    m.write(
        "analytics/Dockerfile.dockerignore",
        &format!("{ignore}**/*.csv\n"),
    );
    m.commit("ignore csv");
    let plan = m.plan(&["--base", &base]);
    assert_eq!(location(&plan, "analytics")["action"], "build");
    assert_eq!(
        location(&plan, "analytics")["changed_paths"],
        serde_json::json!(["analytics/Dockerfile.dockerignore"])
    );
}

#[test]
fn files_the_docker_context_leaves_out_do_not_change_the_content_key() {
    let m = example_repo();
    let before = m.plan(&["--base", "HEAD", "--all"]);
    // Outside analytics' context (root, narrowed to analytics/ and libs/common).
    m.write("ingest/notes.txt", "x\n");
    m.commit("unrelated");
    let after = m.plan(&["--base", "HEAD~1", "--all"]);
    assert_eq!(
        location(&after, "analytics")["content_key"],
        location(&before, "analytics")["content_key"]
    );
    assert_ne!(
        location(&after, "ingest")["content_key"],
        location(&before, "ingest")["content_key"]
    );
}
