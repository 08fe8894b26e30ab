//! Location documents, built as the reference CLI builds them: the location's entry (from a
//! location file or dagster_cloud.yaml) minus `build`, deep-merged with what flags say (flags
//! win), where flag values that are not given are dropped — but an empty `code_source` or
//! `git` mapping stays, exactly as the reference sends it.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::config::CODE_SOURCE_KEYS;

/// What the command line (or `deploy`) says about one location. `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct DocumentFlags {
    pub image: Option<String>,
    pub python_file: Option<String>,
    pub package_name: Option<String>,
    pub module_name: Option<String>,
    pub autoload_defs_module_name: Option<String>,
    pub working_directory: Option<String>,
    pub executable_path: Option<String>,
    pub attribute: Option<String>,
    pub git: GitMetadata,
    pub pex_tag: Option<String>,
    pub python_version: Option<String>,
    pub pex_bundle: Option<bool>,
    pub defs_state_info: Option<Value>,
}

/// The `git` mapping of a document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitMetadata {
    pub commit_hash: Option<String>,
    pub url: Option<String>,
    pub provider: Option<String>,
    pub repo_owner: Option<String>,
    pub repo_name: Option<String>,
    pub base_branch: Option<String>,
    pub defs_base_path: Option<String>,
}

/// The document for `name`: `entry` (the location's mapping from a file, if any) minus
/// `build`, with the flags merged over it.
pub fn location_document(
    name: &str,
    entry: Option<&Map<String, Value>>,
    flags: &DocumentFlags,
) -> Value {
    let mut base = entry.cloned().unwrap_or_default();
    base.remove("build");
    let g = &flags.git;
    let from_flags = json!({
        "location_name": name,
        "code_source": {
            "python_file": flags.python_file,
            "module_name": flags.module_name,
            "package_name": flags.package_name,
            "autoload_defs_module_name": flags.autoload_defs_module_name,
        },
        "working_directory": flags.working_directory,
        "image": flags.image,
        "executable_path": flags.executable_path,
        "attribute": flags.attribute,
        "git": {
            "commit_hash": g.commit_hash,
            "url": g.url,
            "provider": g.provider,
            "repo_owner": g.repo_owner,
            "repo_name": g.repo_name,
            "base_branch": g.base_branch,
            "defs_base_path": g.defs_base_path,
        },
        "pex_metadata": flags.pex_tag.as_ref().map(|tag| json!({
            "pex_tag": tag,
            "python_version": flags.python_version,
        })),
        "pex_bundle": flags.pex_bundle,
        "defs_state_info": flags.defs_state_info,
    });
    let mut doc = Value::Object(base);
    deep_merge(&mut doc, drop_nulls(from_flags));
    doc
}

/// Removes null values from mappings and lists, recursively (empty mappings stay).
pub fn drop_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, drop_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|v| !v.is_null())
                .map(drop_nulls)
                .collect(),
        ),
        other => other,
    }
}

/// Merges `from` onto `onto`: mappings merge key by key, anything else is replaced.
pub fn deep_merge(onto: &mut Value, from: Value) {
    match (onto, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, from) => *slot = from,
    }
}

/// Reads a location file (`--location-file`): one location mapping, or a file with a
/// `locations` list (then `name` picks the entry). Returns the entry and its name.
pub fn read_location_file(
    path: &Path,
    name: Option<&str>,
) -> Result<(Map<String, Value>, String), ApiError> {
    let doc = read_yaml(path)?;
    let bad = |message: String| ApiError::InvalidInput {
        message,
        hint: format!("check {}", path.display()),
    };
    let Value::Object(map) = doc else {
        return Err(bad(format!(
            "{} must hold a mapping (one location, or `locations:`)",
            path.display()
        )));
    };
    if let Some(list) = map.get("locations") {
        let Some(name) = name else {
            return Err(ApiError::InvalidInput {
                message: "if specifying a file with multiple locations, must specify a location \
                          name"
                    .into(),
                hint: "add the location name as an argument or with --location-name".into(),
            });
        };
        let entry = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .find(|l| l.get("location_name").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| {
                bad(format!(
                    "no location with name {name} defined in location file {}",
                    path.display()
                ))
            })?;
        return Ok((entry.clone(), name.to_string()));
    }
    let in_file = map
        .get("location_name")
        .and_then(Value::as_str)
        .map(str::to_string);
    match (name, in_file) {
        (Some(n), Some(f)) if n != f => Err(bad(format!(
            "name provided via argument and in location file does not match, {n} =/= {f}"
        ))),
        (Some(n), _) => Ok((map, n.to_string())),
        (None, Some(f)) => Ok((map, f)),
        (None, None) => Err(ApiError::InvalidInput {
            message: format!("{} has no location_name", path.display()),
            hint: "add the location name as an argument".into(),
        }),
    }
}

