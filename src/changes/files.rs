//! [`FileSource`]s: a commit's tree (read from git objects) and the work tree (the filesystem).

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Tree, TreeEntry};

use super::paths::from_bytes;
use super::{ChangesError, FileSource, Repo};

/// Git's file mode of a symlink.
pub(crate) const LINK_MODE: i32 = 0o120000;

impl Repo {
    /// Files as recorded in `commit`.
    pub fn tree_source(&self, commit: Oid) -> Result<TreeSource<'_>, ChangesError> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        Ok(TreeSource {
            repo: &self.repo,
            tree,
            root: self.workdir.clone(),
        })
    }

    /// Files as they are on disk in the work tree.
    pub fn worktree_source(&self) -> WorkTreeSource {
        WorkTreeSource::new(self.workdir.clone())
    }
}

/// Reads a commit's tree. Symlinks are followed inside the tree at every component (like the
/// filesystem would); a link leaving the repository reads as absent.
pub struct TreeSource<'r> {
    repo: &'r git2::Repository,
    tree: Tree<'r>,
    root: PathBuf,
}

impl TreeSource<'_> {
    /// The entry at `path` after following links; `None` for the root or a missing path.
    fn entry(&self, path: &str) -> Option<TreeEntry<'static>> {
        let path = self.resolve(path).ok()?.path;
        if path.is_empty() {
            return None;
        }
        self.tree.get_path(Path::new(&path)).ok()
    }

    fn tree_at(&self, dir: &str) -> Option<Tree<'_>> {
        if self.resolve(dir).ok()?.path.is_empty() {
            return Some(self.tree.clone());
        }
        let entry = self.entry(dir)?;
        (entry.kind() == Some(ObjectType::Tree))
            .then(|| self.repo.find_tree(entry.id()).ok())
            .flatten()
    }
}

impl FileSource for TreeSource<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let entry = self.entry(path)?;
        if entry.kind() != Some(ObjectType::Blob) {
            return None;
        }
        Some(self.repo.find_blob(entry.id()).ok()?.content().to_vec())
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let Some(tree) = self.tree_at(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = tree.iter().map(|e| from_bytes(e.name_bytes())).collect();
        names.sort();
        names
    }

    fn is_dir(&self, path: &str) -> bool {
        self.tree_at(path).is_some()
    }

    fn root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn link_target(&self, path: &str) -> Option<String> {
        if path.is_empty() {
            return None;
        }
        let entry = self.tree.get_path(Path::new(path)).ok()?;
        (entry.filemode() == LINK_MODE)
            .then(|| Some(from_bytes(self.repo.find_blob(entry.id()).ok()?.content())))
            .flatten()
    }
}

/// Reads the work tree from disk. Symlinks are followed as in a [`TreeSource`]: paths that
/// climb out with `..`, or through a link, read as absent.
pub struct WorkTreeSource {
    root: PathBuf,
}

impl WorkTreeSource {
    pub fn new(root: PathBuf) -> WorkTreeSource {
        WorkTreeSource { root }
    }

    fn path(&self, rel: &str) -> Option<PathBuf> {
        let rel = self.resolve(rel).ok()?.path;
        Some(if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        })
    }
}

impl FileSource for WorkTreeSource {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(path)?).ok()
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let Some(entries) = self.path(dir).and_then(|p| std::fs::read_dir(p).ok()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn is_dir(&self, path: &str) -> bool {
        self.path(path).is_some_and(|p| p.is_dir())
    }

    fn root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn link_target(&self, path: &str) -> Option<String> {
        let full = self.root.join(path);
        if !std::fs::symlink_metadata(&full)
            .ok()?
            .file_type()
            .is_symlink()
        {
            return None;
        }
        let target = std::fs::read_link(full).ok()?;
        Some(from_bytes(target.as_os_str().as_encoded_bytes()))
    }
}
