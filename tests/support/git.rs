//! Temporary git repositories driven by the `git` CLI, isolated from the user's config: the
//! one `git` helper (it checks git's exit status) and the one repository builder.

use std::path::{Path, PathBuf};
use std::process::Command;

use dagster_deploy::changes::Repo;
use tempfile::TempDir;

use super::files::{copy_dir, write};
use super::run::{Run, bin, run};
use super::services::Services;

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

pub fn oid(sha: &str) -> git2::Oid {
    git2::Oid::from_str(sha).expect("sha")
}

/// A git repository in a temporary folder, on branch `main`.
pub struct TestRepo {
    pub dir: TempDir,
}

/// The name the build and CI tests knew it by.
pub type Monorepo = TestRepo;

impl Default for TestRepo {
    fn default() -> TestRepo {
        TestRepo::new()
    }
}

impl TestRepo {
    /// An empty repository on branch `main`.
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        git_in(dir.path(), &["init", "-q", "-b", "main"]);
        TestRepo { dir }
    }

    /// A copy of `examples/monorepo` with its registry replaced by `registry`, committed.
    pub fn example(registry: &str) -> TestRepo {
        let m = TestRepo::new();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo");
        copy_dir(&src, m.path());
        let yaml = std::fs::read_to_string(m.path().join("dagster_cloud.yaml")).unwrap();
        let replaced = yaml.replace("localhost:5000/dagster-example", registry);
        assert_ne!(yaml, replaced, "the example's registry changed");
        m.write("dagster_cloud.yaml", &replaced);
        m.commit("example");
        m
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

    /// Writes `rel` (parents as needed).
    pub fn write(&self, rel: &str, content: &str) {
        write(self.path(), rel, content, None);
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

    /// `dagster-deploy ARGS` here with the scrubbed environment of [`bin`].
    pub fn run(&self, args: &[&str]) -> Run {
        run(self.path(), args)
    }

    /// `plan --json ARGS`, which must succeed; the plan.
    pub fn plan(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["plan", "--json"];
        all.extend_from_slice(args);
        self.run(&all).exits(0).json()
    }

    /// `dagster-deploy ARGS` in this repository, against the test services, with the
    /// registry credentials in the environment, no user Docker config, no CI markers and no
    /// Dagster+ settings (so `deploy` registers in the repository's local store).
    pub fn command(&self, s: &Services, args: &[&str]) -> Command {
        let mut cmd = bin(self.path());
        cmd.args(args)
            .env("DOCKER_HOST", &s.docker_host)
            .env("DAGSTER_DEPLOY_REGISTRY_USERNAME", &s.user)
            .env("DAGSTER_DEPLOY_REGISTRY_PASSWORD", &s.password)
            .env("DOCKER_CONFIG", self.path().join(".no-docker-config"));
        cmd
    }
}
