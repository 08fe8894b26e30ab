//! The Plan: each location, its action (build / redeploy / skip) and why.
//!
//! One pass: load the config at head (and at base, to compare entries), pick the base, list the
//! changed paths once, then decide every location from those facts. `plan`, `deploy --dry-run`
//! and `deploy` all start here; nothing in this module has a side effect.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;
use serde_json::Value;

use crate::changes::{self, Base, BaseSource, FileSource, Head, Repo};
use crate::ci::context::CiContext;
use crate::config::{self, Env, Location, LocationSettings, Workspace};
use crate::error::Error;

/// Version of the JSON document printed by `plan --json`; bumped on any breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// How many changed paths a location's reason lists (the JSON keeps up to [`MAX_PATHS_JSON`]).
const MAX_PATHS_SHOWN: usize = 3;
const MAX_PATHS_JSON: usize = 20;

/// What the caller asks for (built from `plan`'s or `deploy`'s flags).
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Path to dagster_cloud.yaml.
    pub config: PathBuf,
    pub base: Option<String>,
    pub head: Option<String>,
    /// `None`: on outside CI, off in CI.
    pub include_dirty: Option<bool>,
    /// Locations to build whatever changed.
    pub force: Vec<String>,
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Its build inputs changed (or it is new, or forced): build a new image and register it.
    Build,
    /// Only its dagster_cloud.yaml entry changed: register it again with the current image.
    Redeploy,
    Skip,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Build => "build",
            Action::Redeploy => "redeploy",
            Action::Skip => "skip",
        }
    }
}

