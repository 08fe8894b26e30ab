//! The schema of `dagster_cloud.yaml`, checked as the reference CLI's pydantic models do
//! (`dagster_cloud_cli/config/models.py`), but reporting every problem with its position.
//!
//! Mirrored rules: `locations` is a required list (an empty one is fine); every location
//! needs a string `location_name`, unique across the file; `code_source`, when present, sets
//! exactly one of its four keys to a truthy value (so `module_name: ""` counts as unset);
//! string fields take strings or null, never numbers or booleans (pydantic 2 does not
//! coerce them); `container_context` is a mapping with string keys; unknown keys are
//! rejected at every level; `defaults` takes the location keys minus `location_name`,
//! `code_source` and `attribute`.

use super::diagnostic::{Sink, code_list, join, unknown_key_hint};
use super::yaml::{Entry, Node, Pos, Value};

#[derive(Clone, Copy, PartialEq)]
enum Field {
    Str,
    Build,
    CodeSource,
    ContainerContext,
}

const TOP_KEYS: &[&str] = &["locations", "defaults"];

const LOCATION_FIELDS: &[(&str, Field)] = &[
    ("location_name", Field::Str),
    ("code_source", Field::CodeSource),
    ("build", Field::Build),
    ("working_directory", Field::Str),
    ("image", Field::Str),
    ("executable_path", Field::Str),
    ("attribute", Field::Str),
    ("container_context", Field::ContainerContext),
    ("agent_queue", Field::Str),
];

/// Location keys that `defaults` may not set.
const NOT_IN_DEFAULTS: &[&str] = &["location_name", "code_source", "attribute"];

const BUILD_KEYS: &[&str] = &["directory", "registry"];

/// The four ways to point at Dagster code; a `code_source` holds exactly one.
pub const CODE_SOURCE_KEYS: &[&str] = &[
    "package_name",
    "module_name",
    "python_file",
    "autoload_defs_module_name",
];

/// What the rest of loading needs from a checked file.
#[derive(Default)]
pub(crate) struct Checked<'a> {
    /// `defaults`, when it is a mapping.
    pub defaults: Option<&'a Node>,
    /// Each location that is a mapping, with its index in the list.
    pub locations: Vec<(usize, &'a Node)>,
    /// Every string `location_name` (for `dagster-deploy.toml` checks).
    pub names: Vec<String>,
    /// Whether `names` covers every location (else `[locations.X]` cannot be checked).
    pub names_complete: bool,
}

pub(crate) fn check<'a>(root: Option<&'a Node>, sink: &mut Sink) -> Checked<'a> {
    let mut checked = Checked {
        names_complete: true,
        ..Checked::default()
    };
    let Some(root) = root.filter(|r| !matches!(r.value, Value::Null)) else {
        checked.names_complete = false;
        sink.push(
            Pos { line: 1, column: 1 },
            "",
            "the file is empty",
            "add a `locations:` list with one entry per code location",
        );
        return checked;
    };
    let Some(entries) = root.as_map() else {
        checked.names_complete = false;
        sink.push(
            root.pos,
            "",
            format!("the top level must be a mapping, found {}", root.kind()),
            "start the file with `locations:` and list the code locations under it",
        );
        return checked;
    };
    for entry in entries {
        match key_of(entry, "", TOP_KEYS, sink) {
            Some("locations") => check_locations(entry, &mut checked, sink),
            Some("defaults") => {
                check_defaults(entry, sink);
                if entry.value.as_map().is_some() {
                    checked.defaults = Some(&entry.value);
                }
            }
            _ => {}
        }
    }
    if root.get("locations").is_none() {
        checked.names_complete = false;
        sink.push(
            root.pos,
            "locations",
            "missing required key `locations`",
            "add a `locations:` list with one entry per code location",
        );
    }
    checked
}

