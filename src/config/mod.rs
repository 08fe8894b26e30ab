//! `dagster_cloud.yaml` (and the optional `dagster-deploy.toml` beside it): loading with
//! line/column positions, validation exactly as the reference `dagster-cloud` CLI does it,
//! `defaults` merging and Jinja templating.
//!
//! Loading runs, in order: template rendering (`template.rs`, only for files with Jinja
//! syntax), the YAML tree (`yaml.rs` builds `node.rs` trees from saphyr-parser events, typed
//! by PyYAML's YAML 1.1 rules in `scalar.rs`, with PyYAML's syntax rules in `pyyaml.rs`), the
//! schema (`validate.rs`, the reference's pydantic models), `defaults` merging (`defaults.rs`,
//! the reference's merger) and the settings file (`settings.rs`). Every problem of both files
//! is collected before deciding; `tests/fixtures/config/reference_check.py` checks the fixture
//! corpus against the reference CLI itself.
//!
//! Where we differ from the reference on purpose: duplicate mapping keys are errors (PyYAML
//! keeps the last one silently); the tags `!!binary`, `!!timestamp`, `!!set`, `!!omap` and
//! `!!pairs` are not supported; a defaults `env_vars` entry holding two `=` merges by its key
//! (the reference's `ci template` crashes on it); templates are rendered on every load (the
//! reference renders only in `ci template`).
//!
//! Known YAML syntax corners where saphyr (YAML 1.2) and PyYAML (1.1) still disagree, all of
//! them malformed or unusual: saphyr rejects flow or quoted continuation lines indented less
//! than their parent block and tab-indented continuation lines of quoted scalars; it accepts
//! unknown or malformed `%` directives, a `...` before the document, and a line starting
//! with `: ` as a null key.
//!
//! Positions: 1-based lines, columns in characters. For a file without Jinja syntax they are
//! exact. A rendered template keeps its line numbers as long as it renders to as many lines
//! (Jinja keeps the newline after block tags, so `{% if %}` lines become empty lines), though
//! columns after a substituted expression shift; when rendering changes the line count,
//! positions refer to the rendered text and the hint says so.

mod defaults;
mod diagnostic;
mod entry;
mod jinja2;
mod load;
mod node;
mod pyyaml;
mod redact;
mod scalar;
mod settings;
mod template;
mod to_yaml;
mod validate;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

pub use diagnostic::sort as sort_diagnostics;
pub use redact::Redactions;
pub use validate::CODE_SOURCE_KEYS;

/// The default file name the reference CLI looks for.
pub const CONFIG_FILE_NAME: &str = "dagster_cloud.yaml";
/// Our own settings file, beside `dagster_cloud.yaml` (which must stay loadable by the reference).
pub const SETTINGS_FILE_NAME: &str = "dagster-deploy.toml";

/// Looks up an environment variable (injected so tests and `--base` loads stay deterministic).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A loaded, validated `dagster_cloud.yaml` plus `dagster-deploy.toml`.
#[derive(Clone)]
pub struct Workspace {
    /// The yaml file as the user named it (used in messages).
    pub file: PathBuf,
    /// The folder holding the yaml file: build directories and settings paths are relative to it.
    pub root: PathBuf,
    pub locations: Vec<Location>,
    pub settings: Settings,
    /// Values the template read from the environment: never shown in messages.
    pub redactions: Redactions,
}

/// Values read from the environment are redacted here too.
impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let raw = format!(
            "Workspace {{ file: {:?}, root: {:?}, locations: {:?}, settings: {:?}, redactions: {:?} }}",
            self.file, self.root, self.locations, self.settings, self.redactions
        );
        f.write_str(&self.redactions.apply(&raw))
    }
}

impl Workspace {
    /// `dagster-deploy.toml` beside the yaml file (whether it exists or not).
    pub fn settings_file(&self) -> PathBuf {
        load::settings_path(&self.file)
    }
}

