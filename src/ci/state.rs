//! The CI build session state (docs/protocol.md, "Build sessions"): one `location-<name>.json` per
//! location in the state folder (`--statedir` or `DAGSTER_BUILD_STATEDIR`), in the reference
//! client's format, so a build job and a later deploy job (ours or `dagster-cloud ci deploy`)
//! can share it. The API token is never stored.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Env;

/// The variable naming the state folder when `--statedir` is not given.
pub const STATEDIR_VAR: &str = "DAGSTER_BUILD_STATEDIR";
const FILE_PREFIX: &str = "location-";

/// One location's state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationState {
    /// The organisation URL.
    pub url: String,
    pub deployment_name: String,
    /// dagster_cloud.yaml, absolute.
    pub location_file: String,
    pub location_name: String,
    pub is_branch_deployment: bool,
    #[serde(default = "yes")]
    pub selected: bool,
    pub build: BuildMetadata,
    #[serde(default)]
    pub build_output: Option<BuildOutput>,
    #[serde(default)]
    pub status_url: Option<String>,
    #[serde(default)]
    pub history: Vec<StatusChange>,
    #[serde(default)]
    pub project_dir: Option<String>,
    /// Fields written by other tools that we do not model, kept as they were.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildMetadata {
    pub git_url: Option<String>,
    pub commit_hash: Option<String>,
    pub build_config: Option<BuildConfig>,
    #[serde(default)]
    pub git_provider: Option<String>,
    #[serde(default)]
    pub repo_owner: Option<String>,
    #[serde(default)]
    pub repo_name: Option<String>,
    #[serde(default)]
    pub base_branch: Option<String>,
    #[serde(default)]
    pub defs_base_path: Option<String>,
}

/// `build` of the location's dagster_cloud.yaml entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildConfig {
    pub directory: Option<String>,
    pub registry: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy")]
pub enum BuildOutput {
    #[serde(rename = "docker")]
    Docker {
        image: String,
        #[serde(default)]
        python_version: Option<String>,
        #[serde(default)]
        pex_bundle: bool,
    },
    #[serde(rename = "python-executable")]
    PythonExecutable {
        python_version: String,
        image: Option<String>,
        pex_tag: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocationStatus {
    Pending,
    Success,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    /// ISO 8601, UTC.
    pub timestamp: String,
    pub status: LocationStatus,
    pub log: String,
}

impl LocationState {
    pub fn add_status(&mut self, status: LocationStatus, log: impl Into<String>) {
        self.history.push(StatusChange {
            timestamp: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            status,
            log: log.into(),
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use the state folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid location state file: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("no build session folder: --statedir is not given and {STATEDIR_VAR} is not set")]
    NoFolder,
    #[error("the build session folder {} does not exist", path.display())]
    NoSession { path: PathBuf },
    #[error("{} in the build session {}: {}", plural(names.len(), "unknown location"), path.display(), names.join(", "))]
    UnknownLocations { path: PathBuf, names: Vec<String> },
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        what.to_string()
    } else {
        format!("{what}s")
    }
}

impl StateError {
    pub fn code(&self) -> &'static str {
        match self {
            StateError::Io { .. } => "state-io",
            StateError::Invalid { .. } => "state-invalid",
            StateError::NoFolder => "state-no-folder",
            StateError::NoSession { .. } => "state-no-session",
            StateError::UnknownLocations { .. } => "state-unknown-location",
        }
    }

    pub fn hint(&self) -> &'static str {
        match self {
            StateError::Io { .. } => {
                "pass a writable folder with --statedir (or DAGSTER_BUILD_STATEDIR)"
            }
            StateError::Invalid { .. } => {
                "fix or remove the file, or start a new session with `ci init` (a `build \
                 --statedir` run recreates it too)"
            }
            StateError::NoFolder => {
                "pass --statedir DIR (or set DAGSTER_BUILD_STATEDIR): the folder `ci init` wrote"
            }
            StateError::NoSession { .. } => {
                "start the session with `ci init --statedir DIR` first, or pass the folder it used"
            }
            StateError::UnknownLocations { .. } => {
                "`ci locations-list` shows the session's locations; `ci locations-select NAME` \
                 selects one, `ci init --location-name NAME` adds one"
            }
        }
    }
}

/// The state folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    pub path: PathBuf,
}

