//! A location's build inputs: the repository paths its image is made from, and which files
//! below them do not count.
//!
//! Inputs are the build directory (the Docker context), the Dockerfile when it lives elsewhere,
//! paths watched in dagster-deploy.toml, the symlinks on the way to any of these (see
//! `locate.rs`) and local path dependencies (transitively). Two rules
//! take files below them out, for different reasons:
//! - the Docker context's ignore file: the build never sends those files, so they are not part
//!   of the image (nor of its content key), and a context of `.` narrowed by `.dockerignore`
//!   only reacts to what the build really sends;
//! - `ignore` globs from dagster-deploy.toml: a trigger policy. A change there never causes a
//!   build, but the files may still be copied into the image, so they stay in the content key.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::PlanError;
use super::dockerignore::{DockerIgnore, ignore_file_candidates};
use super::locate::LocationPaths;
use crate::changes::{self, Dependencies, FileSource, PathFilter};
use crate::config::{self, LocationSettings};

pub struct BuildInputs {
    /// Non-overlapping, sorted, repo-relative paths (`""` is the whole repository).
    pub paths: Vec<String>,
    /// dagster-deploy.toml `ignore` globs, repo-relative (shared by locations with the same).
    pub ignore: Rc<GlobSet>,
    /// What the Docker context leaves out; the content key's filter.
    pub context: ContextFilter,
    /// Repo-relative build directory.
    pub context_dir: String,
}

impl BuildInputs {
    /// Whether a changed (repo-relative) path is a change of these inputs.
    pub fn counts(&self, path: &str) -> bool {
        self.paths.iter().any(|i| changes::is_within(path, i))
            && !self.ignore.is_match(path)
            && !self.context.excludes(path)
    }
}

/// The files of the Docker context that its ignore file leaves out (none without one).
pub struct ContextFilter(Option<DockerContext>);

struct DockerContext {
    dir: String,
    dockerignore: DockerIgnore,
    /// Sent whatever the patterns say (as Docker does): the Dockerfile and the ignore file.
    always: [String; 2],
}

impl DockerContext {
    /// `path` relative to the context, when it is inside it and not always sent.
    fn relative<'p>(&self, path: &'p str) -> Option<&'p str> {
        if !changes::is_within(path, &self.dir) || self.always.iter().any(|a| a == path) {
            return None;
        }
        Some(if self.dir.is_empty() {
            path
        } else {
            &path[self.dir.len() + 1..]
        })
    }
}

impl PathFilter for ContextFilter {
    fn excludes(&self, path: &str) -> bool {
        let Some(c) = &self.0 else { return false };
        c.relative(path)
            .is_some_and(|rel| c.dockerignore.matches_or_parent_matches(rel))
    }

    fn excludes_dir(&self, dir: &str) -> bool {
        let Some(c) = &self.0 else { return false };
        // An always-sent file may live below the folder (e.g. the Dockerfile).
        if c.always.iter().any(|a| changes::is_within(a, dir)) {
            return false;
        }
        c.relative(dir).is_some_and(|rel| {
            c.dockerignore.matches_or_parent_matches(rel) && !c.dockerignore.exception_below(rel)
        })
    }

    fn excludes_nothing(&self) -> bool {
        self.0.is_none()
    }
}

/// The inputs of a location whose paths are `paths`, as the files in `files` (head)
/// describe them.
pub fn resolve(
    files: &dyn FileSource,
    deps: &Dependencies,
    globs: &IgnoreGlobs,
    paths: &LocationPaths,
    settings: &LocationSettings,
) -> Result<BuildInputs, PlanError> {
    let context_dir = &paths.context_dir;
    let mut all = BTreeSet::from([context_dir.clone(), paths.dockerfile.clone()]);
    all.extend(paths.watch.iter().cloned());
    all.extend(paths.links.iter().cloned());
    all.extend(deps.of(context_dir)?);
    // Inputs inside another input add nothing: keep the outermost.
    let all: Vec<String> = all.into_iter().collect();
    let paths_kept = all
        .iter()
        .filter(|p| !all.iter().any(|q| q != *p && changes::is_within(p, q)))
        .cloned()
        .collect();

    Ok(BuildInputs {
        paths: paths_kept,
        ignore: globs.get(&settings.ignore)?,
        context: ContextFilter(docker_context(files, context_dir, &paths.dockerfile)?),
        context_dir: context_dir.clone(),
    })
}

/// The first ignore file that exists for this build, parsed; `None` when there is none.
fn docker_context(
    files: &dyn FileSource,
    context_dir: &str,
    dockerfile: &str,
) -> Result<Option<DockerContext>, PlanError> {
    for candidate in ignore_file_candidates(context_dir, dockerfile) {
        let Some(bytes) = files.read(&candidate) else {
            continue;
        };
        let dockerignore = DockerIgnore::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| {
            PlanError::Failed {
                message: format!(
                    "{candidate}:{}: invalid pattern `{}`: {}",
                    e.line, e.pattern, e.reason
                ),
                hint: "fix the pattern; Docker refuses this file too".into(),
            }
        })?;
        if dockerignore.is_empty() {
            return Ok(None);
        }
        return Ok(Some(DockerContext {
            dir: context_dir.to_string(),
            dockerignore,
            always: [dockerfile.to_string(), candidate],
        }));
    }
    Ok(None)
}

/// `ignore` globs from dagster-deploy.toml, relative to its folder; `**/…` patterns match
/// anywhere in the repository. Compiled once per distinct list (most locations share the
/// defaults', and compiling is the costly part).
pub struct IgnoreGlobs {
    yaml_dir: String,
    compiled: RefCell<HashMap<Vec<String>, Rc<GlobSet>>>,
}

impl IgnoreGlobs {
    pub fn new(yaml_dir: &str) -> IgnoreGlobs {
        IgnoreGlobs {
            yaml_dir: yaml_dir.to_string(),
            compiled: RefCell::default(),
        }
    }

    fn get(&self, patterns: &[String]) -> Result<Rc<GlobSet>, PlanError> {
        if let Some(set) = self.compiled.borrow().get(patterns) {
            return Ok(Rc::clone(set));
        }
        let invalid = |pattern: &str, e: globset::Error| PlanError::Failed {
            message: format!(
                "{}: invalid ignore pattern `{pattern}`: {e}",
                config::SETTINGS_FILE_NAME
            ),
            hint: "fix the glob (`dagster-deploy check` lists every problem)".into(),
        };
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            let full = if pattern.starts_with("**/") || self.yaml_dir.is_empty() {
                pattern.clone()
            } else {
                format!("{}/{pattern}", self.yaml_dir)
            };
            builder.add(Glob::new(&full).map_err(|e| invalid(pattern, e))?);
        }
        let set = Rc::new(builder.build().map_err(|e| invalid("", e))?);
        self.compiled
            .borrow_mut()
            .insert(patterns.to_vec(), Rc::clone(&set));
        Ok(set)
    }
}