/// The key of `entry` when it is one of `allowed`; reports it otherwise.
fn key_of<'n>(entry: &'n Entry, path: &str, allowed: &[&str], sink: &mut Sink) -> Option<&'n str> {
    let text = entry.key.key_text();
    match entry.key.as_str() {
        Some(key) if allowed.contains(&key) => Some(key),
        _ => {
            // Keys of `build` or `code_source` written one level too high (as in the old
            // workspace.yaml format) get a pointer to where they belong.
            let parent = if !allowed.contains(&"build") {
                None
            } else if BUILD_KEYS.contains(&text.as_str()) {
                Some("build")
            } else if CODE_SOURCE_KEYS.contains(&text.as_str()) && allowed.contains(&"code_source")
            {
                Some("code_source")
            } else {
                None
            };
            let hint = match parent {
                Some(parent) => {
                    format!("`{text}` belongs under `{parent}:`, e.g. `{parent}: {{{text}: ...}}`")
                }
                None => unknown_key_hint(&text, allowed),
            };
            sink.push(
                entry.key.pos,
                &join(path, &text),
                format!("unknown key `{text}`"),
                hint,
            );
            None
        }
    }
}

/// Where to point at a value: an empty value (`image:`) has no text, so point at its key.
fn value_pos(entry: &Entry) -> Pos {
    match (&entry.value.value, entry.value.plain.as_deref()) {
        (Value::Null, Some("")) => entry.key.pos,
        _ => entry.value.pos,
    }
}

fn check_locations<'a>(entry: &'a Entry, checked: &mut Checked<'a>, sink: &mut Sink) {
    let value = &entry.value;
    let Value::Seq(items) = &value.value else {
        checked.names_complete = false;
        sink.push(
            value_pos(entry),
            "locations",
            format!("`locations` must be a list, found {}", value.kind()),
            "list the code locations under it, each starting with `- location_name: ...`",
        );
        return;
    };
    let mut seen: Vec<(String, Pos)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("locations[{index}]");
        let Some(entries) = item.as_map() else {
            checked.names_complete = false;
            sink.push(
                item.pos,
                &path,
                format!("`{path}` must be a mapping, found {}", item.kind()),
                "write each location as a mapping starting with `location_name: ...`",
            );
            continue;
        };
        checked.locations.push((index, item));
        check_fields(entries, &path, LOCATION_FIELDS, &[], sink);
        let name_entry = entries
            .iter()
            .find(|e| e.key.as_str() == Some("location_name"));
        if name_entry.and_then(|e| e.value.as_str()).is_none() {
            checked.names_complete = false;
        }
        match name_entry {
            None => sink.push(
                item.pos,
                &join(&path, "location_name"),
                "missing required key `location_name`",
                "add `location_name: <name>` to this location",
            ),
            Some(entry) => {
                if let Some(name) = entry.value.as_str() {
                    if let Some((_, first)) = seen.iter().find(|(n, _)| n == name) {
                        sink.push(
                            entry.value.pos,
                            &join(&path, "location_name"),
                            format!(
                                "duplicate location name `{name}` (first used at line {})",
                                first.line
                            ),
                            "give every location a unique `location_name`",
                        );
                    } else {
                        seen.push((name.to_string(), entry.value.pos));
                        checked.names.push(name.to_string());
                    }
                }
            }
        }
    }
}

fn check_defaults(entry: &Entry, sink: &mut Sink) {
    let value = &entry.value;
    match &value.value {
        Value::Null => {}
        Value::Map(entries) => {
            check_fields(entries, "defaults", LOCATION_FIELDS, NOT_IN_DEFAULTS, sink)
        }
        _ => sink.push(
            value_pos(entry),
            "defaults",
            format!("`defaults` must be a mapping, found {}", value.kind()),
            "put the settings shared by every location under it, e.g. `build: {registry: ...}`",
        ),
    }
}

/// Checks the keys and value types of a location (or `defaults`, with `forbidden` keys).
fn check_fields(
    entries: &[Entry],
    path: &str,
    fields: &[(&str, Field)],
    forbidden: &[&str],
    sink: &mut Sink,
) {
    let allowed: Vec<&str> = fields
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !forbidden.contains(name))
        .collect();
    for entry in entries {
        let key = entry.key.as_str();
        if let Some(key) = key.filter(|k| forbidden.contains(k)) {
            sink.push(
                entry.key.pos,
                &join(path, key),
                format!("`{key}` cannot be set in `defaults`"),
                format!("set `{key}` on each location instead"),
            );
            continue;
        }
        let Some(key) = key_of(entry, path, &allowed, sink) else {
            continue;
        };
        let field_path = join(path, key);
        let kind = fields
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, kind)| *kind);
        match kind {
            Some(Field::Str) => check_string(entry, &field_path, key == "location_name", sink),
            Some(Field::Build) => check_build(entry, &field_path, sink),
            Some(Field::CodeSource) => check_code_source(entry, &field_path, sink),
            Some(Field::ContainerContext) => check_container_context(entry, &field_path, sink),
            None => {}
        }
    }
}

