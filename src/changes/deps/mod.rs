//! Local path dependencies of a Python project folder, followed transitively.
//!
//! Read from the folder's `pyproject.toml` (`[tool.uv.sources]` and poetry `{ path = ... }`
//! tables, `file:` URLs in `[project]` dependencies, optional dependencies and
//! `[dependency-groups]`) and its `requirements*.txt` files (`-e PATH`, bare `./`/`../` paths,
//! `name @ file:...`, `file:...`, `-r`/`-c` includes, local `--find-links` folders).
//! Relative paths are taken relative to the file that names them. uv `workspace = true`
//! sources are not resolved (they name workspace members, not paths).

mod pyproject;
mod reference;
mod requirements;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use super::folders::RawRef;
use super::paths::{display, is_within, join, parent};
use super::{ChangesError, FileSource, Resolved, TreeSource};
use reference::repo_path;

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A Python project (folder) or archive: a build input, and followed when a folder.
    Package,
    /// Any other file or folder the build reads (included requirement files, wheel folders).
    Input,
}

/// One path a project file refers to, repo-relative.
#[derive(Debug, Clone)]
pub(crate) struct Ref {
    pub path: String,
    pub kind: Kind,
}

/// The repo-relative paths (sorted) that the project in `dir` depends on locally: local
/// packages (transitively) and requirement files it includes, minus anything inside `dir`
/// itself (already an input). A cycle between local packages is an error, as is a path
/// leaving the repository or a `pyproject.toml` that does not parse.
pub fn local_dependencies(src: &dyn FileSource, dir: &str) -> Result<Vec<String>, ChangesError> {
    Dependencies::new(src).of(dir)
}

/// Resolves local dependencies of many projects read from one tree, reading each folder's
/// project files once (monorepo locations share libraries).
pub struct Dependencies<'a> {
    src: &'a dyn FileSource,
    /// A commit's tree, when `src` is one: it remembers folders' references across runs.
    memory: Option<&'a TreeSource<'a>>,
    /// Direct references per folder.
    refs: RefCell<HashMap<String, Rc<Vec<Ref>>>>,
}

impl<'a> Dependencies<'a> {
    pub fn new(src: &'a dyn FileSource) -> Self {
        Dependencies {
            src,
            memory: None,
            refs: RefCell::new(HashMap::new()),
        }
    }

    /// Reading `tree`, whose folders' references are remembered by tree id (see
    /// `folders.rs`): a folder seen in an earlier run is not read again.
    pub fn of_tree(tree: &'a TreeSource<'a>) -> Self {
        Dependencies {
            memory: Some(tree),
            ..Dependencies::new(tree)
        }
    }

    /// See [`local_dependencies`].
    pub fn of(&self, dir: &str) -> Result<Vec<String>, ChangesError> {
        let root = super::paths::join_normalized("", dir).ok_or_else(|| {
            ChangesError::OutsideRepository {
                path: dir.to_string(),
            }
        })?;
        let mut walk = Walk {
            deps: self,
            stack: Vec::new(),
            done: BTreeSet::new(),
            found: BTreeSet::new(),
        };
        walk.visit(&root)?;
        Ok(walk
            .found
            .into_iter()
            .filter(|p| !is_within(p, &root))
            .collect())
    }

    fn references(&self, dir: &str) -> Result<Rc<Vec<Ref>>, ChangesError> {
        if let Some(refs) = self.refs.borrow().get(dir) {
            return Ok(Rc::clone(refs));
        }
        let known = self.memory.and_then(|tree| tree.known_refs(dir));
        let raw = match known {
            Some(raw) => raw,
            None => {
                let (raw, contained) = raw_references(self.src, dir)?;
                if let (Some(tree), true) = (self.memory, contained) {
                    tree.remember_refs(dir, &raw);
                }
                raw
            }
        };
        let mut refs = Vec::new();
        for r in &raw {
            let kind = if r.package {
                Kind::Package
            } else {
                Kind::Input
            };
            push(
                &mut refs,
                repo_path(self.src, parent(&r.file), &r.text, &r.file)?,
                kind,
            );
        }
        let refs = Rc::new(refs);
        self.refs
            .borrow_mut()
            .insert(dir.to_string(), Rc::clone(&refs));
        Ok(refs)
    }
}

struct Walk<'d, 'a> {
    deps: &'d Dependencies<'a>,
    /// Packages being visited, outermost first (for cycle reports).
    stack: Vec<String>,
    done: BTreeSet<String>,
    found: BTreeSet<String>,
}

impl Walk<'_, '_> {
    fn visit(&mut self, dir: &str) -> Result<(), ChangesError> {
        self.stack.push(dir.to_string());
        for r in self.deps.references(dir)?.iter() {
            if r.path == dir {
                continue; // `-e .`: the project itself
            }
            self.found.insert(r.path.clone());
            if r.kind != Kind::Package || !self.deps.src.is_dir(&r.path) {
                continue;
            }
            if let Some(pos) = self.stack.iter().position(|d| *d == r.path) {
                let mut cycle: Vec<String> = self.stack[pos..]
                    .iter()
                    .map(|d| display(d).into_owned())
                    .collect();
                cycle.push(display(&r.path).into_owned());
                return Err(ChangesError::DependencyCycle { cycle });
            }
            if !self.done.contains(&r.path) {
                self.visit(&r.path)?;
            }
        }
        self.stack.pop();
        self.done.insert(dir.to_string());
        Ok(())
    }
}

/// Everything the project files in `dir` refer to, as written, and whether that depends on
/// `dir`'s content alone (no file read through a link or outside it).
fn raw_references(src: &dyn FileSource, dir: &str) -> Result<(Vec<RawRef>, bool), ChangesError> {
    let mut refs = Vec::new();
    let mut contained = true;
    let pyproject = join(dir, "pyproject.toml");
    if let Some(bytes) = src.read(&pyproject) {
        contained &= plain_file_within(src, &pyproject, dir);
        refs.extend(pyproject::raw_references(&pyproject, &bytes)?);
    }
    let mut seen = BTreeSet::new();
    for name in src.list(dir) {
        if name.starts_with("requirements") && name.ends_with(".txt") {
            let file = join(dir, &name);
            requirements::raw_references(src, dir, &file, &mut seen, &mut refs, &mut contained)?;
        }
    }
    Ok((refs, contained))
}

/// `file` is read as itself (no link on its way) and lies inside `folder`.
fn plain_file_within(src: &dyn FileSource, file: &str, folder: &str) -> bool {
    src.resolve(file)
        .is_ok_and(|r| r.links.is_empty() && is_within(&r.path, folder))
}

/// Adds a resolved reference (`None`: it names something outside the work tree, in the
/// image) and the symlinks on its way, which are inputs too.
fn push(out: &mut Vec<Ref>, resolved: Option<Resolved>, kind: Kind) {
    let Some(resolved) = resolved else { return };
    out.extend(resolved.links.into_iter().map(|path| Ref {
        path,
        kind: Kind::Input,
    }));
    out.push(Ref {
        path: resolved.path,
        kind,
    });
}
