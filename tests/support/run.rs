//! Running the binary: the one environment scrub list and the one output type.

use std::path::Path;
use std::process::{Command, Output};

/// The `dagster-deploy` binary run in `cwd`, with every CI marker, Dagster+ setting and
/// session variable removed from its environment (tests set what they want themselves): the
/// one scrub list of the tests.
pub fn bin(cwd: &Path) -> Command {
    use assert_cmd::cargo::CommandCargoExt;
    let mut cmd = Command::cargo_bin("dagster-deploy").expect("binary built");
    // No Dagster+ settings from the machine: plans read git alone (and the local store a test
    // creates itself).
    cmd.current_dir(cwd).env(
        "DAGSTER_CLOUD_CLI_CONFIG",
        cwd.join(".no-dagster-cloud-config"),
    );
    for var in [
        "DAGSTER_CLOUD_URL",
        "DAGSTER_CLOUD_ORGANIZATION",
        "DAGSTER_CLOUD_DEPLOYMENT",
        "DAGSTER_CLOUD_API_TOKEN",
        "CI",
        "GITHUB_ACTIONS",
        "GITHUB_EVENT_PATH",
        "GITHUB_EVENT_NAME",
        "GITLAB_CI",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA",
        "CI_COMMIT_BEFORE_SHA",
        "BUILDKITE",
        "CIRCLECI",
        "JENKINS_URL",
        "BITBUCKET_BUILD_NUMBER",
        "CODEBUILD_BUILD_ID",
        "DAGSTER_BUILD_STATEDIR",
        "DAGSTER_DEPLOY_DOTENV",
        "DAGSTER_DEPLOY_REGISTRY_HOST",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Output of a finished command: exit code (-1 when a signal ended it), stdout, stderr.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The name the `changes_*` tests knew it by.
pub type Ran = Run;

/// Runs the binary in `cwd` with `args` (scrubbed environment, see [`bin`]).
pub fn run(cwd: &Path, args: &[&str]) -> Run {
    Run::of(bin(cwd).args(args))
}

impl Run {
    pub fn of(cmd: &mut Command) -> Run {
        Run::from(cmd.output().expect("run dagster-deploy"))
    }

    /// Asserts the exit code, showing what was printed when it differs.
    pub fn exits(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "{}{}", self.stdout, self.stderr);
        self
    }

    /// Asserts that stderr holds `text`.
    pub fn says(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "expected {text:?} in:\n{}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// What a process printed on stdout, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a process printed on stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The planned location called `name`.
pub fn planned<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["locations"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == name))
        .unwrap_or_else(|| panic!("no location {name} in {plan:#}"))
}