/// A YAML file as JSON (`serde_yaml_ng`: YAML 1.2 scalars, so `yes`/`on` stay strings).
pub fn read_yaml(path: &Path) -> Result<Value, ApiError> {
    let text = std::fs::read_to_string(path).map_err(|e| ApiError::InvalidInput {
        message: format!("cannot read {}: {e}", path.display()),
        hint: "check the path".into(),
    })?;
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_yaml_ng::from_str(&text).map_err(|e| ApiError::InvalidInput {
        message: format!("{} is not valid YAML: {e}", path.display()),
        hint: "fix the YAML syntax".into(),
    })
}

/// A workspace file for `sync-locations`: `{"locations": [...]}`, converting the legacy form
/// (`locations: {name: {python_file: ...}}`) as the reference does.
pub fn workspace_document(raw: Value, path: &Path) -> Result<Value, ApiError> {
    let bad = || ApiError::InvalidInput {
        message: format!("{} must have a `locations` list", path.display()),
        hint: "see `dagster-deploy deployment pull-locations` for the format".into(),
    };
    let Value::Object(mut map) = raw else {
        return Err(bad());
    };
    match map.get("locations") {
        Some(Value::Array(_)) => Ok(Value::Object(map)),
        Some(Value::Object(legacy)) => {
            let mut converted = Vec::new();
            for (name, loc) in legacy {
                let loc = loc.as_object().cloned().unwrap_or_default();
                let mut out: Map<String, Value> = loc
                    .iter()
                    .filter(|(k, _)| !CODE_SOURCE_KEYS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let code_source: Map<String, Value> = CODE_SOURCE_KEYS
                    .iter()
                    .filter_map(|k| loc.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                out.insert("code_source".into(), Value::Object(code_source));
                out.insert("location_name".into(), Value::String(name.clone()));
                converted.push(Value::Object(out));
            }
            map.insert("locations".into(), Value::Array(converted));
            Ok(Value::Object(map))
        }
        _ => Err(bad()),
    }
}

/// A document's `image` and `git.commit_hash`, as the server reads them.
pub use crate::protocol::{document_commit_hash as commit_hash, document_image as image};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_and_empty_mappings_stay_like_the_reference() {
        let entry = json!({
            "location_name": "a",
            "code_source": {"module_name": "a.defs"},
            "build": {"directory": "a", "registry": "r/a"},
            "container_context": {"k8s": {"env_vars": ["X=1"]}},
            "image": "old",
        });
        let flags = DocumentFlags {
            image: Some("r/a:t1".into()),
            git: GitMetadata {
                commit_hash: Some("abc".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let doc = location_document("a", entry.as_object(), &flags);
        assert_eq!(
            doc,
            json!({
                "location_name": "a",
                "code_source": {"module_name": "a.defs"},
                "container_context": {"k8s": {"env_vars": ["X=1"]}},
                "image": "r/a:t1",
                "git": {"commit_hash": "abc"},
            })
        );
        let doc = location_document(
            "b",
            None,
            &DocumentFlags {
                package_name: Some("b".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            doc,
            json!({"location_name": "b", "code_source": {"package_name": "b"}, "git": {}})
        );
    }

    #[test]
    fn legacy_workspace_files_are_converted() {
        let raw = json!({"locations": {"x": {"python_file": "x.py", "image": "i"}}});
        let doc = workspace_document(raw, Path::new("w.yaml")).unwrap();
        assert_eq!(
            doc,
            json!({"locations": [{"image": "i", "code_source": {"python_file": "x.py"}, "location_name": "x"}]})
        );
        assert!(workspace_document(json!({"x": 1}), Path::new("w.yaml")).is_err());
    }

    #[test]
    fn location_files_pick_their_entry() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("l.yaml");
        std::fs::write(
            &f,
            "locations:\n  - location_name: a\n    code_source:\n      package_name: a\n",
        )
        .unwrap();
        let (entry, name) = read_location_file(&f, Some("a")).unwrap();
        assert_eq!(
            (name.as_str(), &entry["code_source"]),
            ("a", &json!({"package_name": "a"}))
        );
        assert!(read_location_file(&f, None).is_err());
        assert!(read_location_file(&f, Some("zz")).is_err());
        std::fs::write(&f, "location_name: b\n").unwrap();
        assert_eq!(read_location_file(&f, None).unwrap().1, "b");
        assert!(read_location_file(&f, Some("c")).is_err());
    }
}