/// Why a location got its action; `code` is stable, `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonCode {
    Forced,
    NoBase,
    NewLocation,
    InputsChanged,
    BuildSettingsChanged,
    EntryChanged,
    BaseConfigUnreadable,
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedLocation {
    pub name: String,
    pub action: Action,
    pub reason: Reason,
    /// Changed paths among its build inputs (repo-relative, at most [`MAX_PATHS_JSON`]).
    pub changed_paths: Vec<String>,
    pub changed_paths_count: usize,
    /// Repo-relative folders (and files) whose content makes the image.
    pub inputs: Vec<String>,
    /// Repo-relative build directory (`.` for the repository root).
    pub build_directory: String,
    pub registry: Option<String>,
    /// Hash of the build inputs and build settings: the image tag that makes identical inputs
    /// never build twice.
    pub content_key: String,
    /// The merged dagster_cloud.yaml entry (what the location document is built from).
    #[serde(skip)]
    pub entry: serde_json::Map<String, Value>,
    #[serde(skip)]
    pub settings: LocationSettings,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PlanBase {
    Found {
        commit: String,
        rev: String,
        source: BaseSource,
    },
    Missing {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanHead {
    pub commit: String,
    /// Uncommitted work-tree changes were counted.
    pub dirty: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub build: usize,
    pub redeploy: usize,
    pub skip: usize,
}

/// `{"include": [{"location": ...}, ...]}` for the locations to build: drop it straight into a
/// GitHub Actions `strategy.matrix` with `fromJSON`.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub include: Vec<MatrixEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MatrixEntry {
    pub location: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub schema_version: u32,
    /// The work tree root (absolute).
    pub repository: PathBuf,
    /// dagster_cloud.yaml, repo-relative.
    pub config: String,
    pub base: PlanBase,
    pub head: PlanHead,
    pub locations: Vec<PlannedLocation>,
    /// In the base's dagster_cloud.yaml but not in head's (not deleted by `deploy`).
    pub removed_locations: Vec<String>,
    pub summary: Summary,
    pub matrix: Matrix,
}

impl Plan {
    pub fn location(&self, name: &str) -> Option<&PlannedLocation> {
        self.locations.iter().find(|l| l.name == name)
    }
}

/// Computes the plan. Reads git and files only.
pub fn plan(req: &PlanRequest, ci: &CiContext, env: Env) -> Result<Plan, Error> {
    let repo = Repo::discover(config_dir(&req.config))?;
    let config_rel = repo_relative(&repo, &req.config)?;
    let yaml_dir = parent_of(&config_rel);

    // Head: a commit, or HEAD plus the work tree (the default on a laptop).
    let include_dirty = req.include_dirty.unwrap_or(!ci.is_ci());
    let head = match &req.head {
        Some(rev) => Head::Commit(repo.resolve(rev)?),
        None if include_dirty => Head::WorkTree(repo.head_commit()?),
        None => Head::Commit(repo.head_commit()?),
    };
    let head_files = head_source(&repo, &head)?;
    let workspace = load_at(&*head_files, &repo, &config_rel, env)?
        .ok_or_else(|| missing_config(&req.config, &head))?;
    check_forced(&workspace, &req.force)?;

    let base = changes::choose_base(&repo, req.base.as_deref(), ci)?;
    let (changed, base_ws) = match &base {
        Base::Commit { oid, .. } => {
            let changed = repo.changed_paths(*oid, &head)?;
            let base_files = repo.tree_source(*oid)?;
            // An invalid config at base only means we cannot compare entries.
            let base_ws = load_at(&base_files, &repo, &config_rel, env).map_err(|_| ());
            (changed, Some(base_ws))
        }
        Base::Missing { .. } => (Vec::new(), None),
    };

    let settings_rel = join(&yaml_dir, config::SETTINGS_FILE_NAME);
    let mut locations = Vec::with_capacity(workspace.locations.len());
    for loc in &workspace.locations {
        let settings = workspace.settings.for_location(&loc.name);
        let inputs = build_inputs(&*head_files, &yaml_dir, loc, &settings)?;
        let ignore = ignore_set(&yaml_dir, &settings)?;
        let relevant: Vec<&String> = changed
            .iter()
            .filter(|p| **p != config_rel && **p != settings_rel)
            .filter(|p| inputs.iter().any(|i| is_within(p, i)))
            .filter(|p| !ignore.is_match(p.as_str()))
            .collect();

        let base_loc = match &base_ws {
            Some(Ok(Some(ws))) => Some(ws.locations.iter().find(|l| l.name == loc.name)),
            _ => None,
        };
        let base_settings = match &base_ws {
            Some(Ok(Some(ws))) => Some(ws.settings.for_location(&loc.name)),
            _ => None,
        };
        let forced = req.all || req.force.contains(&loc.name);
        let (action, reason) = decide(&Facts {
            forced,
            base: &base,
            base_config: match &base_ws {
                None => BaseConfig::NoBase,
                Some(Err(())) => BaseConfig::Unreadable,
                Some(Ok(None)) => BaseConfig::Absent,
                Some(Ok(Some(_))) => BaseConfig::Loaded,
            },
            base_location: base_loc.flatten(),
            base_settings: base_settings.as_ref(),
            location: loc,
            settings: &settings,
            changed: &relevant,
        });

        let salt = content_salt(loc, &settings);
        let content_key = changes::content_key(&repo, &head, &inputs, &ignore, &salt)?;
        locations.push(PlannedLocation {
            name: loc.name.clone(),
            action,
            reason,
            changed_paths_count: relevant.len(),
            changed_paths: relevant
                .iter()
                .take(MAX_PATHS_JSON)
                .map(|p| p.to_string())
                .collect(),
            inputs,
            build_directory: display_dir(&join(&yaml_dir, &loc.build_directory)),
            registry: loc.registry.clone(),
            content_key,
            entry: loc.entry.clone(),
            settings,
        });
    }

    let removed_locations = match &base_ws {
        Some(Ok(Some(ws))) => ws
            .locations
            .iter()
            .filter(|b| !workspace.locations.iter().any(|l| l.name == b.name))
            .map(|b| b.name.clone())
            .collect(),
        _ => Vec::new(),
    };
    let mut summary = Summary::default();
    for l in &locations {
        match l.action {
            Action::Build => summary.build += 1,
            Action::Redeploy => summary.redeploy += 1,
            Action::Skip => summary.skip += 1,
        }
    }
    let matrix = Matrix {
        include: locations
            .iter()
            .filter(|l| l.action == Action::Build)
            .map(|l| MatrixEntry {
                location: l.name.clone(),
            })
            .collect(),
    };
    Ok(Plan {
        schema_version: SCHEMA_VERSION,
        repository: repo.workdir.clone(),
        config: config_rel,
        base: match base {
            Base::Commit { oid, rev, source } => PlanBase::Found {
                commit: oid.to_string(),
                rev,
                source,
            },
            Base::Missing { reason } => PlanBase::Missing { reason },
        },
        head: PlanHead {
            commit: match head {
                Head::Commit(oid) | Head::WorkTree(oid) => oid.to_string(),
            },
            dirty: matches!(head, Head::WorkTree(_)),
        },
        locations,
        removed_locations,
        summary,
        matrix,
    })
}

enum BaseConfig {
    NoBase,
    /// The base revision has no dagster_cloud.yaml at that path: every location is new.
    Absent,
    Unreadable,
    Loaded,
}

struct Facts<'a> {
    forced: bool,
    base: &'a Base,
    base_config: BaseConfig,
    base_location: Option<&'a Location>,
    base_settings: Option<&'a LocationSettings>,
    location: &'a Location,
    settings: &'a LocationSettings,
    changed: &'a [&'a String],
}

