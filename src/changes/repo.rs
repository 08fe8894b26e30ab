//! Opening the repository and resolving revisions.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use git2::{ErrorClass, ErrorCode, Oid};

use super::folders::FolderCache;
use super::{ChangesError, Repo};

impl Repo {
    /// Opens the repository containing `path` (which may be any folder inside the work tree).
    pub fn discover(path: &Path) -> Result<Repo, ChangesError> {
        // libgit2 re-hashes every object it reads by default (git does not); that doubles
        // the cost of walking trees. Process-wide, and we only read.
        git2::opts::strict_hash_verification(false);
        let repo = git2::Repository::discover(path).map_err(|e| match e.code() {
            ErrorCode::NotFound => ChangesError::NotARepository {
                path: path.to_path_buf(),
            },
            _ => ChangesError::Git(e),
        })?;
        let workdir = repo
            .workdir()
            .ok_or_else(|| ChangesError::BareRepository {
                path: path.to_path_buf(),
            })?
            .to_path_buf();
        // Canonical, so paths given by users (possibly through symlinks) can be related to it.
        let workdir = workdir.canonicalize().unwrap_or(workdir);
        let folders = FolderCache::new(repo.path().to_path_buf());
        Ok(Repo {
            repo,
            workdir,
            uncommitted: Default::default(),
            folders,
            prefetched: Default::default(),
        })
    }

    /// Resolves any revspec git understands (`main`, `origin/main`, `HEAD~2`, `v1.0`, a full or
    /// abbreviated SHA) to the commit it names. A SHA whose object is not in the object
    /// database is unknown too.
    pub fn resolve(&self, rev: &str) -> Result<Oid, ChangesError> {
        let unknown = || ChangesError::UnknownRevision {
            rev: rev.to_string(),
            flag: None,
        };
        if rev.trim().is_empty() {
            return Err(unknown());
        }
        let object = self.repo.revparse_single(rev).map_err(|e| match e.code() {
            ErrorCode::NotFound | ErrorCode::InvalidSpec | ErrorCode::Ambiguous => unknown(),
            _ if e.class() == ErrorClass::Reference || e.class() == ErrorClass::Object => unknown(),
            _ => ChangesError::Git(e),
        })?;
        let commit = object
            .peel_to_commit()
            .map_err(|_| ChangesError::NotACommit {
                rev: rev.to_string(),
                flag: None,
            })?;
        Ok(commit.id())
    }

    /// Writes what this `Repo` learnt about folders for later runs (best effort).
    pub fn save_caches(&self) {
        self.folders.save();
    }

    /// The commit HEAD points at.
    pub fn head_commit(&self) -> Result<Oid, ChangesError> {
        let head = self.repo.head().map_err(|e| match e.code() {
            ErrorCode::UnbornBranch | ErrorCode::NotFound => ChangesError::NoCommits,
            _ => ChangesError::Git(e),
        })?;
        Ok(head.peel_to_commit()?.id())
    }

    /// A shallow clone (`git clone --depth N`): history beyond the boundary is missing.
    pub fn is_shallow(&self) -> bool {
        self.repo.is_shallow()
    }

    /// Whether the commit is in the object database.
    pub fn has_commit(&self, oid: Oid) -> bool {
        self.repo.find_commit(oid).is_ok()
    }

    /// `path` (absolute, or relative to the current directory) relative to the work tree, with
    /// `/` separators; `""` for the work tree itself. The path need not exist, but its
    /// existing part is resolved through symlinks like the work tree is.
    pub fn relative_path(&self, path: &Path) -> Result<String, ChangesError> {
        let outside = || ChangesError::OutsideRepository {
            path: path.display().to_string(),
        };
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|source| ChangesError::Io {
                    path: path.to_path_buf(),
                    source,
                })?
                .join(path)
        };
        let resolved = canonicalize_existing_prefix(&absolute);
        let rel = resolved
            .strip_prefix(&self.workdir)
            .map_err(|_| outside())?;
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => return Err(outside()),
            }
        }
        Ok(parts.join("/"))
    }
}

/// Canonicalises the longest existing ancestor of `path` and appends the rest; `.` and `..`
/// are resolved lexically first.
fn canonicalize_existing_prefix(path: &Path) -> PathBuf {
    let mut lexical = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other.as_os_str()),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest: Vec<&OsStr> = Vec::new();
    loop {
        if let Ok(mut out) = existing.canonicalize() {
            out.extend(rest.iter().rev());
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return lexical,
        }
    }
}
