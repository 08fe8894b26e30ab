//! The Python-executable (PEX) flow, one for `serverless deploy-python-executable`, `deploy
//! --build-strategy python-executable` and `ci build`: which folder is each location's
//! project, which Python to build for, build and upload its files, then (except `ci build`,
//! which records them for `ci deploy`) register every location at once and wait.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::register::register_documents;
use super::target::{Deployment, Progress, Remote};
use super::wait::WaitPolicy;
use crate::api::document::{self, DocumentFlags};
use crate::api::ops;
use crate::api::wait::LoadResult;
use crate::config::{self, Env, Workspace};
use crate::error::Error;
use crate::pex::{self, BuildMethod, Built, PexError, PexLocation, requirements::PROJECT_FILES};
use crate::progress::Reporter;

/// One location to deploy: its project folder and its dagster_cloud.yaml entry, if any.
#[derive(Debug, Clone)]
pub struct PexTarget {
    pub name: String,
    pub dir: PathBuf,
    pub entry: Option<Map<String, Value>>,
}

impl PexTarget {
    /// A location of `ws`: its project folder under `build_dir` (see [`project_dir`]).
    pub fn of(name: &str, build_dir: &Path, entry: &Map<String, Value>, say: Progress) -> Self {
        let dir = project_dir(build_dir, entry);
        if dir != build_dir {
            say(&format!(
                "{name}: {} has no requirements.txt, pyproject.toml or setup.py; using {}, the \
                 folder of its code source",
                shown(build_dir),
                shown(&dir)
            ));
        }
        PexTarget {
            name: name.to_string(),
            dir,
            entry: Some(entry.clone()),
        }
    }
}

/// The one rule for the Python version: `--python-version`, else `python_version` in
/// dagster-deploy.toml for the first location that sets it, else 3.11.
pub fn python_version(flag: Option<&str>, ws: Option<&Workspace>, names: &[&str]) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            let ws = ws?;
            names
                .iter()
                .find_map(|n| ws.settings.for_location(n).python_version)
        })
        .unwrap_or_else(|| pex::platform::DEFAULT_PYTHON_VERSION.to_string())
}

/// How to build: the Python version and the dependency cache tags.
#[derive(Debug, Clone)]
pub struct PexOptions {
    pub python_version: String,
    pub deps_cache_from: Option<String>,
    pub deps_cache_to: Option<String>,
    pub build_method: BuildMethod,
}

impl PexOptions {
    fn pex(&self) -> pex::Options {
        pex::Options {
            python_version: self.python_version.clone(),
            deps_cache_from: self.deps_cache_from.clone(),
            deps_cache_to: self.deps_cache_to.clone(),
            build_method: self.build_method,
        }
    }
}

/// Builds and uploads every target's files to `remote`, checking each folder first.
pub async fn build(
    remote: &Remote,
    targets: &[PexTarget],
    opts: &PexOptions,
    reporter: &Reporter,
) -> Result<Vec<Built>, Error> {
    for t in targets {
        check_dir(&t.dir, &t.name)?;
    }
    let locations: Vec<PexLocation> = targets
        .iter()
        .map(|t| PexLocation {
            name: t.name.clone(),
            dir: t.dir.clone(),
        })
        .collect();
    Ok(pex::build_and_upload(&remote.client, &locations, &opts.pex(), reporter).await?)
}

/// Builds, uploads, then registers every target (only once every upload succeeded) and
/// waits as `policy` says; returns what was built and how each location loaded. `flags`
/// gives each location's document fields beside its pex tag. One location goes through
/// `addOrUpdateLocationFromDocument` when `single_as_add` (as the reference's `serverless`
/// command), else all go in one `deployLocations`.
pub async fn deploy(
    remote: &Remote,
    targets: &[PexTarget],
    opts: &PexOptions,
    flags: &dyn Fn(&Built) -> DocumentFlags,
    single_as_add: bool,
    policy: &WaitPolicy,
    reporter: &Reporter,
) -> Result<(Vec<Built>, Vec<(String, LoadResult)>), Error> {
    let built = build(remote, targets, opts, reporter).await?;
    let say = &|line: &str| reporter.message(line);
    let documents: Vec<(String, Value)> = targets
        .iter()
        .zip(&built)
        .map(|(t, b)| {
            let doc = document::location_document(&t.name, t.entry.as_ref(), &flags(b));
            (t.name.clone(), doc)
        })
        .collect();
    let names: Vec<&str> = documents.iter().map(|(n, _)| n.as_str()).collect();
    say(&format!("[register] {}", names.join(", ")));
    if policy.waits() {
        say(&format!("[load] waiting for {}", names.join(", ")));
    }
    let results = match documents.as_slice() {
        [(_, doc)] if single_as_add => {
            ops::add_or_update_location(&remote.client, doc).await?;
            remote.wait(&documents, policy, say).await?
        }
        _ => register_documents(remote, documents.clone(), policy, say).await?,
    };
    let failed = results
        .iter()
        .any(|(_, r)| matches!(r, LoadResult::Failed(_)));
    if policy.waits() && !failed {
        say(&format!("[load] {} loaded", names.join(", ")));
    }
    Ok((built, results))
}