/// The decision table, first match wins.
fn decide(f: &Facts) -> (Action, Reason) {
    let reason = |code, message: String| Reason { code, message };
    if f.forced {
        return (Action::Build, reason(ReasonCode::Forced, "forced".into()));
    }
    if let Base::Missing { reason: why } = f.base {
        return (
            Action::Build,
            reason(ReasonCode::NoBase, format!("no base revision: {why}")),
        );
    }
    let base_loc = match (&f.base_config, f.base_location) {
        (BaseConfig::Absent, _) | (BaseConfig::Loaded, None) => {
            return (
                Action::Build,
                reason(ReasonCode::NewLocation, "new location".into()),
            );
        }
        (_, loc) => loc,
    };
    if !f.changed.is_empty() {
        return (
            Action::Build,
            reason(ReasonCode::InputsChanged, describe_paths(f.changed)),
        );
    }
    let Some(base_loc) = base_loc else {
        // The base config exists but does not load: entries cannot be compared, so register
        // again (cheap) rather than risk missing a change.
        return (
            Action::Redeploy,
            reason(
                ReasonCode::BaseConfigUnreadable,
                "dagster_cloud.yaml at the base revision does not load; registering again".into(),
            ),
        );
    };
    let build_keys = build_setting_changes(base_loc, f.base_settings, f.location, f.settings);
    if !build_keys.is_empty() {
        return (
            Action::Build,
            reason(
                ReasonCode::BuildSettingsChanged,
                format!("build settings changed: {}", build_keys.join(", ")),
            ),
        );
    }
    let entry_keys = changed_keys(
        &without_build(&base_loc.entry),
        &without_build(&f.location.entry),
    );
    if !entry_keys.is_empty() {
        return (
            Action::Redeploy,
            reason(
                ReasonCode::EntryChanged,
                format!(
                    "dagster_cloud.yaml entry changed: {}",
                    entry_keys.join(", ")
                ),
            ),
        );
    }
    (
        Action::Skip,
        reason(
            ReasonCode::Unchanged,
            "no changes in its build inputs or entry".into(),
        ),
    )
}

fn describe_paths(paths: &[&String]) -> String {
    let shown: Vec<&str> = paths
        .iter()
        .take(MAX_PATHS_SHOWN)
        .map(|p| p.as_str())
        .collect();
    let mut s = format!("changed: {}", shown.join(", "));
    if paths.len() > MAX_PATHS_SHOWN {
        s.push_str(&format!(" (+{} more)", paths.len() - MAX_PATHS_SHOWN));
    }
    s
}

/// Names of the build settings that differ (`build.registry`, `dockerfile`, ...).
fn build_setting_changes(
    base: &Location,
    base_settings: Option<&LocationSettings>,
    head: &Location,
    settings: &LocationSettings,
) -> Vec<String> {
    let build = |l: &Location| l.entry.get("build").cloned().unwrap_or(Value::Null);
    let mut keys: Vec<String> = match (build(base), build(head)) {
        (Value::Object(a), Value::Object(b)) => changed_keys(&a, &b)
            .into_iter()
            .map(|k| format!("build.{k}"))
            .collect(),
        (a, b) if a != b => vec!["build".into()],
        _ => Vec::new(),
    };
    if let Some(base_settings) = base_settings {
        let a = image_settings(base_settings);
        let b = image_settings(settings);
        keys.extend(
            changed_keys(&a, &b)
                .into_iter()
                .map(|k| format!("{}:{k}", config::SETTINGS_FILE_NAME)),
        );
        if base_settings.watch != settings.watch || base_settings.ignore != settings.ignore {
            keys.push(format!("{}:watch/ignore", config::SETTINGS_FILE_NAME));
        }
    }
    keys
}

