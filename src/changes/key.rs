//! Content keys: a short, stable id of exactly what a location's image is built from, usable
//! as (part of) a Docker tag, so an image built once can be reused whenever the key matches.
//!
//! The key is `ck-` followed by the first 16 hex digits (64 bits) of a SHA-256 over, in order:
//! 1. the format line `dagster-deploy content key v1\n`;
//! 2. for each input path, sorted and deduplicated (repo-relative, `""` = the whole
//!    repository): `input\0<path>\0`, then either `absent\0` or `<mode in octal> <git id>\0`
//!    where the id is the input's git tree id (folder) or blob id (file), mode `40000` for a
//!    folder, `100644`/`100755`/`120000`/`160000` otherwise;
//! 3. `salt\0`, the salt's length as 8 little-endian bytes, and the salt (the plan passes the
//!    Dockerfile identity and build settings).
//!
//! The git id in step 2 is the one the input has at head, *as git would compute it* after two
//! adjustments, each applied only where needed (elsewhere the recorded ids are reused, so a
//! key costs one tree lookup per input):
//! - files the `filter` excludes (repo-relative file paths: ignore globs, files outside the
//!   Docker build context) are left out, folders that end up empty disappear: excluded files
//!   never change the key, and a filter that excludes nothing changes nothing;
//! - with [`Head::WorkTree`], uncommitted files (staged, unstaged, untracked but not ignored,
//!   deleted) count as they are on disk: content hashed as a git blob (no clean filters), the
//!   executable bit as the mode, symlinks by their target string.
//!
//! Consequently a clean work tree has the same key as its commit, and committing a dirty file
//! as-is keeps the key.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use git2::{ObjectType, Oid};
use sha2::{Digest, Sha256};

use super::diff::name_order;
use super::files::{LINK_MODE, TREE_MODE};
use super::paths::{from_bytes, is_within, join, join_normalized};
use super::{ChangesError, Head, PathFilter, Repo};

/// Every content key starts with this: tells a key from a commit SHA in image tags.
pub const CONTENT_KEY_PREFIX: &str = "ck-";
const FORMAT_LINE: &[u8] = b"dagster-deploy content key v1\n";
/// Hex digits kept: 64 bits, plenty within one repository's history of builds.
const KEY_HEX_LEN: usize = 16;

const FILE_MODE: i32 = 0o100644;
const EXEC_MODE: i32 = 0o100755;

/// A path's mode and git id; `None` when absent.
type State = Option<(i32, Oid)>;

/// The content key of `inputs` at `head` (see the module docs for exactly what goes in).
pub fn content_key(
    repo: &Repo,
    head: &Head,
    inputs: &[String],
    filter: &dyn PathFilter,
    salt: &[u8],
) -> Result<String, ChangesError> {
    let mut paths = Vec::with_capacity(inputs.len());
    for input in inputs {
        paths.push(
            join_normalized("", input).ok_or_else(|| ChangesError::OutsideRepository {
                path: input.clone(),
            })?,
        );
    }
    paths.sort_unstable();
    paths.dedup();

    let (Head::Commit(commit) | Head::WorkTree(commit)) = head;
    let tree = repo.repo.find_commit(*commit)?.tree()?;
    let dirty = match head {
        Head::WorkTree(_) => dirty_states(repo, &repo.uncommitted(*commit)?, &paths)?,
        Head::Commit(_) => BTreeMap::new(),
    };

    let keyer = Keyer {
        repo: &repo.repo,
        filter,
    };
    let mut hasher = Sha256::new();
    hasher.update(FORMAT_LINE);
    for path in &paths {
        hasher.update(b"input\0");
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        match keyer.input_state(&tree, path, &dirty)? {
            None => hasher.update(b"absent\0"),
            Some((mode, id)) => hasher.update(format!("{mode:o} {id}\0").as_bytes()),
        }
    }
    hasher.update(b"salt\0");
    hasher.update((salt.len() as u64).to_le_bytes());
    hasher.update(salt);
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("{CONTENT_KEY_PREFIX}{}", &hex[..KEY_HEX_LEN]))
}

/// The on-disk state of each uncommitted path (`uncommitted` is sorted) under one of `inputs`.
fn dirty_states(
    repo: &Repo,
    uncommitted: &[String],
    inputs: &[String],
) -> Result<BTreeMap<String, State>, ChangesError> {
    let mut states = BTreeMap::new();
    for input in inputs {
        let start = uncommitted.partition_point(|p| p.as_str() < input.as_str());
        let under = uncommitted[start..]
            .iter()
            .take_while(|p| p.starts_with(input.as_str()))
            .filter(|p| is_within(p, input));
        for path in under {
            if !states.contains_key(path) {
                states.insert(path.clone(), disk_state(&repo.workdir.join(path))?);
            }
        }
    }
    Ok(states)
}

/// A file as git would record it now; `None` when gone (or a folder: its files are listed
/// on their own).
fn disk_state(path: &Path) -> Result<State, ChangesError> {
    let io = |source| ChangesError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(io)?;
        let bytes = target.as_os_str().as_encoded_bytes();
        return Ok(Some((
            LINK_MODE,
            Oid::hash_object(ObjectType::Blob, bytes)?,
        )));
    }
    if !meta.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let mode = if is_executable(&meta) {
        EXEC_MODE
    } else {
        FILE_MODE
    };
    Ok(Some((mode, Oid::hash_object(ObjectType::Blob, &bytes)?)))
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

struct Keyer<'a> {
    repo: &'a git2::Repository,
    filter: &'a dyn PathFilter,
}

