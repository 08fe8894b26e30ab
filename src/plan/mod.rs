//! The Plan: each location, its action (build / redeploy / skip) and why.
//!
//! One pass: load the config at head (and at base, to compare entries), pick the base, list the
//! changed paths once, then decide every location from those facts. `plan`, `deploy --dry-run`
//! and `deploy` all start here; nothing in this module has a side effect.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::changes::{
    self, Base, BaseSource, Dependencies, EventBase, FileSource, Head, Repo, TreeSource,
    WorkTreeSource, display, paths,
};
use crate::config::{self, Env, LocationSettings, Workspace};

mod decide;
pub mod dockerignore;
mod error;
pub mod inputs;
pub mod locate;
mod pattern;

use decide::{BaseEntry, Facts, content_salt, decide};
pub use error::PlanError;

/// Version of the JSON document printed by `plan --json`; bumped on any breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// How many changed paths a location's reason lists (the JSON keeps up to [`MAX_PATHS_JSON`]).
const MAX_PATHS_JSON: usize = 20;

/// What the CI run tells planning. The caller reads the CI (`deploy::select::ci_facts`):
/// planning reads no CI variables itself.
#[derive(Debug, Clone, Default)]
pub struct CiFacts {
    /// In CI, uncommitted changes are not counted unless asked.
    pub in_ci: bool,
    /// The base the CI event names (a pull request's target, a push's previous commit), used
    /// when the request names none.
    pub event_base: Option<EventBase>,
}

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
    NotDeployed,
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
    /// Repo-relative folders (and files) whose content makes the image (`.` for the
    /// repository root).
    pub inputs: Vec<String>,
    /// Repo-relative build directory (`.` for the repository root).
    pub build_directory: String,
    pub registry: Option<String>,
    /// Hash of the build inputs and build settings: the image tag that makes identical inputs
    /// never build twice. Computed for locations to build; `None` for the others.
    pub content_key: Option<String>,
    /// The commit this location was compared with; `None` when there is none.
    pub compared_with: Option<ComparedWith>,
    /// The merged dagster_cloud.yaml entry (what the location document is built from).
    #[serde(skip)]
    pub entry: serde_json::Map<String, Value>,
    #[serde(skip)]
    pub settings: LocationSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComparedWith {
    pub commit: String,
    pub source: ComparedSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComparedSource {
    /// The commit its deployed document records (see [`plan_with_bases`]).
    Deployment,
    /// The plan's common base.
    PlanBase,
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
    /// The work tree has uncommitted changes, and they were counted.
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
    #[serde(serialize_with = "config::lossy_path")]
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
pub fn plan(req: &PlanRequest, ci: &CiFacts, env: Env) -> Result<Plan, PlanError> {
    plan_with_bases(req, ci, env, None)
}

/// Every location a deployment holds, with the commit its document records (if any): from
/// `api::deployed_locations`.
pub type Deployed = BTreeMap<String, Option<String>>;

/// As [`plan`], against what is deployed: a location is compared with the commit its
/// deployed document records instead of the common base, so a failed or skipped deploy never
/// loses a change; a location the deployment does not hold is built. A deployed document
/// without a commit, or with one this clone does not have, falls back to the common base.
pub fn plan_with_bases(
    req: &PlanRequest,
    ci: &CiFacts,
    env: Env,
    deployed: Option<&Deployed>,
) -> Result<Plan, PlanError> {
    plan_in(&open_repo(req)?, req, ci, env, deployed)
}

/// The repository holding the request's dagster_cloud.yaml.
pub fn open_repo(req: &PlanRequest) -> Result<Repo, PlanError> {
    Ok(Repo::discover(existing_ancestor(config_dir(&req.config)))?)
}

/// [`plan_with_bases`] in a repository already open (see [`open_repo`]).
pub fn plan_in(
    repo: &Repo,
    req: &PlanRequest,
    ci: &CiFacts,
    env: Env,
    deployed: Option<&Deployed>,
) -> Result<Plan, PlanError> {
    let config_rel = repo.relative_path(&absolute(&req.config)?)?;
    let yaml_dir = paths::parent(&config_rel).to_string();
    let settings_rel = paths::join(&yaml_dir, config::SETTINGS_FILE_NAME);

    // Head: a commit, or HEAD plus the work tree (the default on a laptop).
    let include_dirty = req.include_dirty.unwrap_or(!ci.in_ci);
    let head = match &req.head {
        Some(rev) => Head::Commit(repo.resolve(rev).map_err(|e| e.given_to("--head"))?),
        None if include_dirty => Head::WorkTree(repo.head_commit()?),
        None => Head::Commit(repo.head_commit()?),
    };
    // The base is chosen first so that the diff runs on another thread while the
    // configuration is read; its errors are reported where they were, after the config's.
    let base = changes::choose_base(repo, req.base.as_deref(), ci.event_base.as_ref());
    if let (Ok(Base::Commit { oid, .. }), Head::Commit(h) | Head::WorkTree(h)) = (&base, &head) {
        repo.prefetch_changes(*oid, *h);
    }
    let head_source = HeadFiles::new(repo, &head)?;
    let head_files = head_source.files();
    let workspace = load_at(head_files, repo, &config_rel, env)?
        .ok_or_else(|| missing_config(&req.config, &head))?;
    check_forced(&workspace, &req.force)?;
    let (located, problems) = locate::locate(repo, head_files, &yaml_dir, &workspace);
    if !problems.is_empty() {
        return Err(config::ConfigError::Invalid {
            file: workspace.file.clone(),
            diagnostics: problems,
        }
        .into());
    }

    let base = base?;
    // The changed paths (dagster_cloud.yaml and dagster-deploy.toml are compared entry by
    // entry, not as files) and the config, at one base commit.
    let facts_at = |oid: git2::Oid| -> Result<(Vec<String>, BaseConfig), PlanError> {
        let mut changed = repo.changed_paths(oid, &head)?;
        let config_changed = changed
            .iter()
            .any(|p| *p == config_rel || *p == settings_rel);
        // Unchanged files load as they did at head (same text, same environment).
        let config = if !config_changed {
            BaseConfig::SameAsHead
        } else {
            match load_at(&repo.tree_source(oid)?, repo, &config_rel, env) {
                Ok(Some(ws)) => BaseConfig::Loaded(Box::new(ws)),
                Ok(None) => BaseConfig::Absent,
                Err(_) => BaseConfig::Unreadable,
            }
        };
        changed.retain(|p| *p != config_rel && *p != settings_rel);
        Ok((changed, config))
    };
    let (changed, base_config) = match &base {
        Base::Commit { oid, .. } => facts_at(*oid)?,
        Base::Missing { reason } => (Vec::new(), BaseConfig::NoBase(reason.clone())),
    };
    let mut own_base: HashMap<String, git2::Oid> = HashMap::new();
    let mut facts_by_commit: HashMap<git2::Oid, (Vec<String>, BaseConfig)> = HashMap::new();
    let deployed_commits = deployed
        .into_iter()
        .flatten()
        .filter_map(|(name, commit)| Some((name, commit.as_ref()?)));
    for (name, rev) in deployed_commits {
        let Ok(oid) = repo.resolve(rev) else { continue };
        // The common base's facts are already known (looked up below as the fallback).
        let is_base = matches!(&base, Base::Commit { oid: b, .. } if *b == oid);
        if !is_base && let std::collections::hash_map::Entry::Vacant(e) = facts_by_commit.entry(oid)
        {
            e.insert(facts_at(oid)?);
        }
        own_base.insert(name.clone(), oid);
    }

    let deps = head_source.dependencies();
    let globs = inputs::IgnoreGlobs::new(&yaml_dir);
    let mut locations = Vec::with_capacity(workspace.locations.len());
    for (loc, paths) in workspace.locations.iter().zip(&located) {
        // Every location has its paths once no problem was found.
        let Some(paths) = paths else { continue };
        let settings = workspace.settings.for_location(&loc.name);
        let inputs = inputs::resolve(head_files, &deps, &globs, paths, &settings)
            .map_err(|e| e.in_location(&loc.name))?;
        let own = own_base.get(&loc.name);
        let (loc_changed, loc_config) = own
            .and_then(|oid| facts_by_commit.get(oid))
            .map_or((&changed, &base_config), |(c, b)| (c, b));
        let compared_with = match (own, &base) {
            (Some(oid), _) => Some((oid, ComparedSource::Deployment)),
            (None, Base::Commit { oid, .. }) => Some((oid, ComparedSource::PlanBase)),
            (None, Base::Missing { .. }) => None,
        }
        .map(|(oid, source)| ComparedWith {
            commit: oid.to_string(),
            source,
        });
        let relevant: Vec<&String> = loc_changed.iter().filter(|p| inputs.counts(p)).collect();
        let base_entry = match deployed {
            Some(d) if !d.contains_key(&loc.name) => BaseEntry::NotDeployed,
            _ => loc_config.entry(&loc.name),
        };
        let (action, reason) = decide(&Facts {
            forced: match (req.force.contains(&loc.name), req.all) {
                (true, _) => decide::Forced::Named,
                (false, true) => decide::Forced::All,
                (false, false) => decide::Forced::No,
            },
            base: base_entry,
            location: loc,
            settings: &settings,
            changed: &relevant,
        });
        // Only an image about to be built needs its key; with a .dockerignore a key walks the
        // files of the context, so skipped locations are not charged for one.
        let content_key = match action {
            Action::Build => Some(changes::content_key(
                repo,
                &head,
                &inputs.paths,
                &inputs.context,
                &content_salt(&settings),
            )?),
            Action::Redeploy | Action::Skip => None,
        };
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
            build_directory: display(&inputs.context_dir).into_owned(),
            inputs: inputs
                .paths
                .iter()
                .map(|p| display(p).into_owned())
                .collect(),
            registry: loc.registry.clone(),
            content_key,
            compared_with,
            entry: loc.entry.clone(),
            settings,
        });
    }

    let removed_locations = match &base_config {
        BaseConfig::Loaded(ws) => ws
            .locations
            .iter()
            .filter(|b| !workspace.locations.iter().any(|l| l.name == b.name))
            .map(|b| b.name.clone())
            .collect(),
        _ => Vec::new(),
    };
    repo.save_caches();
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
            dirty: match head {
                Head::WorkTree(oid) => !repo.uncommitted(oid)?.is_empty(),
                Head::Commit(_) => false,
            },
        },
        summary: Summary::of(&locations),
        matrix: Matrix::of(&locations),
        locations,
        removed_locations,
    })
}

