//! Turning a merged location into the JSON entry and the normalised build directory.

use serde_json::{Map, Number, Value as Json};

use super::yaml::{Node, Value};

/// The node as JSON; mapping keys become strings as Python's `json.dumps` writes them.
/// Floats JSON cannot hold (`.inf`, `.nan`) keep their YAML text.
pub(crate) fn to_json(node: &Node) -> Json {
    match &node.value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number(Number::from(*i)),
        Value::Float(f) => match Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None => Json::String(node.plain.clone().unwrap_or_else(|| f.to_string())),
        },
        Value::Str(s) => Json::String(s.clone()),
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|e| (json_key(&e.key), to_json(&e.value)))
                .collect(),
        ),
    }
}

fn json_key(key: &Node) -> String {
    match &key.value {
        Value::Str(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        _ => key.key_text(),
    }
}

/// The merged entry as a JSON object (empty if the node is not a mapping).
pub(crate) fn to_object(node: &Node) -> Map<String, Json> {
    match to_json(node) {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

/// Normalises `build.directory`: `/` separators, no `.` segments, `a/../b` folded to `b`,
/// no trailing `/`; `""` for the yaml's folder itself. A `..` that leaves the folder is kept
/// (`../shared`), and an absolute path stays absolute.
pub fn normalize_directory(directory: &str) -> String {
    let unified = directory.replace('\\', "/");
    let absolute = unified.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in unified.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                // `/..` is `/`.
                _ if absolute => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_normalised() {
        let cases = [
            ("", ""),
            (".", ""),
            ("./", ""),
            ("a", "a"),
            ("./a/", "a"),
            ("a//b/./c", "a/b/c"),
            ("a/../b", "b"),
            ("a/..", ""),
            ("../shared", "../shared"),
            ("../../x/../y", "../../y"),
            ("a/../../b", "../b"),
            ("a\\b", "a/b"),
            ("/abs/./dir/", "/abs/dir"),
            ("/..", "/"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_directory(input), expected, "{input:?}");
        }
    }
}