/// A string field (or null, unless `required`).
fn check_string(entry: &Entry, path: &str, required: bool, sink: &mut Sink) {
    let value = &entry.value;
    let ok = match value.value {
        Value::Str(_) => true,
        Value::Null => !required,
        _ => false,
    };
    if ok {
        return;
    }
    let key = entry.key.key_text();
    sink.push(
        value_pos(entry),
        path,
        format!("`{key}` must be a string, found {}", value.kind()),
        string_hint(value, &key),
    );
}

fn string_hint(value: &Node, key: &str) -> String {
    match (&value.value, value.plain.as_deref()) {
        (Value::Bool(_) | Value::Int(_) | Value::Float(_), Some(raw)) => format!(
            "dagster-cloud reads the file as YAML 1.1, where `{raw}` is {}; quote it to make it a string: `{key}: \"{raw}\"`",
            value.kind()
        ),
        (Value::Null, _) => format!("give it a value, e.g. `{key}: my_location`"),
        (Value::Seq(_) | Value::Map(_), _) => "write a single string value".into(),
        _ => "write a string value".into(),
    }
}

fn check_build(entry: &Entry, path: &str, sink: &mut Sink) {
    let value = &entry.value;
    match &value.value {
        Value::Null => {}
        Value::Map(entries) => {
            for inner in entries {
                if let Some(key) = key_of(inner, path, BUILD_KEYS, sink) {
                    check_string(inner, &join(path, key), false, sink);
                }
            }
        }
        _ => sink.push(
            value_pos(entry),
            path,
            format!("`build` must be a mapping, found {}", value.kind()),
            "set `directory` and/or `registry` under it",
        ),
    }
}

fn check_code_source(entry: &Entry, path: &str, sink: &mut Sink) {
    let value = &entry.value;
    let entries = match &value.value {
        Value::Null => return,
        Value::Map(entries) => entries,
        _ => {
            sink.push(
                value_pos(entry),
                path,
                format!("`code_source` must be a mapping, found {}", value.kind()),
                format!(
                    "set exactly one of {} under it",
                    code_list(CODE_SOURCE_KEYS)
                ),
            );
            return;
        }
    };
    let mut set: Vec<&str> = Vec::new();
    let mut unknown = false;
    for inner in entries {
        match key_of(inner, path, CODE_SOURCE_KEYS, sink) {
            Some(key) => {
                check_string(inner, &join(path, key), false, sink);
                // The reference counts truthy values: `module_name: ""` is not set.
                if inner.value.is_truthy() {
                    set.push(key);
                }
            }
            None => unknown = true,
        }
    }
    // An unknown key is most likely a misspelt source: its own diagnostic says enough.
    if unknown && set.is_empty() {
        return;
    }
    let rule = format!(
        "`code_source` must set exactly one of {}",
        code_list(CODE_SOURCE_KEYS)
    );
    match set.len() {
        1 => {}
        0 => sink.push(
            value.pos,
            path,
            format!("{rule}; it sets none"),
            "add one of them with a non-empty value, e.g. `module_name: my_package`",
        ),
        _ => sink.push(
            value.pos,
            path,
            format!("{rule}; it sets {}", code_list(&set)),
            "keep only one of them",
        ),
    }
}

fn check_container_context(entry: &Entry, path: &str, sink: &mut Sink) {
    let value = &entry.value;
    match &value.value {
        Value::Null => {}
        Value::Map(entries) => {
            for inner in entries.iter().filter(|e| e.key.as_str().is_none()) {
                let text = inner.key.key_text();
                sink.push(
                    inner.key.pos,
                    &join(path, &text),
                    format!(
                        "key `{text}` of `container_context` must be a string, found {}",
                        inner.key.kind()
                    ),
                    format!("quote the key: `\"{text}\"`"),
                );
            }
        }
        _ => sink.push(
            value_pos(entry),
            path,
            format!(
                "`container_context` must be a mapping, found {}",
                value.kind()
            ),
            "use a mapping such as `container_context: {k8s: {...}}`",
        ),
    }
}