/// What `serverless deploy-python-executable` names: `--location-name` (`*`: every location
/// of the location file), the code-source flags given, the location file, the folder.
pub struct LocationQuery<'a> {
    pub name: Option<&'a str>,
    pub sources_given: usize,
    pub location_file: Option<&'a Path>,
    pub source_directory: &'a Path,
}

/// The locations the query names, with their folders (each checked to hold a project).
pub fn resolve(q: &LocationQuery, env: Env, say: Progress) -> Result<Vec<PexTarget>, Error> {
    let targets = resolve_unchecked(q, env, say)?;
    for t in &targets {
        check_dir(&t.dir, &t.name)?;
    }
    Ok(targets)
}

fn resolve_unchecked(q: &LocationQuery, env: Env, say: Progress) -> Result<Vec<PexTarget>, Error> {
    let Some(name) = q.name.map(str::to_string) else {
        return Err(usage(
            "no location name provided",
            "pass --location-name NAME (or '*' with --location-file for every location)",
        ));
    };
    if q.location_file.is_none() && q.sources_given == 0 {
        return Err(usage(
            "no code source: nothing says where the definitions are",
            "pass --module-name, --package-name or --python-file (or --location-file)",
        ));
    }
    if q.sources_given > 1 {
        return Err(usage(
            "more than one of --python-file, --package-name, --module-name and \
             --autoload-defs-module-name",
            "a location has exactly one code source; pass one of them",
        ));
    }
    let in_folder = |name: String, entry| PexTarget {
        name,
        dir: q.source_directory.to_path_buf(),
        entry,
    };
    let Some(file) = q.location_file else {
        if name == "*" {
            return Err(usage(
                "--location-name '*' needs --location-file",
                "pass --location-file dagster_cloud.yaml to deploy every location in it",
            ));
        }
        return Ok(vec![in_folder(name, None)]);
    };
    let raw = document::read_yaml(file)?;
    if raw.get("locations").is_none() {
        // A one-location file: the positional folder holds the code.
        let (entry, name) = document::read_location_file(file, Some(&name))?;
        return Ok(vec![in_folder(name, Some(entry))]);
    }
    let ws = config::load(file, env)?;
    if name == "*" && q.sources_given > 0 {
        return Err(usage(
            "--location-name '*' takes every location's settings from --location-file",
            "drop the code source flag, or name one location",
        ));
    }
    let picked: Vec<_> = ws
        .locations
        .iter()
        .filter(|l| name == "*" || l.name == name)
        .collect();
    if picked.is_empty() {
        let known: Vec<&str> = ws.locations.iter().map(|l| l.name.as_str()).collect();
        return Err(usage(
            format!("location {name} is not in {}", file.display()),
            format!("use one of: {}", known.join(", ")),
        ));
    }
    Ok(picked
        .into_iter()
        .map(|l| PexTarget::of(&l.name, &ws.root.join(&l.build_directory), &l.entry, say))
        .collect())
}

fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
    Error::Usage {
        message: message.into(),
        hint: hint.into(),
    }
}

fn shown(p: &Path) -> String {
    let s = p.display().to_string();
    if s.is_empty() { ".".into() } else { s }
}

fn has_project(dir: &Path) -> bool {
    PROJECT_FILES.iter().any(|f| dir.join(f).is_file())
}

/// The build directory, or, when it holds no project file (a monorepo whose Docker builds
/// start at the root), the folder of the code source's top-level package under it if that
/// one does: where `pip install` of the location would run.
pub fn project_dir(build_dir: &Path, entry: &Map<String, Value>) -> PathBuf {
    if has_project(build_dir) {
        return build_dir.to_path_buf();
    }
    let source = entry.get("code_source").and_then(Value::as_object);
    let top = source.and_then(|cs| {
        ["package_name", "module_name", "autoload_defs_module_name"]
            .iter()
            .find_map(|k| cs.get(*k).and_then(Value::as_str))
            .map(|m| m.split('.').next().unwrap_or(m).to_string())
            .or_else(|| {
                cs.get("python_file")
                    .and_then(Value::as_str)
                    .and_then(|f| Path::new(f).components().next())
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
            })
    });
    match top {
        Some(t) if has_project(&build_dir.join(&t)) => build_dir.join(t),
        _ => build_dir.to_path_buf(),
    }
}

fn check_dir(dir: &Path, name: &str) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(usage(
            format!("location {name}: {} is not a folder", shown(dir)),
            "pass the location's folder as the argument (default: the current folder)",
        ));
    }
    if !has_project(dir) {
        return Err(PexError::Input {
            message: format!(
                "location {name}: {} has no requirements.txt, pyproject.toml or setup.py, so its \
                 Python dependencies (dagster among them) are unknown",
                shown(dir)
            ),
            hint: "add a requirements.txt with at least `dagster` (and `dagster-cloud` for \
                   Dagster+ Serverless), or point at the location's folder"
                .into(),
        }
        .into());
    }
    Ok(())
}
