//! Temporary git repositories driven by the `git` CLI, isolated from the user's config.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use dagster_deploy::changes::Repo;
use tempfile::TempDir;

pub struct TestRepo {
    pub dir: TempDir,
}

/// A `git` command that ignores global/system config and has a fixed identity.
pub fn git_cmd(cwd: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(cwd)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    cmd
}

/// Runs git in `cwd`, panics on failure, returns trimmed stdout.
pub fn git_in(cwd: &Path, args: &[&str]) -> String {
    let out = git_cmd(cwd).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

impl TestRepo {
    /// An empty repository on branch `main`.
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        git_in(dir.path(), &["init", "-q", "-b", "main"]);
        TestRepo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn abs(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    pub fn git(&self, args: &[&str]) -> String {
        git_in(self.path(), args)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.abs(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.abs(rel)).expect("remove");
    }

    pub fn symlink(&self, target: &str, rel: &str) {
        let p = self.abs(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, p).expect("symlink");
    }

    pub fn chmod(&self, rel: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.abs(rel), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }

    /// Stages everything and commits; returns the new commit's SHA.
    pub fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn open(&self) -> Repo {
        Repo::discover(self.path()).expect("open repo")
    }
}

pub fn oid(sha: &str) -> git2::Oid {
    git2::Oid::from_str(sha).expect("sha")
}

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

/// What a finished command printed, and its exit code.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Asserts the exit code, showing what was printed when it differs.
    pub fn exits(&self, code: i32) -> &Ran {
        assert_eq!(self.code, Some(code), "{}{}", self.stdout, self.stderr);
        self
    }

    /// Asserts that stderr holds `text`.
    pub fn says(&self, text: &str) -> &Ran {
        assert!(
            self.stderr.contains(text),
            "expected {text:?} in:\n{}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", self.stdout, self.stderr))
    }
}

/// Runs the binary in `cwd` with `args`.
pub fn run(cwd: &Path, args: &[&str]) -> Ran {
    let out = bin(cwd).args(args).output().expect("runs");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl TestRepo {
    /// `plan --json ARGS`, which must succeed; the plan.
    pub fn plan(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["plan", "--json"];
        all.extend_from_slice(args);
        let ran = run(self.path(), &all);
        assert_eq!(
            ran.code,
            Some(0),
            "plan failed: {}{}",
            ran.stdout,
            ran.stderr
        );
        ran.json()
    }
}

/// The planned location called `name`.
pub fn planned<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["locations"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == name))
        .unwrap_or_else(|| panic!("no location {name} in {plan:#}"))
}
