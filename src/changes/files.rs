//! [`FileSource`]s: a commit's tree (read from git objects) and the work tree (the filesystem).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::rc::Rc;

use git2::Oid;

use super::folders::{Entry, Folder, FolderCache, RawRef};
use super::paths::{from_bytes, join};
use super::{ChangesError, FileSource, Repo};

/// Git's file mode of a submodule (a commit, not readable here).
const COMMIT_MODE: i32 = 0o160000;

/// Git's file mode of a symlink.
pub(crate) const LINK_MODE: i32 = 0o120000;
/// Git's file mode of a folder.
pub(crate) const TREE_MODE: i32 = 0o040000;

impl Repo {
    /// Files as recorded in `commit`.
    pub fn tree_source(&self, commit: Oid) -> Result<TreeSource<'_>, ChangesError> {
        let tree = self.repo.find_commit(commit)?.tree_id();
        Ok(TreeSource {
            repo: &self.repo,
            cache: &self.folders,
            tree,
            root: self.workdir.clone(),
            dirs: RefCell::default(),
        })
    }

    /// Files as they are on disk in the work tree.
    pub fn worktree_source(&self) -> WorkTreeSource {
        WorkTreeSource::new(self.workdir.clone())
    }
}

/// Reads a commit's tree. Symlinks are followed inside the tree at every component (like the
/// filesystem would); a link leaving the repository reads as absent. Folders are read through
/// the repository's folder cache (`folders.rs`): a folder seen in an earlier run is not read
/// from git again.
pub struct TreeSource<'r> {
    repo: &'r git2::Repository,
    cache: &'r FolderCache,
    tree: Oid,
    root: PathBuf,
    /// Folders looked up so far, by repo-relative path (`None`: not a folder).
    dirs: RefCell<HashMap<String, Option<Found>>>,
}

/// A folder and its tree id.
type Found = (Oid, Rc<Folder>);

impl TreeSource<'_> {
    /// The folder at `dir` (no link on the way is followed) with its tree id.
    fn folder_at(&self, dir: &str) -> Option<Found> {
        if let Some(known) = self.dirs.borrow().get(dir) {
            return known.clone();
        }
        let id = if dir.is_empty() {
            Some(self.tree)
        } else {
            self.with_entry(dir, |e| {
                (e.mode == TREE_MODE)
                    .then(|| Oid::from_str(&e.id).ok())
                    .flatten()
            })
            .flatten()
        };
        let found = id.and_then(|id| Some((id, self.folder(id)?)));
        self.dirs
            .borrow_mut()
            .insert(dir.to_string(), found.clone());
        found
    }

    /// The folder with tree id `id`, from the cache or read from git (and cached).
    fn folder(&self, id: Oid) -> Option<Rc<Folder>> {
        if let Some(folder) = self.cache.get(id) {
            return Some(folder);
        }
        let tree = self.repo.find_tree(id).ok()?;
        let entries = tree
            .iter()
            .map(|e| Entry {
                name: from_bytes(e.name_bytes()),
                mode: e.filemode(),
                id: e.id().to_string(),
                link: (e.filemode() == LINK_MODE)
                    .then(|| Some(from_bytes(self.repo.find_blob(e.id()).ok()?.content())))
                    .flatten(),
            })
            .collect();
        Some(self.cache.put(id, Folder::new(entries, None)))
    }

    /// `f` of the entry at `path` (no link on the way is followed); `None` for the root or a
    /// missing entry.
    fn with_entry<R>(&self, path: &str, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (dir, name),
            None if path.is_empty() => return None,
            None => ("", path),
        };
        let (_, folder) = self.folder_at(dir)?;
        folder.find(name).map(f)
    }

    /// The references the project files of `dir` make, when an earlier run remembered them.
    pub(crate) fn known_refs(&self, dir: &str) -> Option<Vec<RawRef>> {
        let (_, folder) = self.folder_at(dir)?;
        let refs = folder.refs.as_ref()?;
        Some(
            refs.iter()
                .map(|r| RawRef {
                    file: join(dir, &r.file),
                    ..r.clone()
                })
                .collect(),
        )
    }

    /// Remembers `refs` (made by files inside `dir` only) for `dir`'s tree.
    pub(crate) fn remember_refs(&self, dir: &str, refs: &[RawRef]) {
        let Some((id, folder)) = self.folder_at(dir) else {
            return;
        };
        let prefix = if dir.is_empty() { 0 } else { dir.len() + 1 };
        let relative = refs
            .iter()
            .map(|r| RawRef {
                file: r.file.get(prefix..).unwrap_or_default().to_string(),
                ..r.clone()
            })
            .collect();
        let folder = self
            .cache
            .put(id, Folder::new(folder.entries.clone(), Some(relative)));
        self.dirs
            .borrow_mut()
            .insert(dir.to_string(), Some((id, folder)));
    }
}

impl FileSource for TreeSource<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let path = self.resolve(path).ok()?.path;
        let id = self
            .with_entry(&path, |e| {
                (e.mode != TREE_MODE && e.mode != COMMIT_MODE)
                    .then(|| Oid::from_str(&e.id).ok())
                    .flatten()
            })
            .flatten()?;
        Some(self.repo.find_blob(id).ok()?.content().to_vec())
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let Some((_, folder)) = self.resolve(dir).ok().and_then(|r| self.folder_at(&r.path)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = folder.entries.iter().map(|e| e.name.clone()).collect();
        names.sort();
        names
    }

    fn is_dir(&self, path: &str) -> bool {
        match self.resolve(path) {
            Ok(r) if r.path.is_empty() => true,
            Ok(r) => self
                .with_entry(&r.path, |e| e.mode == TREE_MODE)
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    fn root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn link_target(&self, path: &str) -> Option<String> {
        self.with_entry(path, |e| e.link.clone()).flatten()
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