/// The config at the base revision, as far as it could be read.
enum BaseConfig {
    NoBase(String),
    /// No dagster_cloud.yaml at that path: every location is new.
    Absent,
    Unreadable,
    /// dagster_cloud.yaml and dagster-deploy.toml are unchanged: the base reads as head.
    SameAsHead,
    Loaded(Box<Workspace>),
}

impl BaseConfig {
    fn entry(&self, name: &str) -> BaseEntry<'_> {
        match self {
            BaseConfig::NoBase(why) => BaseEntry::NoBase(why),
            BaseConfig::Absent => BaseEntry::Absent,
            BaseConfig::Unreadable => BaseEntry::Unknown,
            BaseConfig::SameAsHead => BaseEntry::Same,
            BaseConfig::Loaded(ws) => match ws.locations.iter().find(|l| l.name == name) {
                Some(location) => BaseEntry::Known {
                    location,
                    settings: Box::new(ws.settings.for_location(name)),
                },
                None => BaseEntry::Absent,
            },
        }
    }
}

impl Summary {
    fn of(locations: &[PlannedLocation]) -> Summary {
        let count = |a| locations.iter().filter(|l| l.action == a).count();
        Summary {
            build: count(Action::Build),
            redeploy: count(Action::Redeploy),
            skip: count(Action::Skip),
        }
    }
}

