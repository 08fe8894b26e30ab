//! What a plan needs to know about a folder of a commit, remembered across runs by the
//! folder's git tree id: its entries (with symlink targets) and the local references its
//! project files make. A tree id names the folder's exact content forever, so a remembered
//! answer is always right; what depends on anything outside the folder is never remembered.
//!
//! Stored in `<git dir>/dagster-deploy/folders.json`; a file that is missing, unreadable or
//! written by another version is ignored, and saving is best effort (the cache only saves
//! reading git objects again).

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use git2::Oid;
use serde::{Deserialize, Serialize};

/// Written into the file: another version's answers are not trusted.
const VERSION: &str = concat!("dagster-deploy ", env!("CARGO_PKG_VERSION"), " folders v1");
/// Folders kept at most (a few megabytes): the ones used last are kept.
const MAX_FOLDERS: usize = 50_000;

/// One entry of a folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub name: String,
    pub mode: i32,
    /// Hex object id.
    pub id: String,
    /// The target, for a symlink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// A reference as a project file writes it: `text` (a path, or a `file:` URL's path) in
/// `file`, relative to the folder; resolved against the repository when used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RawRef {
    pub file: String,
    pub text: String,
    /// A package (followed) rather than another input.
    pub package: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Folder {
    pub entries: Vec<Entry>,
    /// `None` until known, or when the folder's project files read outside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<Vec<RawRef>>,
    /// Entry positions by name, built on first lookup in a large folder.
    #[serde(skip)]
    index: OnceCell<HashMap<String, usize>>,
}

/// Folders this small are searched entry by entry.
const SMALL_FOLDER: usize = 32;

impl Folder {
    pub fn new(entries: Vec<Entry>, refs: Option<Vec<RawRef>>) -> Folder {
        Folder {
            entries,
            refs,
            index: OnceCell::new(),
        }
    }

    /// The entry called `name`.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        if self.entries.len() < SMALL_FOLDER {
            return self.entries.iter().find(|e| e.name == name);
        }
        let index = self.index.get_or_init(|| {
            (self.entries.iter().enumerate())
                .map(|(i, e)| (e.name.clone(), i))
                .collect()
        });
        self.entries.get(*index.get(name)?)
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: String,
    /// Tree id (hex) to folder.
    folders: HashMap<String, Folder>,
}

/// The folders of one repository, by tree id.
#[derive(Default)]
pub(crate) struct FolderCache {
    path: Option<PathBuf>,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    loaded: bool,
    folders: HashMap<Oid, Rc<Folder>>,
    /// Ids looked up or added by this run, in order (kept first when trimming).
    used: Vec<Oid>,
    changed: bool,
}

impl FolderCache {
    /// The cache of the repository whose git dir is `git_dir` (read on first use).
    pub fn new(git_dir: PathBuf) -> FolderCache {
        FolderCache {
            path: Some(git_dir.join("dagster-deploy").join("folders.json")),
            state: RefCell::default(),
        }
    }

    pub fn get(&self, id: Oid) -> Option<Rc<Folder>> {
        self.load();
        let mut state = self.state.borrow_mut();
        let folder = state.folders.get(&id).cloned()?;
        state.used.push(id);
        Some(folder)
    }

    pub fn put(&self, id: Oid, folder: Folder) -> Rc<Folder> {
        self.load();
        let folder = Rc::new(folder);
        let mut state = self.state.borrow_mut();
        state.folders.insert(id, Rc::clone(&folder));
        state.used.push(id);
        state.changed = true;
        folder
    }

    fn load(&self) {
        if self.state.borrow().loaded {
            return;
        }
        let stored: Option<Stored> = self
            .path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let mut state = self.state.borrow_mut();
        state.loaded = true;
        if let Some(stored) = stored.filter(|s| s.version == VERSION) {
            state.folders = stored
                .folders
                .into_iter()
                .filter_map(|(id, f)| Some((Oid::from_str(&id).ok()?, Rc::new(f))))
                .collect();
        }
    }

    /// Writes what this run added (best effort: a read-only repository just stays uncached).
    pub fn save(&self) {
        let state = self.state.borrow();
        let Some(path) = self.path.as_ref().filter(|_| state.changed) else {
            return;
        };
        let mut keep: Vec<Oid> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in state.used.iter().rev().chain(state.folders.keys()) {
            if keep.len() == MAX_FOLDERS {
                break;
            }
            if seen.insert(*id) {
                keep.push(*id);
            }
        }
        let stored = Stored {
            version: VERSION.to_string(),
            folders: keep
                .iter()
                .filter_map(|id| Some((id.to_string(), Folder::clone(state.folders.get(id)?))))
                .collect(),
        };
        let Ok(bytes) = serde_json::to_vec(&stored) else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        // Another process may save at the same time: each writes a whole file and renames it.
        let tmp = dir.join(format!("folders.json.{}", std::process::id()));
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