impl Keyer<'_> {
    /// The effective mode and id of one input.
    fn input_state(
        &self,
        tree: &git2::Tree,
        input: &str,
        dirty: &BTreeMap<String, State>,
    ) -> Result<State, ChangesError> {
        // Dirty paths under `input`, relative to it (`""` for the input itself).
        let below: Vec<(String, State)> = dirty
            .range::<str, _>((Bound::Included(input), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(input))
            .filter(|(p, _)| is_within(p, input))
            .map(|(p, s)| {
                let rel = if input.is_empty() {
                    p.as_str()
                } else {
                    p.get(input.len() + 1..).unwrap_or("")
                };
                (rel.to_string(), *s)
            })
            .collect();

        if input.is_empty() {
            return self.dir_state(Some(tree.id()), "", below);
        }
        if let Some((_, state)) = below.iter().find(|(rel, _)| rel.is_empty()) {
            // The input itself is an uncommitted file, or a deleted one (maybe now a folder).
            return match state {
                Some(leaf) => Ok((!self.filter.excludes(input)).then_some(*leaf)),
                None => {
                    let rest: Vec<_> = below.into_iter().filter(|(r, _)| !r.is_empty()).collect();
                    self.dir_state(None, input, rest)
                }
            };
        }
        let entry = tree.get_path(Path::new(input)).ok();
        match entry {
            Some(e) if e.kind() == Some(ObjectType::Tree) => {
                self.dir_state(Some(e.id()), input, below)
            }
            Some(e) if below.is_empty() => {
                Ok((!self.filter.excludes(input)).then_some((e.filemode(), e.id())))
            }
            // Not a folder at head, but uncommitted files below it.
            _ => self.dir_state(None, input, below),
        }
    }

    /// The effective state of the folder `path` recorded as `tree` with the `dirty` overlay
    /// (paths relative to it): `None` when nothing is left.
    fn dir_state(
        &self,
        tree: Option<Oid>,
        path: &str,
        dirty: Vec<(String, State)>,
    ) -> Result<State, ChangesError> {
        if dirty.is_empty() && self.filter.excludes_nothing() {
            return Ok(tree.map(|id| (TREE_MODE, id)));
        }
        let mut original: Vec<(Vec<u8>, i32, Oid)> = Vec::new();
        let mut nodes: BTreeMap<Vec<u8>, Node> = BTreeMap::new();
        if let Some(id) = tree {
            for e in self.repo.find_tree(id)?.iter() {
                let (name, mode) = (e.name_bytes().to_vec(), e.filemode());
                original.push((name.clone(), mode, e.id()));
                let node = if e.kind() == Some(ObjectType::Tree) {
                    Node::Dir(Some(e.id()), Vec::new())
                } else {
                    Node::Leaf(mode, e.id())
                };
                nodes.insert(name, node);
            }
        }
        // Deletions first, so a path turned from file into folder (or back) ends up right.
        let (gone, present): (Vec<_>, Vec<_>) = dirty.into_iter().partition(|(_, s)| s.is_none());
        for (rel, state) in gone.into_iter().chain(present) {
            apply(&mut nodes, &rel, state);
        }

        let mut entries: Vec<(Vec<u8>, i32, Oid)> = Vec::with_capacity(nodes.len());
        for (name, node) in nodes {
            let child = join(path, &from_bytes(&name));
            let state = match node {
                Node::Leaf(mode, id) => (!self.filter.excludes(&child)).then_some((mode, id)),
                // A folder excluded with everything below it is never read.
                Node::Dir(..) if self.filter.excludes_dir(&child) => None,
                Node::Dir(id, sub) => self.dir_state(id, &child, sub)?,
            };
            if let Some((mode, id)) = state {
                entries.push((name, mode, id));
            }
        }
        entries.sort_by(|a, b| name_order(&a.0, a.1 == TREE_MODE, &b.0, b.1 == TREE_MODE));
        if let Some(id) = tree
            && entries == original
        {
            return Ok(Some((TREE_MODE, id)));
        }
        if entries.is_empty() {
            return Ok(None);
        }
        Ok(Some((TREE_MODE, tree_id(&entries)?)))
    }
}

/// One entry of a folder being rebuilt.
enum Node {
    Leaf(i32, Oid),
    /// Recorded tree (if any) and the dirty paths below it, relative to it.
    Dir(Option<Oid>, Vec<(String, State)>),
}

/// Puts one dirty path's state into the folder's entries.
fn apply(nodes: &mut BTreeMap<Vec<u8>, Node>, rel: &str, state: State) {
    match rel.split_once('/') {
        None => match state {
            Some((mode, id)) => {
                nodes.insert(rel.as_bytes().to_vec(), Node::Leaf(mode, id));
            }
            None => {
                if let Some(Node::Leaf(..)) = nodes.get(rel.as_bytes()) {
                    nodes.remove(rel.as_bytes());
                }
            }
        },
        Some((first, rest)) => {
            let node = nodes
                .entry(first.as_bytes().to_vec())
                .or_insert_with(|| Node::Dir(None, Vec::new()));
            match node {
                Node::Dir(_, sub) => sub.push((rest.to_string(), state)),
                // A file where a folder of new files now is.
                Node::Leaf(..) if state.is_some() => {
                    *node = Node::Dir(None, vec![(rest.to_string(), state)]);
                }
                Node::Leaf(..) => {}
            }
        }
    }
}

/// The git tree id of `entries` (already in git order), without writing anything.
fn tree_id(entries: &[(Vec<u8>, i32, Oid)]) -> Result<Oid, ChangesError> {
    let mut buf = Vec::with_capacity(entries.len() * 48);
    for (name, mode, id) in entries {
        buf.extend_from_slice(format!("{mode:o} ").as_bytes());
        buf.extend_from_slice(name);
        buf.push(0);
        buf.extend_from_slice(id.as_bytes());
    }
    Ok(Oid::hash_object(ObjectType::Tree, &buf)?)
}