/// Top-level keys whose values differ between two maps, sorted.
fn changed_keys(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
) -> Vec<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

fn without_build(entry: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    let mut e = entry.clone();
    e.remove("build");
    e
}

/// The settings that change what image is built (not where it goes): part of the content key.
fn image_settings(s: &LocationSettings) -> serde_json::Map<String, Value> {
    let v = serde_json::json!({
        "dockerfile": s.dockerfile,
        "build_args": s.build_args,
        "target": s.target,
        "platform": s.platform,
        "python_version": s.python_version,
        "base_image": s.base_image,
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// Bytes mixed into the content key besides the input trees: the image-shaping settings.
/// The registry is left out on purpose: the same content pushed elsewhere keeps its tag.
fn content_salt(_loc: &Location, settings: &LocationSettings) -> Vec<u8> {
    // serde_json keeps insertion order and `image_settings` builds a fixed order: stable bytes.
    serde_json::to_vec(&Value::Object(image_settings(settings))).unwrap_or_default()
}

/// The location's build inputs, repo-relative: its build directory, the Dockerfile when it
/// lives elsewhere, watched paths, and local path dependencies (transitively).
fn build_inputs(
    files: &dyn FileSource,
    yaml_dir: &str,
    loc: &Location,
    settings: &LocationSettings,
) -> Result<Vec<String>, Error> {
    let dir = normalize(yaml_dir, &loc.build_directory)?;
    let mut inputs = BTreeSet::new();
    inputs.insert(dir.clone());
    if let Some(dockerfile) = &settings.dockerfile {
        inputs.insert(normalize(yaml_dir, dockerfile)?);
    }
    for watched in &settings.watch {
        inputs.insert(normalize(yaml_dir, watched)?);
    }
    for dep in changes::local_dependencies(files, &dir)? {
        inputs.insert(dep);
    }
    // Drop inputs already inside another input: fewer, non-overlapping prefixes.
    let all: Vec<String> = inputs.into_iter().collect();
    Ok(all
        .iter()
        .filter(|p| !all.iter().any(|q| q != *p && is_within(p, q)))
        .cloned()
        .collect())
}

/// Ignore globs from dagster-deploy.toml, relative to its folder; `**/…` patterns match
/// anywhere in the repository.
fn ignore_set(yaml_dir: &str, settings: &LocationSettings) -> Result<GlobSet, Error> {
    let mut b = GlobSetBuilder::new();
    for pattern in &settings.ignore {
        let full = if pattern.starts_with("**/") || yaml_dir.is_empty() {
            pattern.clone()
        } else {
            format!("{yaml_dir}/{pattern}")
        };
        let glob = Glob::new(&full).map_err(|e| Error::Failed {
            message: format!(
                "{}: invalid ignore pattern `{pattern}`: {e}",
                config::SETTINGS_FILE_NAME
            ),
            hint: "fix the glob (see `dagster-deploy check`)".into(),
        })?;
        b.add(glob);
    }
    b.build().map_err(|e| Error::Failed {
        message: format!("{}: ignore patterns: {e}", config::SETTINGS_FILE_NAME),
        hint: "fix the globs".into(),
    })
}

fn check_forced(ws: &Workspace, force: &[String]) -> Result<(), Error> {
    for name in force {
        if !ws.locations.iter().any(|l| l.name == *name) {
            let known: Vec<&str> = ws.locations.iter().map(|l| l.name.as_str()).collect();
            return Err(Error::Usage {
                message: format!(
                    "--location {name}: no such location in {}",
                    ws.file.display()
                ),
                hint: format!("known locations: {}", known.join(", ")),
            });
        }
    }
    Ok(())
}

/// Loads dagster_cloud.yaml (and dagster-deploy.toml) as they are in `files`; `Ok(None)` when
/// the yaml does not exist there.
fn load_at(
    files: &dyn FileSource,
    repo: &Repo,
    config_rel: &str,
    env: Env,
) -> Result<Option<Workspace>, Error> {
    let Some(yaml) = files.read(config_rel) else {
        return Ok(None);
    };
    let yaml_dir = parent_of(config_rel);
    let toml = files.read(&join(&yaml_dir, config::SETTINGS_FILE_NAME));
    let to_text = |bytes: Vec<u8>, path: &str| {
        String::from_utf8(bytes).map_err(|_| Error::Failed {
            message: format!("{path} is not valid UTF-8"),
            hint: "save the file as UTF-8".into(),
        })
    };
    let yaml = to_text(yaml, config_rel)?;
    let toml = toml
        .map(|t| to_text(t, config::SETTINGS_FILE_NAME))
        .transpose()?;
    let file = Path::new(config_rel);
    let root = repo.workdir.join(&yaml_dir);
    let ws = config::parse(
        &config::Source {
            file,
            root: &root,
            yaml: &yaml,
            settings_toml: toml.as_deref(),
        },
        env,
    )?;
    Ok(Some(ws))
}

fn head_source<'r>(repo: &'r Repo, head: &Head) -> Result<Box<dyn FileSource + 'r>, Error> {
    Ok(match head {
        Head::Commit(oid) => Box::new(repo.tree_source(*oid)?),
        Head::WorkTree(_) => Box::new(repo.worktree_source()),
    })
}

fn missing_config(config: &Path, head: &Head) -> Error {
    match head {
        Head::Commit(oid) => Error::Failed {
            message: format!(
                "{} does not exist at revision {:.7}",
                config.display(),
                oid.to_string()
            ),
            hint: "pick a --head revision that has the file, or pass --config".into(),
        },
        Head::WorkTree(_) => Error::Config(config::ConfigError::Read {
            path: config.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }),
    }
}

fn config_dir(config: &Path) -> &Path {
    match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The config file's path relative to the work tree, with `/` separators.
fn repo_relative(repo: &Repo, config: &Path) -> Result<String, Error> {
    let dir = config_dir(config);
    let abs_dir = dir.canonicalize().map_err(|source| {
        Error::Config(config::ConfigError::Read {
            path: config.to_path_buf(),
            source,
        })
    })?;
    let workdir = repo
        .workdir
        .canonicalize()
        .unwrap_or_else(|_| repo.workdir.clone());
    let rel_dir =
        abs_dir
            .strip_prefix(&workdir)
            .map_err(|_| changes::ChangesError::OutsideRepository {
                path: config.display().to_string(),
            })?;
    let name = config
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parts: Vec<String> = rel_dir
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(join(&parts.join("/"), &name))
}

/// Joins `rel` onto the repo-relative folder `base`, resolving `.` and `..`; an error when the
/// result would leave the repository.
fn normalize(base: &str, rel: &str) -> Result<String, Error> {
    let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(changes::ChangesError::OutsideRepository {
                        path: join(base, rel),
                    }
                    .into());
                }
            }
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn parent_of(path: &str) -> String {
    path.rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap_or_default()
}

fn display_dir(dir: &str) -> String {
    if dir.is_empty() {
        ".".into()
    } else {
        dir.to_string()
    }
}

/// `path` is `prefix` itself or below it; `""` is the repository root and contains everything.
fn is_within(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_respects_path_boundaries() {
        assert!(is_within("etl/a.py", "etl"));
        assert!(is_within("etl", "etl"));
        assert!(!is_within("etl2/a.py", "etl"));
        assert!(is_within("anything", ""));
    }

    #[test]
    fn normalize_resolves_dots_and_refuses_escape() {
        assert_eq!(
            normalize("deploy", "../libs/common").ok(),
            Some("libs/common".into())
        );
        assert_eq!(normalize("", "./etl/").ok(), Some("etl".into()));
        assert_eq!(normalize("", ".").ok(), Some(String::new()));
        assert!(normalize("", "../outside").is_err());
    }

    #[test]
    fn paths_are_summarised_after_three() {
        let paths: Vec<String> = (1..=5).map(|i| format!("etl/f{i}.py")).collect();
        let refs: Vec<&String> = paths.iter().collect();
        assert_eq!(
            describe_paths(&refs),
            "changed: etl/f1.py, etl/f2.py, etl/f3.py (+2 more)"
        );
    }
}
