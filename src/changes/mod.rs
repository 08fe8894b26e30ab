//! git2: resolve revisions, list changed paths, find each location's build inputs (its build
//! directory plus local path dependencies), and compute content keys.
//!
//! All paths crossing this module's boundary are relative to the work tree, use `/` and have
//! no `.`/`..` segments; `""` is the repository root.

use std::path::{Path, PathBuf};

mod base;
mod deps;
mod diff;
mod files;
mod folders;
mod key;
mod links;
pub mod paths;
mod repo;

pub use base::{EventBase, choose_base, short_sha};
pub use deps::{Dependencies, local_dependencies};
pub use files::{TreeSource, WorkTreeSource};
pub use key::{CONTENT_KEY_PREFIX, content_key};
pub use links::{Resolved, Unresolvable};
pub use paths::{display, is_within};

/// A repository opened with git2.
///
/// The work tree is scanned at most once per `Repo` and commit: the list of uncommitted paths
/// is taken the first time [`Head::WorkTree`] needs it and reused by later calls (a plan is one
/// snapshot, and a scan of a large work tree costs as much as `git status`). Open the
/// repository again to see files edited since.
pub struct Repo {
    pub repo: git2::Repository,
    /// Absolute path of the work tree.
    pub workdir: PathBuf,
    /// Uncommitted paths relative to a commit, sorted (see above).
    uncommitted: std::cell::RefCell<Option<(git2::Oid, std::sync::Arc<[String]>)>>,
    /// Folders of commits, remembered across runs by tree id (see `folders.rs`).
    folders: folders::FolderCache,
    /// A commit-to-commit diff started on another thread (see [`Repo::prefetch_changes`]).
    prefetched: std::cell::RefCell<Option<diff::Prefetched>>,
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
    GithubMergeGroup,
    GithubPush,
    GitlabMergeRequest,
    GitlabPush,
    MergeBase,
    /// HEAD is the default branch (or no branch point differs from it): its first parent,
    /// i.e. "what the last commit changed".
    FirstParent,
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
    /// The absolute work-tree path these repo-relative paths hang from, when known: lets
    /// absolute `file:///...` references be mapped back into the repository.
    fn root(&self) -> Option<&Path> {
        None
    }
    /// The target of `path` when it is a symlink itself (no link on the way is followed).
    fn link_target(&self, _path: &str) -> Option<String> {
        None
    }
    /// `path` (repo-relative, `.`/`..` allowed) with every symlink on it followed, at every
    /// component; refused when it, or a link on it, leads out of the repository.
    fn resolve(&self, path: &str) -> Result<Resolved, Unresolvable> {
        links::resolve(self, path)
    }
}

/// Which repo-relative file paths are left out of a location's build inputs (ignore globs,
/// files outside its Docker build context). Used alike for changed paths and content keys.
pub trait PathFilter {
    fn excludes(&self, path: &str) -> bool;
    /// The folder `dir` and everything below it are excluded (lets walks skip it). Saying
    /// `false` is always correct, only slower.
    fn excludes_dir(&self, _dir: &str) -> bool {
        false
    }
    /// True when nothing is excluded: content keys then reuse recorded tree ids, no walk.
    fn excludes_nothing(&self) -> bool;
}