impl StateDir {
    /// `--statedir`, else `DAGSTER_BUILD_STATEDIR`; `None` when neither is set.
    pub fn choose(flag: Option<&Path>, env: Env) -> Option<StateDir> {
        flag.map(Path::to_path_buf)
            .or_else(|| {
                env(STATEDIR_VAR)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .map(|path| StateDir { path })
    }

    /// The session folder of a `ci` command: given, and existing.
    pub fn existing(flag: Option<&Path>, env: Env) -> Result<StateDir, StateError> {
        let dir = StateDir::choose(flag, env).ok_or(StateError::NoFolder)?;
        if !dir.path.is_dir() {
            return Err(StateError::NoSession { path: dir.path });
        }
        Ok(dir)
    }

    /// The locations `ci build`/`set-build-output`/`deploy` act on: every selected one, or
    /// those `requested` (each must have a state file). A requested location is acted on even
    /// when the session did not select it, and is marked selected: `ci init` selects by what
    /// changed, and a workflow's own path filters may name a location it left out (the
    /// reference selects every location, so it never refuses such a name).
    pub fn selected(&self, requested: &[String]) -> Result<Vec<LocationState>, StateError> {
        let selected: Vec<LocationState> = self
            .list()?
            .into_iter()
            .filter(|s| match requested.is_empty() {
                true => s.selected,
                false => requested.contains(&s.location_name),
            })
            .map(|mut s| {
                s.selected = true;
                s
            })
            .collect();
        let mut unknown: Vec<String> = requested
            .iter()
            .filter(|r| !selected.iter().any(|s| &s.location_name == *r))
            .cloned()
            .collect();
        unknown.dedup();
        if !unknown.is_empty() {
            return Err(StateError::UnknownLocations {
                path: self.path.clone(),
                names: unknown,
            });
        }
        Ok(selected)
    }

    /// Sets `selected` of each named location; every name must have a state file.
    pub fn set_selected(&self, names: &[String], selected: bool) -> Result<(), StateError> {
        let mut states = Vec::new();
        let mut unknown = Vec::new();
        for name in names {
            match self.load(name)? {
                Some(state) => states.push(state),
                None => unknown.push(name.clone()),
            }
        }
        if !unknown.is_empty() {
            return Err(StateError::UnknownLocations {
                path: self.path.clone(),
                names: unknown,
            });
        }
        for mut state in states {
            state.selected = selected;
            self.save(&state)?;
        }
        Ok(())
    }

    /// Removes every location file (a new session); other files in the folder stay.
    pub fn clear(&self) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: self.path.clone(),
            source,
        };
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let path = entry.map_err(io)?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.starts_with(FILE_PREFIX)) {
                std::fs::remove_file(&path).map_err(|source| StateError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    pub fn file(&self, location: &str) -> PathBuf {
        self.path.join(format!("{FILE_PREFIX}{location}.json"))
    }

    /// The state of `location`, `None` when it has no file yet.
    pub fn load(&self, location: &str) -> Result<Option<LocationState>, StateError> {
        let path = self.file(location);
        match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Every location's state, sorted by name.
    pub fn list(&self) -> Result<Vec<LocationState>, StateError> {
        let io = |source| StateError::Io {
            path: self.path.clone(),
            source,
        };
        let mut states = Vec::new();
        for entry in std::fs::read_dir(&self.path).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.starts_with(FILE_PREFIX) && n.ends_with(".json")) {
                let bytes = std::fs::read(&path).map_err(|source| StateError::Io {
                    path: path.clone(),
                    source,
                })?;
                states.push(parse(&path, &bytes)?);
            }
        }
        states.sort_by(|a, b| a.location_name.cmp(&b.location_name));
        Ok(states)
    }

    /// Writes the file whole (a temporary file renamed over it: readers never see half).
    pub fn save(&self, state: &LocationState) -> Result<(), StateError> {
        let path = self.file(&state.location_name);
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.path).map_err(io)?;
        // Hidden and without the `location-` prefix: the reference lists every file with it.
        let tmp = self
            .path
            .join(format!(".{FILE_PREFIX}{}.json.tmp", state.location_name));
        let text = serde_json::to_vec(state).map_err(|e| io(std::io::Error::other(e)))?;
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<LocationState, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_reference_state_file_and_keeps_unknown_fields() {
        let text = r#"{"url": "https://acme.dagster.cloud", "deployment_name": "prod",
            "location_file": "/repo/dagster_cloud.yaml", "location_name": "etl",
            "is_branch_deployment": false, "selected": true,
            "build": {"git_url": null, "commit_hash": "abc",
                      "build_config": {"directory": "etl", "registry": "r.example/etl"}},
            "build_output": null, "defs_state_info": null, "status_url": null,
            "history": [{"timestamp": "2024-01-01T00:00:00+00:00", "status": "pending", "log": "x"}],
            "project_dir": null}"#;
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir {
            path: tmp.path().to_path_buf(),
        };
        std::fs::write(dir.file("etl"), text).unwrap();
        let mut state = dir.load("etl").unwrap().unwrap();
        assert_eq!(state.build.commit_hash.as_deref(), Some("abc"));
        assert!(state.other.contains_key("defs_state_info"));
        state.build_output = Some(BuildOutput::Docker {
            image: "r.example/etl:etl-ck-1".into(),
            python_version: None,
            pex_bundle: false,
        });
        dir.save(&state).unwrap();
        let value: Value =
            serde_json::from_slice(&std::fs::read(dir.file("etl")).unwrap()).unwrap();
        assert_eq!(
            value["build_output"],
            serde_json::json!({"strategy": "docker", "image": "r.example/etl:etl-ck-1",
                               "python_version": null, "pex_bundle": false})
        );
        assert!(value.as_object().unwrap().contains_key("defs_state_info"));
        assert_eq!(dir.list().unwrap().len(), 1);
        assert!(dir.load("other").unwrap().is_none());
    }