impl Matrix {
    fn of(locations: &[PlannedLocation]) -> Matrix {
        Matrix {
            include: locations
                .iter()
                .filter(|l| l.action == Action::Build)
                .map(|l| MatrixEntry {
                    location: l.name.clone(),
                })
                .collect(),
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf, PlanError> {
    std::path::absolute(path).map_err(|source| {
        PlanError::Config(config::ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    })
}

fn check_forced(ws: &Workspace, force: &[String]) -> Result<(), PlanError> {
    for name in force {
        if !ws.locations.iter().any(|l| l.name == *name) {
            let known: Vec<&str> = ws.locations.iter().map(|l| l.name.as_str()).collect();
            return Err(PlanError::Usage {
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
) -> Result<Option<Workspace>, PlanError> {
    let Some(yaml) = files.read(config_rel) else {
        return Ok(None);
    };
    let yaml_dir = paths::parent(config_rel);
    let toml_rel = paths::join(yaml_dir, config::SETTINGS_FILE_NAME);
    let toml = files.read(&toml_rel);
    let file = Path::new(config_rel);
    let yaml = config::decode(file, yaml)?;
    let toml = toml
        .map(|t| config::decode(Path::new(&toml_rel), t))
        .transpose()?;
    let root = repo.workdir.join(yaml_dir);
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

/// The files at head: a commit's tree, or the work tree on disk.
enum HeadFiles<'r> {
    Tree(TreeSource<'r>),
    Disk(WorkTreeSource),
}

impl<'r> HeadFiles<'r> {
    fn new(repo: &'r Repo, head: &Head) -> Result<HeadFiles<'r>, PlanError> {
        Ok(match head {
            Head::Commit(oid) => HeadFiles::Tree(repo.tree_source(*oid)?),
            Head::WorkTree(_) => HeadFiles::Disk(repo.worktree_source()),
        })
    }

    fn files(&self) -> &dyn FileSource {
        match self {
            HeadFiles::Tree(tree) => tree,
            HeadFiles::Disk(disk) => disk,
        }
    }

    /// A commit's folders are remembered across runs; the work tree's are read each time.
    fn dependencies(&self) -> Dependencies<'_> {
        match self {
            HeadFiles::Tree(tree) => Dependencies::of_tree(tree),
            HeadFiles::Disk(disk) => Dependencies::new(disk),
        }
    }
}

fn missing_config(config: &Path, head: &Head) -> PlanError {
    match head {
        Head::Commit(oid) => PlanError::Failed {
            message: format!(
                "{} does not exist at revision {:.7}",
                config.display(),
                oid.to_string()
            ),
            hint: "pick a --head revision that has the file, or pass --config".into(),
        },
        // The error the filesystem gives, worded as `check` words it.
        Head::WorkTree(_) => PlanError::Config(config::ConfigError::Read {
            path: config.to_path_buf(),
            source: std::fs::metadata(config)
                .err()
                .unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
        }),
    }
}

fn config_dir(config: &Path) -> &Path {
    match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The nearest folder of `dir` (itself or above) that exists: the repository is found from
/// there, so a `--config` in a missing folder is reported as the unreadable file it is.
fn existing_ancestor(dir: &Path) -> &Path {
    dir.ancestors()
        .find(|d| d.as_os_str().is_empty() || d.is_dir())
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