impl PathFilter for globset::GlobSet {
    fn excludes(&self, path: &str) -> bool {
        self.is_match(path)
    }
    fn excludes_nothing(&self) -> bool {
        self.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error("{} is not inside a git repository", path.display())]
    NotARepository { path: PathBuf },
    #[error("{} is a bare repository (no work tree)", path.display())]
    BareRepository { path: PathBuf },
    #[error("the repository has no commits yet (HEAD is unborn)")]
    NoCommits,
    #[error("unknown revision `{rev}`{}", given_to(flag))]
    UnknownRevision {
        rev: String,
        /// The flag that named it, when known.
        flag: Option<&'static str>,
    },
    /// `--base`/`--head` revision that a shallow clone did not fetch.
    #[error(
        "revision `{rev}`{} is not in this shallow clone; fetch full history \
         (actions/checkout `fetch-depth: 0`, GitLab `GIT_DEPTH: 0`, or `git fetch --unshallow`)",
        given_to(flag)
    )]
    NotInShallowClone {
        rev: String,
        flag: Option<&'static str>,
    },
    #[error("revision `{rev}`{} is not a commit", given_to(flag))]
    NotACommit {
        rev: String,
        flag: Option<&'static str>,
    },
    #[error("local dependency cycle: {}", cycle.join(" -> "))]
    DependencyCycle { cycle: Vec<String> },
    #[error("{path} is outside the repository")]
    OutsideRepository { path: String },
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop { path: String },
    #[error("cannot parse {path}: {message}")]
    InvalidPyproject { path: String, message: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// ` (given to --base)` when the flag is known.
fn given_to(flag: &Option<&'static str>) -> String {
    flag.map(|f| format!(" (given to {f})")).unwrap_or_default()
}

impl ChangesError {
    /// Says which command-line flag named the revision in a revision error.
    pub fn given_to(self, name: &'static str) -> ChangesError {
        match self {
            ChangesError::UnknownRevision { rev, .. } => ChangesError::UnknownRevision {
                rev,
                flag: Some(name),
            },
            ChangesError::NotInShallowClone { rev, .. } => ChangesError::NotInShallowClone {
                rev,
                flag: Some(name),
            },
            ChangesError::NotACommit { rev, .. } => ChangesError::NotACommit {
                rev,
                flag: Some(name),
            },
            other => other,
        }
    }

    /// A stable code for `--json` errors.
    pub fn code(&self) -> &'static str {
        match self {
            ChangesError::NotARepository { .. } => "not-a-repository",
            ChangesError::BareRepository { .. } => "bare-repository",
            ChangesError::NoCommits => "no-commits",
            ChangesError::UnknownRevision { .. } => "unknown-revision",
            ChangesError::NotInShallowClone { .. } => "not-in-shallow-clone",
            ChangesError::NotACommit { .. } => "not-a-commit",
            ChangesError::DependencyCycle { .. } => "dependency-cycle",
            ChangesError::OutsideRepository { .. } => "outside-repository",
            ChangesError::SymlinkLoop { .. } => "symlink-loop",
            ChangesError::InvalidPyproject { .. } => "invalid-pyproject",
            ChangesError::Io { .. } => "io",
            ChangesError::Git(_) => "git",
        }
    }

    /// A revision named on the command line that cannot be used is a usage error.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ChangesError::UnknownRevision { .. }
                | ChangesError::NotACommit { .. }
                | ChangesError::NotInShallowClone { .. }
        )
    }

    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            ChangesError::NotARepository { .. } => {
                "run inside the monorepo's git checkout (or `git init` it first)"
            }
            ChangesError::BareRepository { .. } => "run in a clone with a work tree",
            ChangesError::NoCommits => {
                "commit something first (`git commit`): plans compare commits"
            }
            ChangesError::UnknownRevision { .. } => {
                "check the spelling, or fetch it first (`git fetch origin <rev>`)"
            }
            ChangesError::NotInShallowClone { .. } => {
                "fetch more history, or drop --base to build what the CI event says"
            }
            ChangesError::NotACommit { .. } => "name a commit, branch or tag",
            ChangesError::DependencyCycle { .. } => {
                "local libraries must not depend on each other in a circle; remove one of the path dependencies"
            }
            ChangesError::OutsideRepository { .. } => {
                "build directories and local dependencies must be inside the git repository; move them in or fix the path"
            }
            ChangesError::SymlinkLoop { .. } => {
                "fix the symlinks on that path: they lead in a circle"
            }
            ChangesError::InvalidPyproject { .. } => "fix the TOML syntax of that file",
            ChangesError::Io { .. } => "check that the file exists and is readable",
            ChangesError::Git(_) => "check that the repository is not corrupt (`git fsck`)",
        }
    }
}