    #[test]
    fn the_folder_comes_from_the_flag_or_the_environment() {
        let env = |name: &str| (name == STATEDIR_VAR).then(|| "/tmp/from-env".to_string());
        assert_eq!(
            StateDir::choose(Some(Path::new("/flag")), &env)
                .unwrap()
                .path,
            PathBuf::from("/flag")
        );
        assert_eq!(
            StateDir::choose(None, &env).unwrap().path,
            PathBuf::from("/tmp/from-env")
        );
        assert_eq!(StateDir::choose(None, &|_: &str| None), None);
    }
}

#[cfg(test)]
impl LocationState {
    /// Unit tests' starting point: a selected location of acme's `prod`, nothing built yet.
    pub(crate) fn example(name: &str) -> LocationState {
        LocationState {
            url: "https://acme.dagster.cloud".into(),
            deployment_name: "prod".into(),
            location_file: "/r/dagster_cloud.yaml".into(),
            location_name: name.into(),
            is_branch_deployment: false,
            selected: true,
            build: BuildMetadata::default(),
            build_output: None,
            status_url: None,
            history: Vec::new(),
            project_dir: None,
            other: Map::new(),
        }
    }
}

#[cfg(test)]
mod session_tests {
    use super::*;

    fn state(name: &str, selected: bool) -> LocationState {
        LocationState {
            selected,
            ..LocationState::example(name)
        }
    }

    #[test]
    fn selection_picks_selected_or_named_locations_and_names_unknown_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir {
            path: tmp.path().to_path_buf(),
        };
        for (name, selected) in [("a", true), ("b", false), ("c", true)] {
            dir.save(&state(name, selected)).unwrap();
        }
        let names = |v: Vec<LocationState>| -> Vec<String> {
            v.into_iter().map(|s| s.location_name).collect()
        };
        assert_eq!(names(dir.selected(&[]).unwrap()), ["a", "c"]);
        assert_eq!(names(dir.selected(&["c".into()]).unwrap()), ["c"]);
        let err = dir
            .selected(&["b".into(), "zz".into(), "yy".into()])
            .unwrap_err();
        assert_eq!(err.code(), "state-unknown-location");
        assert!(err.to_string().contains("zz, yy"), "{err}");
        // A location the session left out is acted on when named, and marked selected.
        let named = dir.selected(&["b".into()]).unwrap();
        assert_eq!(names(named.clone()), ["b"]);
        assert!(named[0].selected);

        dir.set_selected(&["b".into()], true).unwrap();
        assert_eq!(names(dir.selected(&[]).unwrap()), ["a", "b", "c"]);
        assert!(dir.set_selected(&["zz".into()], false).is_err());

        std::fs::write(tmp.path().join("notes.txt"), "kept").unwrap();
        dir.clear().unwrap();
        assert!(dir.list().unwrap().is_empty());
        assert!(tmp.path().join("notes.txt").exists());
    }

    #[test]
    fn a_session_folder_must_be_given_and_exist() {
        let none = |_: &str| None;
        assert_eq!(
            StateDir::existing(None, &none).unwrap_err().code(),
            "state-no-folder"
        );
        let err = StateDir::existing(Some(Path::new("/nonexistent/session")), &none).unwrap_err();
        assert_eq!(err.code(), "state-no-session");
        assert!(err.to_string().contains("/nonexistent/session"));
    }
}
