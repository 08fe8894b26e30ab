//! Local path references in a `pyproject.toml`.

use toml::{Table, Value};

use super::reference::file_url_path;
use crate::changes::ChangesError;
use crate::changes::folders::RawRef;

/// Every local package `file` (a repo-relative pyproject.toml, content `bytes`) refers to, as
/// written (paths, or `file:` URL paths).
pub(super) fn raw_references(file: &str, bytes: &[u8]) -> Result<Vec<RawRef>, ChangesError> {
    let invalid = |message: String| ChangesError::InvalidPyproject {
        path: file.to_string(),
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("not valid UTF-8".into()))?;
    let doc: Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(e.to_string().trim_end().to_string()))?;

    let mut paths = Vec::new();
    // `[tool.uv.sources] name = { path = "../lib" }` or a list of such tables (with markers).
    if let Some(sources) = get(&doc, &["tool", "uv", "sources"]).and_then(Value::as_table) {
        sources.values().for_each(|v| path_tables(v, &mut paths));
    }
    // Poetry: `name = { path = "../lib" }` in the main, dev and group dependency tables.
    let poetry = get(&doc, &["tool", "poetry"]);
    let mut poetry_tables: Vec<&Value> = ["dependencies", "dev-dependencies"]
        .iter()
        .filter_map(|k| poetry.and_then(|p| p.get(k)))
        .collect();
    if let Some(groups) = poetry
        .and_then(|p| p.get("group"))
        .and_then(Value::as_table)
    {
        poetry_tables.extend(groups.values().filter_map(|g| g.get("dependencies")));
    }
    for table in poetry_tables.iter().filter_map(|t| t.as_table()) {
        table.values().for_each(|v| path_tables(v, &mut paths));
    }
    // PEP 508 strings: `name @ file:../lib`.
    let mut requirements: Vec<&Value> = Vec::new();
    if let Some(deps) = get(&doc, &["project", "dependencies"]).and_then(Value::as_array) {
        requirements.extend(deps);
    }
    for key in [
        &["project", "optional-dependencies"][..],
        &["dependency-groups"][..],
    ] {
        if let Some(groups) = get(&doc, key).and_then(Value::as_table) {
            requirements.extend(groups.values().filter_map(Value::as_array).flatten());
        }
    }
    for req in requirements.iter().filter_map(|v| v.as_str()) {
        if let Some(path) = direct_reference(req).and_then(file_url_path) {
            paths.push(path);
        }
    }

    Ok(paths
        .into_iter()
        .map(|text| RawRef {
            file: file.to_string(),
            text,
            package: true,
        })
        .collect())
}

fn get<'a>(doc: &'a Table, keys: &[&str]) -> Option<&'a Value> {
    let (first, rest) = keys.split_first()?;
    rest.iter().try_fold(doc.get(*first)?, |v, k| v.get(k))
}

/// `{ path = "..." }`, or a list of such tables.
fn path_tables(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Table(t) => {
            if let Some(p) = t.get("path").and_then(Value::as_str) {
                out.push(p.to_string());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| path_tables(i, out)),
        _ => {}
    }
}

/// The URL of a PEP 508 direct reference `name [extras] @ url ; markers`.
pub(super) fn direct_reference(req: &str) -> Option<&str> {
    let (name, rest) = req.split_once('@')?;
    let name = name.split('[').next().unwrap_or("").trim();
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_name {
        return None;
    }
    // Markers follow `;` (a URL with `;` in it must have it percent-encoded).
    let url = rest.split(';').next().unwrap_or("").trim();
    (!url.is_empty()).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::direct_reference;

    #[test]
    fn direct_references_are_found_with_extras_and_markers() {
        assert_eq!(direct_reference("lib @ file:../lib"), Some("file:../lib"));
        assert_eq!(
            direct_reference("lib[x,y] @ file:///a/b ; python_version >= '3.9'"),
            Some("file:///a/b")
        );
        assert_eq!(direct_reference("requests>=2"), None);
        assert_eq!(direct_reference("git+ssh://git@host/x"), None);
    }
}
