//! Loading: template → YAML tree → schema check → `defaults` merge → settings file, collecting
//! every diagnostic of both files before deciding.

use std::borrow::Cow;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::diagnostic::{self, Sink};
use super::entry::{normalize_directory, to_object};
use super::yaml::{self, Node};
use super::{
    ConfigError, Diagnostic, Env, Location, SETTINGS_FILE_NAME, Settings, Source, Workspace,
    defaults, settings, template, validate,
};

/// Appended to hints when the template changed the number of lines: positions then refer to
/// the rendered text, which we cannot map back to the file.
const RENDERED_NOTE: &str = " (the position is in the file as rendered by its Jinja template, which changes its line count)";

const TEMPLATE_HINT: &str = "fix the Jinja template; besides Jinja's built-ins it can use `get_env(name, default)` and the `to_yaml` filter";

/// `dagster-deploy.toml` beside the yaml file.
pub(crate) fn settings_path(file: &Path) -> PathBuf {
    file.with_file_name(SETTINGS_FILE_NAME)
}

pub(crate) fn load(file: &Path, env: Env) -> Result<Workspace, ConfigError> {
    let yaml = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let settings_file = settings_path(file);
    let settings_toml = match std::fs::read_to_string(&settings_file) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ConfigError::Read {
                path: settings_file,
                source,
            });
        }
    };
    parse(
        &Source {
            file,
            root: root_of(file),
            yaml: &yaml,
            settings_toml: settings_toml.as_deref(),
        },
        env,
    )
}

/// The folder holding `file`; `.` for a bare file name.
fn root_of(file: &Path) -> &Path {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

pub(crate) fn parse(source: &Source, env: Env) -> Result<Workspace, ConfigError> {
    let (locations, names, mut diagnostics) = parse_yaml(source, env);
    let mut settings_sink = Sink::new(&settings_path(source.file));
    let settings = match source.settings_toml {
        Some(text) => settings::parse(text, names.as_deref(), &mut settings_sink),
        None => Settings::default(),
    };
    diagnostics.extend(settings_sink.items);
    if !diagnostics.is_empty() {
        diagnostic::sort(&mut diagnostics);
        return Err(ConfigError::Invalid {
            file: source.file.to_path_buf(),
            diagnostics,
        });
    }
    Ok(Workspace {
        file: source.file.to_path_buf(),
        root: source.root.to_path_buf(),
        locations,
        settings,
    })
}

/// The locations, the location names when they are all known, and the yaml's diagnostics.
fn parse_yaml(source: &Source, env: Env) -> (Vec<Location>, Option<Vec<String>>, Vec<Diagnostic>) {
    let mut text: Cow<str> = Cow::Borrowed(source.yaml);
    let mut note = None;
    if template::has_template_syntax(source.yaml) {
        match template::render(source.yaml, env) {
            Ok(rendered) => {
                if rendered.lines().count() != source.yaml.lines().count() {
                    note = Some(RENDERED_NOTE);
                }
                text = Cow::Owned(rendered);
            }
            Err(err) => {
                let mut sink = Sink::new(source.file);
                sink.push(err.pos, "", err.message, TEMPLATE_HINT);
                return (Vec::new(), None, sink.items);
            }
        }
    }
    let mut sink = Sink::new(source.file).with_note(note);
    let parsed = yaml::parse(&text);
    for problem in parsed.problems {
        sink.push(problem.pos, &problem.path, problem.message, problem.hint);
    }
    if parsed.syntax_error {
        return (Vec::new(), None, sink.items);
    }
    let checked = validate::check(parsed.root.as_ref(), &mut sink);
    let mut locations = Vec::new();
    for (index, node) in &checked.locations {
        let merged = defaults::merge(
            checked.defaults,
            node,
            &format!("locations[{index}]"),
            &mut sink,
        );
        locations.push(location(&merged, node));
    }
    let names = checked.names_complete.then_some(checked.names);
    (locations, names, sink.items)
}

fn location(merged: &Node, original: &Node) -> Location {
    let build = merged.get("build");
    let directory = build.and_then(|b| b.get("directory"));
    let text = |node: Option<&Node>, key: &str| {
        node.and_then(|n| n.get(key))
            .and_then(Node::as_str)
            .map(str::to_string)
    };
    Location {
        name: merged
            .get("location_name")
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string(),
        entry: to_object(merged),
        build_directory: normalize_directory(&text(build, "directory").unwrap_or_default()),
        registry: text(build, "registry"),
        line: original.pos.line,
        column: original.pos.column,
        directory_line: directory.map_or(original.pos.line, |d| d.pos.line),
        directory_column: directory.map_or(original.pos.column, |d| d.pos.column),
    }
}

pub(crate) fn check_directories(ws: &Workspace, is_dir: &dyn Fn(&str) -> bool) -> Vec<Diagnostic> {
    let mut diagnostics: Vec<Diagnostic> = ws
        .locations
        .iter()
        .enumerate()
        .filter(|(_, loc)| !is_dir(&loc.build_directory))
        .map(|(index, loc)| {
            let shown = if loc.build_directory.is_empty() {
                "."
            } else {
                &loc.build_directory
            };
            Diagnostic {
                file: ws.file.clone(),
                line: loc.directory_line,
                column: loc.directory_column,
                field: format!("locations[{index}].build.directory"),
                message: format!("build directory `{shown}` of location `{}` does not exist", loc.name),
                hint: "create the directory or fix `build.directory` (it is relative to the folder of dagster_cloud.yaml)"
                    .into(),
            }
        })
        .collect();
    diagnostic::sort(&mut diagnostics);
    diagnostics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_settings_paths() {
        assert_eq!(root_of(Path::new("dagster_cloud.yaml")), Path::new("."));
        assert_eq!(
            root_of(Path::new("a/b/dagster_cloud.yaml")),
            Path::new("a/b")
        );
        assert_eq!(root_of(Path::new("/repo/x.yaml")), Path::new("/repo"));
        assert_eq!(
            settings_path(Path::new("dagster_cloud.yaml")),
            Path::new("dagster-deploy.toml")
        );
        assert_eq!(
            settings_path(Path::new("a/custom.yaml")),
            Path::new("a/dagster-deploy.toml")
        );
    }
}
