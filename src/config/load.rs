//! Loading: template → YAML tree → schema check → `defaults` merge → settings file, collecting
//! every diagnostic of both files before deciding.

use std::borrow::Cow;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::diagnostic::{self, Sink, pos_at};
use super::entry::{normalize_directory, to_object};
use super::yaml::{self, Node};
use super::{
    ConfigError, Diagnostic, Env, Inspected, Location, Redactions, SETTINGS_FILE_NAME, Settings,
    Source, Workspace, defaults, settings, template, validate,
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
    into_result(inspect(file, env)?)
}

pub(crate) fn inspect(file: &Path, env: Env) -> Result<Inspected, ConfigError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let settings_file = settings_path(file);
    let settings_bytes = match read(&settings_file) {
        Ok(bytes) => Some(bytes),
        Err(ConfigError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    // Decoding problems are problems of the files, reported with the others.
    let mut problems = Vec::new();
    let mut text = |path: &Path, bytes: Vec<u8>| match decode(path, bytes) {
        Ok(text) => Some(text),
        Err(ConfigError::Invalid { diagnostics, .. }) => {
            problems.extend(diagnostics);
            None
        }
        Err(_) => None,
    };
    let yaml = text(file, read(file)?);
    let settings_toml = settings_bytes.and_then(|b| text(&settings_file, b));
    let Some(yaml) = yaml else {
        return Ok(Inspected {
            workspace: empty_workspace(file, root_of(file)),
            diagnostics: problems,
        });
    };
    let mut inspected = inspect_text(
        &Source {
            file,
            root: root_of(file),
            yaml: &yaml,
            settings_toml: settings_toml.as_deref(),
        },
        env,
    );
    inspected.diagnostics.extend(problems);
    diagnostic::sort(&mut inspected.diagnostics);
    Ok(inspected)
}

pub(crate) fn decode(file: &Path, bytes: Vec<u8>) -> Result<String, ConfigError> {
    String::from_utf8(bytes).map_err(|err| {
        let valid = err.utf8_error().valid_up_to();
        let bytes = err.into_bytes();
        let before = String::from_utf8_lossy(&bytes[..valid]);
        let mut sink = Sink::new(file);
        sink.push(
            pos_at(&before, before.len()),
            "",
            "the file is not valid UTF-8",
            "save it as UTF-8 (dagster-cloud reads it as UTF-8 too)",
        );
        ConfigError::Invalid {
            file: file.to_path_buf(),
            diagnostics: sink.items,
        }
    })
}

fn empty_workspace(file: &Path, root: &Path) -> Workspace {
    Workspace {
        file: file.to_path_buf(),
        root: root.to_path_buf(),
        locations: Vec::new(),
        settings: Settings::default(),
        redactions: Redactions::default(),
    }
}

fn into_result(inspected: Inspected) -> Result<Workspace, ConfigError> {
    if inspected.diagnostics.is_empty() {
        Ok(inspected.workspace)
    } else {
        Err(ConfigError::Invalid {
            file: inspected.workspace.file,
            diagnostics: inspected.diagnostics,
        })
    }
}

/// The folder holding `file`; `.` for a bare file name.
fn root_of(file: &Path) -> &Path {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

pub(crate) fn parse(source: &Source, env: Env) -> Result<Workspace, ConfigError> {
    into_result(inspect_text(source, env))
}

fn inspect_text(source: &Source, env: Env) -> Inspected {
    let yaml = parse_yaml(source, env);
    let mut diagnostics = yaml.diagnostics;
    let mut settings_sink = Sink::new(&settings_path(source.file));
    let settings = match source.settings_toml {
        Some(text) => settings::parse(text, yaml.names.as_deref(), &mut settings_sink),
        None => Settings::default(),
    };
    diagnostics.extend(settings_sink.items);
    let redactions = Redactions::new(yaml.from_env);
    let mut diagnostics: Vec<Diagnostic> = diagnostics
        .into_iter()
        .map(|d| d.redacted(&redactions))
        .collect();
    diagnostic::sort(&mut diagnostics);
    Inspected {
        workspace: Workspace {
            file: source.file.to_path_buf(),
            root: source.root.to_path_buf(),
            locations: yaml.locations,
            settings,
            redactions,
        },
        diagnostics,
    }
}

/// What the yaml gave.
struct Yaml {
    locations: Vec<Location>,
    /// The location names, when they are all known.
    names: Option<Vec<String>>,
    diagnostics: Vec<Diagnostic>,
    /// Values the template read from the environment.
    from_env: Vec<String>,
}

fn parse_yaml(source: &Source, env: Env) -> Yaml {
    let mut text: Cow<str> = Cow::Borrowed(source.yaml);
    let mut note = None;
    let mut from_env = Vec::new();
    if template::has_template_syntax(source.yaml) {
        match template::render(source.yaml, env) {
            Ok(rendered) => {
                if rendered.text.lines().count() != source.yaml.lines().count() {
                    note = Some(RENDERED_NOTE);
                }
                text = Cow::Owned(rendered.text);
                from_env = rendered.from_env;
            }
            Err((err, from_env)) => {
                let mut sink = Sink::new(source.file);
                sink.push(err.pos, "", err.message, TEMPLATE_HINT);
                return Yaml {
                    locations: Vec::new(),
                    names: None,
                    diagnostics: sink.items,
                    from_env,
                };
            }
        }
    }
    let mut sink = Sink::new(source.file).with_note(note);
    let parsed = yaml::parse(&text);
    for problem in parsed.problems {
        sink.push(problem.pos, &problem.path, problem.message, problem.hint);
    }
    if parsed.syntax_error {
        return Yaml {
            locations: Vec::new(),
            names: None,
            diagnostics: sink.items,
            from_env,
        };
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
        locations.push(location(&merged, node, *index));
    }
    Yaml {
        locations,
        names: checked.names_complete.then_some(checked.names),
        diagnostics: sink.items,
        from_env,
    }
}

fn location(merged: &Node, original: &Node, index: usize) -> Location {
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
        index,
        entry: to_object(merged),
        build_directory: normalize_directory(&text(build, "directory").unwrap_or_default()),
        registry: text(build, "registry"),
        line: original.pos.line,
        column: original.pos.column,
        directory_line: directory.map_or(original.pos.line, |d| d.pos.line),
        directory_column: directory.map_or(original.pos.column, |d| d.pos.column),
    }
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
