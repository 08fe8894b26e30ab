//! The three-location monorepo the `plan` tests share (`a` and `b` share `libs/common`), and
//! assertions on plans.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::git::TestRepo;

/// A temporary monorepo: three locations, `a` and `b` share `libs/common`.
pub struct Mono(pub TestRepo);

impl std::ops::Deref for Mono {
    type Target = TestRepo;
    fn deref(&self) -> &TestRepo {
        &self.0
    }
}

pub const YAML: &str = "\
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
    pub fn new() -> Mono {
        let m = Mono(TestRepo::new());
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

    pub fn cmd(&self) -> Command {
        super::run::bin(self.path())
    }

    /// The binary run as in a GitHub Actions job for `event_name`, whose payload is at `event`.
    pub fn github(&self, event_name: &str, event: &Path, args: &[&str]) -> Output {
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
    pub fn commit_and_plan(&self, files: &[(&str, &str)], message: &str) -> Value {
        let base = self.git(&["rev-parse", "HEAD"]);
        for (rel, text) in files {
            self.write(rel, text);
        }
        self.commit(message);
        self.plan(&["--base", &base])
    }

    /// Runs `plan --json` with extra args and returns the parsed plan (asserting success).
    pub fn plan(&self, args: &[&str]) -> Value {
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

pub fn assert_schema(plan: &Value) {
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
pub fn actions(plan: &Value) -> Vec<(String, String, String)> {
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
pub fn assert_actions(plan: &Value, expected: &[(&str, &str, &str)]) {
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|&(n, a, c)| (n.into(), a.into(), c.into()))
        .collect();
    assert_eq!(actions(plan), expected, "{plan:#}");
}

pub fn location<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["locations"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == name))
        .unwrap_or_else(|| panic!("no location {name} in {plan:#}"))
}

/// Copies `examples/monorepo` into a fresh repository (with one commit).
pub fn example_repo() -> Mono {
    let m = Mono(TestRepo::new());
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(m.path())
        .status()
        .expect("cp");
    assert!(status.success());
    m.commit("example");
    m
}

/// `plan ARGS` (no `--json`): exit code, stdout, stderr.
pub fn plan_text(m: &Mono, args: &[&str]) -> (Option<i32>, String, String) {
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
pub fn gitlab_jobs(pipeline: &serde_yaml_ng::Value) -> Vec<String> {
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
