//! git2: resolve revisions, list changed paths, find each location's build inputs (its build
//! directory plus local path dependencies), and compute content keys.

use std::path::{Path, PathBuf};

/// A repository opened with git2.
pub struct Repo {
    pub repo: git2::Repository,
    /// Absolute path of the work tree.
    pub workdir: PathBuf,
}

/// What the plan compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// A commit, exactly as recorded.
    Commit(git2::Oid),
    /// The commit checked out plus uncommitted (staged, unstaged and untracked, not ignored)
    /// changes in the work tree.
    WorkTree(git2::Oid),
}

/// Where the base revision came from (shown in the plan and its JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseSource {
    Flag,
    GithubPullRequest,
    GithubPush,
    GitlabMergeRequest,
    GitlabPush,
    MergeBase,
}

/// The base revision, or why there is none (then everything is built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Commit {
        oid: git2::Oid,
        /// The revision as given or found (e.g. `origin/main`, a SHA).
        rev: String,
        source: BaseSource,
    },
    Missing {
        /// Why, in words: "shallow clone: ... not fetched", "first push", ...
        reason: String,
    },
}

/// Reads files of one tree (a commit's, or the work tree); paths are repo-relative with `/`.
pub trait FileSource {
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// Names of the entries of a directory (files and folders), empty if it is not one.
    fn list(&self, dir: &str) -> Vec<String>;
    fn is_dir(&self, path: &str) -> bool;
}

#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error("{} is not inside a git repository", path.display())]
    NotARepository { path: PathBuf },
    #[error("unknown revision `{rev}`")]
    UnknownRevision { rev: String },
    #[error("local dependency cycle: {}", cycle.join(" -> "))]
    DependencyCycle { cycle: Vec<String> },
    #[error("{path} is outside the repository")]
    OutsideRepository { path: String },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

impl Repo {
    /// Opens the repository containing `path`.
    pub fn discover(_path: &Path) -> Result<Repo, ChangesError> {
        todo!("changes helper")
    }
}
