//! A location's build inputs: the repository paths its image is made from, and which files
//! below them do not count.
//!
//! Inputs are the build directory (the Docker context), the Dockerfile when it lives elsewhere,
//! paths watched in dagster-deploy.toml and local path dependencies (transitively). Below them,
//! a file does not count when an `ignore` glob matches it, or when it is in the Docker context
//! but the context's ignore file leaves it out (so a context of `.` narrowed by
//! `.dockerignore` only reacts to what the build really sends).

use std::collections::BTreeSet;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::build::dockerignore::{DockerIgnore, ignore_file_candidates};
use crate::changes::{self, FileSource, PathFilter};
use crate::config::{self, Location, LocationSettings};
use crate::error::Error;

/// The default Dockerfile name inside the build directory.
pub const DOCKERFILE: &str = "Dockerfile";

pub struct BuildInputs {
    /// Non-overlapping, sorted, repo-relative paths (`""` is the whole repository).
    pub paths: Vec<String>,
    pub filter: InputFilter,
    /// Repo-relative build directory.
    pub context_dir: String,
}

/// Files below the input paths that do not count.
pub struct InputFilter {
    /// dagster-deploy.toml `ignore` globs, repo-relative.
    ignore: GlobSet,
    context: Option<ContextFilter>,
}

/// What the Docker context's ignore file leaves out.
struct ContextFilter {
    dir: String,
    dockerignore: DockerIgnore,
    /// Sent whatever the patterns say (as Docker does): the Dockerfile and the ignore file.
    always: [String; 2],
}

impl PathFilter for InputFilter {
    fn excludes(&self, path: &str) -> bool {
        if self.ignore.is_match(path) {
            return true;
        }
        match &self.context {
            Some(c) if changes::is_within(path, &c.dir) && !c.always.iter().any(|a| a == path) => {
                let rel = if c.dir.is_empty() {
                    path
                } else {
                    &path[c.dir.len() + 1..]
                };
                c.dockerignore.matches_or_parent_matches(rel)
            }
            _ => false,
        }
    }

    fn excludes_nothing(&self) -> bool {
        self.ignore.is_empty() && self.context.is_none()
    }
}

/// Resolves the inputs of `loc` as the files in `files` (head) describe them.
pub fn resolve(
    files: &dyn FileSource,
    yaml_dir: &str,
    loc: &Location,
    settings: &LocationSettings,
) -> Result<BuildInputs, Error> {
    let context_dir = changes::normalize(yaml_dir, &loc.build_directory)?;
    let dockerfile = match &settings.dockerfile {
        Some(path) => changes::normalize(yaml_dir, path)?,
        None => changes::normalize(&context_dir, DOCKERFILE)?,
    };

    let mut paths = BTreeSet::from([context_dir.clone(), dockerfile.clone()]);
    for watched in &settings.watch {
        paths.insert(changes::normalize(yaml_dir, watched)?);
    }
    paths.extend(changes::local_dependencies(files, &context_dir)?);
    // Inputs inside another input add nothing: keep the outermost.
    let all: Vec<String> = paths.into_iter().collect();
    let paths = all
        .iter()
        .filter(|p| !all.iter().any(|q| q != *p && changes::is_within(p, q)))
        .cloned()
        .collect();

    Ok(BuildInputs {
        paths,
        filter: InputFilter {
            ignore: ignore_globs(yaml_dir, settings)?,
            context: context_filter(files, &context_dir, &dockerfile)?,
        },
        context_dir,
    })
}

/// The first ignore file that exists for this build, parsed; `None` when there is none.
fn context_filter(
    files: &dyn FileSource,
    context_dir: &str,
    dockerfile: &str,
) -> Result<Option<ContextFilter>, Error> {
    for candidate in ignore_file_candidates(context_dir, dockerfile) {
        let Some(bytes) = files.read(&candidate) else {
            continue;
        };
        let dockerignore =
            DockerIgnore::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| Error::Failed {
                message: format!(
                    "{candidate}:{}: invalid pattern `{}`: {}",
                    e.line, e.pattern, e.reason
                ),
                hint: "fix the pattern; Docker refuses this file too".into(),
            })?;
        if dockerignore.is_empty() {
            return Ok(None);
        }
        return Ok(Some(ContextFilter {
            dir: context_dir.to_string(),
            dockerignore,
            always: [dockerfile.to_string(), candidate],
        }));
    }
    Ok(None)
}

/// `ignore` globs from dagster-deploy.toml, relative to its folder; `**/…` patterns match
/// anywhere in the repository.
fn ignore_globs(yaml_dir: &str, settings: &LocationSettings) -> Result<GlobSet, Error> {
    let invalid = |pattern: &str, e: globset::Error| Error::Failed {
        message: format!(
            "{}: invalid ignore pattern `{pattern}`: {e}",
            config::SETTINGS_FILE_NAME
        ),
        hint: "fix the glob (`dagster-deploy check` lists every problem)".into(),
    };
    let mut builder = GlobSetBuilder::new();
    for pattern in &settings.ignore {
        let full = if pattern.starts_with("**/") || yaml_dir.is_empty() {
            pattern.clone()
        } else {
            format!("{yaml_dir}/{pattern}")
        };
        builder.add(Glob::new(&full).map_err(|e| invalid(pattern, e))?);
    }
    builder.build().map_err(|e| invalid("", e))
}
