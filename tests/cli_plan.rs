//! `dagster-deploy plan` and `check` end to end: the binary against temporary git monorepos.

mod changes_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;
use tempfile::TempDir;

/// A temporary monorepo: three locations, `a` and `b` share `libs/common`.
struct Mono {
    dir: TempDir,
}

const YAML: &str = "\
defaults:
  build:
    registry: localhost:5000/mono
locations:
  - location_name: a
    code_source:
      package_name: a
    build:
      directory: a
  - location_name: b
    code_source:
      package_name: b
    build:
      directory: b
  - location_name: c
    code_source:
      module_name: c.defs
    build:
      directory: c
    container_context:
      k8s:
        env_vars: [\"MODE=prod\"]
";

impl Mono {
    fn new() -> Mono {
        let m = Mono {
            dir: TempDir::new().expect("tempdir"),
        };
        m.git(&["init", "-q", "-b", "main"]);
        m.write("dagster_cloud.yaml", YAML);
        m.write(
            "dagster-deploy.toml",
            "[defaults]\nignore = [\"**/*.md\"]\n",
        );
        m.write(
            "a/pyproject.toml",
            "[project]\nname = \"a\"\ndependencies = [\"dagster\", \"common\"]\n\n\
             [tool.uv.sources]\ncommon = { path = \"../libs/common\" }\n",
        );
        m.write("a/a/__init__.py", "");
        m.write("a/Dockerfile", "FROM scratch\n");
        m.write("b/requirements.txt", "dagster\n-e ../libs/common\n");
        m.write("b/b/__init__.py", "");
        m.write("b/Dockerfile", "FROM scratch\n");
        m.write(
            "c/pyproject.toml",
            "[project]\nname = \"c\"\ndependencies = [\"dagster\"]\n",
        );
        m.write("c/c/defs.py", "");
        m.write("c/Dockerfile", "FROM scratch\n");
        m.write(
            "libs/common/pyproject.toml",
            "[project]\nname = \"common\"\n",
        );
        m.write("libs/common/common/__init__.py", "");
        m.commit("initial");
        m
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn cmd(&self) -> Command {
        changes_support::bin(self.path())
    }

    /// The binary run as in a GitHub Actions job for `event_name`, whose payload is at `event`.
    fn github(&self, event_name: &str, event: &Path, args: &[&str]) -> Output {
        self.cmd()
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event_name)
            .env("GITHUB_EVENT_PATH", event)
            .args(args)
            .output()
            .expect("runs")
    }

    /// Writes `files`, commits them and plans that commit against the one before.
    fn commit_and_plan(&self, files: &[(&str, &str)], message: &str) -> Value {
        let base = self.git(&["rev-parse", "HEAD"]);
        for (rel, text) in files {
            self.write(rel, text);
        }
        self.commit(message);
        self.plan(&["--base", &base])
    }

    /// Runs `plan --json` with extra args and returns the parsed plan (asserting success).
    fn plan(&self, args: &[&str]) -> Value {
        let out = self
            .cmd()
            .args(["plan", "--json"])
            .args(args)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "plan failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let plan: Value = serde_json::from_slice(&out.stdout).expect("plan is JSON");
        assert_schema(&plan);
        plan
    }
}

fn assert_schema(plan: &Value) {
    let schema_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/plan.schema.json");
    let schema: Value =
        serde_json::from_str(&fs::read_to_string(schema_path).expect("schema file"))
            .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("valid schema");
    let errors: Vec<String> = validator
        .iter_errors(plan)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "plan does not match schemas/plan.schema.json: {errors:#?}\n{plan:#}"
    );
}

/// `{name: (action, reason code)}` for compact assertions.
fn actions(plan: &Value) -> Vec<(String, String, String)> {
    plan["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or_default().to_string(),
                l["action"].as_str().unwrap_or_default().to_string(),
                l["reason"]["code"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Asserts every location's (name, action, reason code), in plan order.
fn assert_actions(plan: &Value, expected: &[(&str, &str, &str)]) {
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|&(n, a, c)| (n.into(), a.into(), c.into()))
        .collect();
    assert_eq!(actions(plan), expected, "{plan:#}");
}

fn location<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["locations"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == name))
        .unwrap_or_else(|| panic!("no location {name} in {plan:#}"))
}

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

/// Copies `examples/monorepo` into a fresh repository (with one commit).
fn example_repo() -> Mono {
    let m = Mono {
        dir: TempDir::new().expect("tempdir"),
    };
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(m.path())
        .status()
        .expect("cp");
    assert!(status.success());
    m.git(&["init", "-q", "-b", "main"]);
    m.commit("example");
    m
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
    let dir = TempDir::new().expect("tempdir");
    let m = Mono { dir };
    m.git(&["init", "-q", "-b", "main"]);
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

#[test]
fn a_relative_base_missing_from_a_shallow_clone_says_so() {
    let m = Mono::new();
    m.write("c/c/defs.py", "x = 2\n");
    m.commit("second");
    let clone = TempDir::new().expect("tempdir");
    let url = format!("file://{}", m.path().display());
    let status = Command::new("git")
        .args(["clone", "-q", "--depth", "1", &url])
        .arg(clone.path().join("c"))
        .status()
        .expect("git clone");
    assert!(status.success());
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

/// `plan ARGS` (no `--json`): exit code, stdout, stderr.
fn plan_text(m: &Mono, args: &[&str]) -> (Option<i32>, String, String) {
    let out = m
        .cmd()
        .env_remove("DAGSTER_BUILD_STATEDIR")
        .arg("plan")
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The job names of a GitLab pipeline (its top-level keys that are not global keywords).
fn gitlab_jobs(pipeline: &serde_yaml_ng::Value) -> Vec<String> {
    const GLOBAL: [&str; 5] = ["stages", "variables", "default", "include", "workflow"];
    pipeline
        .as_mapping()
        .expect("the pipeline is a mapping")
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|k| !GLOBAL.contains(k))
        .map(String::from)
        .collect()
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
