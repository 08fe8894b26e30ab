//! Changed paths between a base commit and the head (a commit, or the work tree).
//!
//! Commit to commit is our own tree walk rather than libgit2's tree diff: libgit2 expands every
//! subtree of both sides, while git (and this walk) skips a subtree whose id is the same on
//! both sides, so the cost is proportional to what changed, not to the repository's size.
//!
//! That walk inflates every changed tree of both commits, about as much work as the rest of a
//! plan; [`Repo::prefetch_changes`] starts it on a second thread (with its own libgit2
//! handle) while the caller reads the configuration.

use std::cmp::Ordering;
use std::sync::Arc;

use git2::{DiffOptions, ObjectType, Oid, Tree, TreeEntry};

use super::paths::{from_bytes, join};
use super::{ChangesError, Head, Repo};

impl Repo {
    /// Repo-relative paths (sorted, deduplicated) that differ between `base` and `head`.
    ///
    /// No rename detection: a move lists both its old and its new path. Additions, deletions,
    /// content and mode changes count; a symlink is compared as the link itself (its target
    /// string), never followed; a submodule as its recorded commit. With
    /// [`Head::WorkTree`] the uncommitted changes (staged, unstaged, untracked but not
    /// ignored, deleted) relative to that commit are added; submodules are not looked into
    /// there (neither their work trees nor an uncommitted change of their recorded commit).
    pub fn changed_paths(&self, base: Oid, head: &Head) -> Result<Vec<String>, ChangesError> {
        let head_commit = match head {
            Head::Commit(oid) | Head::WorkTree(oid) => *oid,
        };
        let mut out = match self.take_prefetched(base, head_commit) {
            Some(paths) => paths?,
            None => commit_changes(&self.repo, base, head_commit)?,
        };
        if let Head::WorkTree(commit) = head {
            out.extend(self.uncommitted(*commit)?.iter().cloned());
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Starts listing the paths that differ between the commits `base` and `head` on another
    /// thread; the next [`Repo::changed_paths`] for the same pair takes the result. Best
    /// effort: when no thread or second handle is available, that call does the work itself.
    pub fn prefetch_changes(&self, base: Oid, head: Oid) {
        let git_dir = self.repo.path().to_path_buf();
        let work = move || {
            let repo = git2::Repository::open(git_dir)?;
            commit_changes(&repo, base, head)
        };
        if let Ok(handle) = std::thread::Builder::new().name("diff".into()).spawn(work) {
            *self.prefetched.borrow_mut() = Some(Prefetched { base, head, handle });
        }
    }

    /// The prefetched diff of `base` and `head`, if one was started.
    fn take_prefetched(&self, base: Oid, head: Oid) -> Option<Result<Vec<String>, git2::Error>> {
        let mut slot = self.prefetched.borrow_mut();
        if !slot
            .as_ref()
            .is_some_and(|p| p.base == base && p.head == head)
        {
            return None;
        }
        // A panicked thread gives no answer: the caller diffs again.
        slot.take()?.handle.join().ok()
    }

    /// The paths (sorted) that differ between `commit` and the work tree, staged or not,
    /// untracked included; scanned once per commit and `Repo` (see [`Repo`]).
    pub(crate) fn uncommitted(&self, commit: Oid) -> Result<Arc<[String]>, ChangesError> {
        if let Some((oid, paths)) = &*self.uncommitted.borrow()
            && *oid == commit
        {
            return Ok(paths.clone());
        }
        let tree = self.repo.find_commit(commit)?.tree()?;
        let mut paths = self.worktree_changes(&tree)?;
        paths.sort_unstable();
        paths.dedup();
        let paths: Arc<[String]> = paths.into();
        *self.uncommitted.borrow_mut() = Some((commit, paths.clone()));
        Ok(paths)
    }

    /// Uncommitted changes relative to `tree` (index and work tree together): the paths on
    /// either side. libgit2 compares index stat data first and hashes only files whose stat
    /// data differs, as `git status` does.
    fn worktree_changes(&self, tree: &Tree) -> Result<Vec<String>, ChangesError> {
        let mut opts = DiffOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_typechange(true)
            .ignore_submodules(true)
            .skip_binary_check(true);
        let diff = self
            .repo
            .diff_tree_to_workdir_with_index(Some(tree), Some(&mut opts))?;
        let mut out = Vec::new();
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                let Some(bytes) = file.path_bytes() else {
                    continue;
                };
                // Untracked nested repositories are listed as `dir/`: not content of ours.
                if bytes.ends_with(b"/") {
                    continue;
                }
                let path = from_bytes(bytes);
                if out.last() != Some(&path) {
                    out.push(path);
                }
            }
        }
        Ok(out)
    }
}