/// One code location with `defaults` already merged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub name: String,
    /// Its index in the yaml's `locations` list.
    pub index: usize,
    /// The full entry after templating and `defaults` merging, `build` included, null values
    /// dropped. Location documents are built from this.
    pub entry: Map<String, Value>,
    /// `build.directory` relative to the yaml's folder, normalised with `/` separators and no
    /// `.` segments; `""` means the yaml's folder itself (the default).
    pub build_directory: String,
    /// `build.registry`, if any.
    pub registry: Option<String>,
    /// 1-based position of the entry in the yaml file (for annotations).
    pub line: usize,
    pub column: usize,
    /// 1-based position of the `build.directory` value (the entry's when it is defaulted).
    pub directory_line: usize,
    pub directory_column: usize,
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    #[serde(serialize_with = "lossy_path")]
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
    /// The field path, e.g. `locations[1].code_source`.
    pub field: String,
    pub message: String,
    pub hint: String,
}

/// A path as JSON text (non-UTF-8 bytes replaced: paths are for people to read there).
pub fn lossy_path<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

impl Diagnostic {
    /// The diagnostic with its message and hint redacted.
    pub fn redacted(mut self, redactions: &Redactions) -> Diagnostic {
        self.message = redactions.apply(&self.message);
        self.hint = redactions.apply(&self.hint);
        self
    }
}

/// Settings from `dagster-deploy.toml`. All paths and globs are relative to its folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Settings {
    pub defaults: LocationSettings,
    pub locations: BTreeMap<String, LocationSettings>,
    /// 1-based line and column of values, by field path (`locations.a.watch[0]`,
    /// `defaults.dockerfile`): for diagnostics about them found after loading.
    #[serde(skip)]
    pub positions: BTreeMap<String, (usize, usize)>,
}

/// Per-location build settings that dagster_cloud.yaml has no key for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LocationSettings {
    /// Extra paths whose changes mean the location must be rebuilt.
    pub watch: Vec<String>,
    /// Globs of paths whose changes never trigger a build (e.g. `**/*.md`).
    pub ignore: Vec<String>,
    /// Docker build context, when not `build.directory` (relative to the yaml's folder).
    pub context: Option<String>,
    /// Dockerfile path; default `Dockerfile` in the build context.
    pub dockerfile: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub platform: Option<String>,
    /// Python version for a generated Dockerfile / Python-executable builds.
    pub python_version: Option<String>,
    /// Base image for a generated Dockerfile.
    pub base_image: Option<String>,
    /// Build secrets, `id=ID[,env=VAR|,src=FILE]` each (`docker buildx build --secret`).
    pub secrets: Vec<String>,
}

/// The raw text of the two files, wherever they came from (disk, or a git revision).
pub struct Source<'a> {
    pub file: &'a Path,
    pub root: &'a Path,
    pub yaml: &'a str,
    pub settings_toml: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", problem_count(file, diagnostics))]
    Invalid {
        file: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

/// `a.yaml has 1 problem, b.toml has 2 problems`: per file, the yaml first.
fn problem_count(file: &Path, diagnostics: &[Diagnostic]) -> String {
    let mut files: Vec<(&Path, usize)> = vec![(file, 0)];
    for d in diagnostics {
        match files.iter_mut().find(|(f, _)| *f == d.file) {
            Some((_, n)) => *n += 1,
            None => files.push((&d.file, 1)),
        }
    }
    files
        .iter()
        .filter(|(f, n)| *n > 0 || *f == file && diagnostics.is_empty())
        .map(|(f, n)| {
            format!(
                "{} has {n} problem{}",
                f.display(),
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The loaded workspace with every problem found, for `check` (which adds its own checks
/// before reporting them all).
pub struct Inspected {
    /// What could be read: locations that are mappings, settings that parse.
    pub workspace: Workspace,
    /// Already redacted and sorted.
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads and validates `file` and the `dagster-deploy.toml` beside it, reading the environment
/// through `env` for templates.
pub fn load(file: &Path, env: Env) -> Result<Workspace, ConfigError> {
    load::load(file, env)
}

/// Same as [`load`], from text already in memory.
pub fn parse(source: &Source, env: Env) -> Result<Workspace, ConfigError> {
    load::parse(source, env)
}

/// Same as [`load`], but what could be read is returned along with the problems; an error
/// only when a file cannot be read.
pub fn inspect(file: &Path, env: Env) -> Result<Inspected, ConfigError> {
    load::inspect(file, env)
}

/// The text of a config file read as bytes; a file that is not UTF-8 is invalid, with the
/// position of its first bad byte.
pub fn decode(file: &Path, bytes: Vec<u8>) -> Result<String, ConfigError> {
    load::decode(file, bytes)
}