/// A diff running on another thread.
pub(super) struct Prefetched {
    base: Oid,
    head: Oid,
    handle: std::thread::JoinHandle<Result<Vec<String>, git2::Error>>,
}

/// The paths (unsorted) that differ between two commits.
fn commit_changes(
    repo: &git2::Repository,
    base: Oid,
    head: Oid,
) -> Result<Vec<String>, git2::Error> {
    let old = repo.find_commit(base)?.tree()?;
    let new = repo.find_commit(head)?.tree()?;
    let mut out = Vec::new();
    diff_trees(repo, Some(&old), Some(&new), "", &mut out)?;
    Ok(out)
}

/// Appends to `out` every path under `prefix` that differs between the two trees (`None` is an
/// empty tree), skipping subtrees with equal ids.
fn diff_trees(
    repo: &git2::Repository,
    old: Option<&Tree>,
    new: Option<&Tree>,
    prefix: &str,
    out: &mut Vec<String>,
) -> Result<(), git2::Error> {
    let mut a = old.into_iter().flat_map(|t| t.iter()).peekable();
    let mut b = new.into_iter().flat_map(|t| t.iter()).peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => git_order(x, y),
        };
        match order {
            Ordering::Less => {
                if let Some(x) = a.next() {
                    one_side(repo, &x, prefix, out)?;
                }
            }
            Ordering::Greater => {
                if let Some(y) = b.next() {
                    one_side(repo, &y, prefix, out)?;
                }
            }
            Ordering::Equal => {
                let (Some(x), Some(y)) = (a.next(), b.next()) else {
                    return Ok(());
                };
                if x.id() == y.id() && x.filemode() == y.filemode() {
                    continue;
                }
                let path = join(prefix, &from_bytes(x.name_bytes()));
                if is_tree(&x) {
                    let (tx, ty) = (repo.find_tree(x.id())?, repo.find_tree(y.id())?);
                    diff_trees(repo, Some(&tx), Some(&ty), &path, out)?;
                } else {
                    out.push(path);
                }
            }
        }
    }
}

/// An entry present on one side only: itself, or every path under it.
fn one_side(
    repo: &git2::Repository,
    entry: &TreeEntry,
    prefix: &str,
    out: &mut Vec<String>,
) -> Result<(), git2::Error> {
    let path = join(prefix, &from_bytes(entry.name_bytes()));
    if is_tree(entry) {
        let tree = repo.find_tree(entry.id())?;
        diff_trees(repo, Some(&tree), None, &path, out)
    } else {
        out.push(path);
        Ok(())
    }
}

fn is_tree(entry: &TreeEntry) -> bool {
    entry.kind() == Some(ObjectType::Tree)
}

/// Git's tree entry order: by name bytes, a tree's name compared as if it ended in `/`. A file
/// and a folder of the same name are thus different entries (a type change lists both).
fn git_order(x: &TreeEntry, y: &TreeEntry) -> Ordering {
    name_order(x.name_bytes(), is_tree(x), y.name_bytes(), is_tree(y))
}

pub(crate) fn name_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> Ordering {
    let n = a.len().min(b.len());
    a[..n].cmp(&b[..n]).then_with(|| {
        let next = |s: &[u8], tree: bool| s.get(n).copied().or(tree.then_some(b'/'));
        next(a, a_tree).cmp(&next(b, b_tree))
    })
}
