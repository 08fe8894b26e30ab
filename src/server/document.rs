//! Location documents as the protocol sends them: validation (all problems at once, clear
//! messages) and the `serializedDeploymentMetadata` string the reference client decodes.

use serde_json::{Map, Value};

use crate::config::CODE_SOURCE_KEYS;
const STRING_KEYS: [&str; 4] = [
    "working_directory",
    "executable_path",
    "attribute",
    "agent_queue",
];
const GIT_KEYS: [&str; 7] = [
    "commit_hash",
    "url",
    "provider",
    "repo_owner",
    "repo_name",
    "base_branch",
    "defs_base_path",
];
const CONTAINER_CONTEXT_KEYS: [&str; 4] = ["k8s", "docker", "ecs", "aca"];
/// Every top-level key a location document may have. `build` is kept by
/// `reconcileLocationsFromDocument` documents (workspace files) and ignored by the server.
const TOP_LEVEL_KEYS: [&str; 13] = [
    "location_name",
    "code_source",
    "image",
    "working_directory",
    "executable_path",
    "attribute",
    "container_context",
    "agent_queue",
    "git",
    "pex_metadata",
    "pex_bundle",
    "defs_state_info",
    "build",
];

/// Deepest nesting of mappings and lists in one location document (the reader's own limit,
/// serde_json's 128 for a whole stored row, must never be reached: a stored location has to
/// stay readable).
pub const MAX_DOCUMENT_DEPTH: usize = 32;
/// Largest location document, as JSON.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Most locations in one `deployLocations` / `reconcileLocationsFromDocument` document.
pub const MAX_LOCATIONS: usize = 1_000;

/// How deep `value` nests (a scalar is 0, `{}` is 1), without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

/// A JSON value (a document, settings) stored by the server: bounded in depth and size.
pub fn check_bounds(value: &Value, what: &str) -> Result<(), String> {
    let d = depth(value);
    if d > MAX_DOCUMENT_DEPTH {
        return Err(format!(
            "{what} nests {d} levels deep; at most {MAX_DOCUMENT_DEPTH} are allowed"
        ));
    }
    let size = value.to_string().len();
    if size > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "{what} is {size} bytes as JSON; at most {MAX_DOCUMENT_BYTES} are allowed"
        ));
    }
    Ok(())
}

/// Checks one location document; returns its name, or every problem found. `what` names the
/// document in messages when it has no usable name (e.g. `locations[2]`).
pub fn validate_location(doc: &Value, what: &str) -> Result<String, Vec<String>> {
    let Some(obj) = doc.as_object() else {
        return Err(vec![format!(
            "{what}: a location document must be a mapping, got {}",
            kind(doc)
        )]);
    };
    let name = match obj.get("location_name") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(vec![format!("{what}: location_name must not be empty")]);
        }
        Some(other) => {
            return Err(vec![format!(
                "{what}: location_name must be a string, got {}",
                kind(other)
            )]);
        }
        None => None,
    };
    let label = match &name {
        Some(n) => format!("location '{n}'"),
        None => what.to_string(),
    };
    check_bounds(doc, &label).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    if name.is_none() {
        errors.push(format!("{label}: missing required key location_name"));
    }
    for key in obj.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            errors.push(format!(
                "{label}: unknown key '{key}' (allowed: {})",
                TOP_LEVEL_KEYS.join(", ")
            ));
        }
    }
    if let Some(cs) = present(obj, "code_source") {
        check_code_source(cs, &label, &mut errors);
    }
    if let Some(image) = present(obj, "image") {
        expect_string(image, &label, "image", &mut errors);
    }
    for key in STRING_KEYS {
        if let Some(v) = present(obj, key) {
            expect_string(v, &label, key, &mut errors);
        }
    }
    if let Some(git) = present(obj, "git") {
        check_string_map(git, &label, "git", &GIT_KEYS, &mut errors);
    }
    if let Some(cc) = present(obj, "container_context") {
        check_container_context(cc, &label, &mut errors);
    }
    if let Some(pex) = present(obj, "pex_metadata") {
        check_string_map(
            pex,
            &label,
            "pex_metadata",
            &["pex_tag", "python_version"],
            &mut errors,
        );
        if pex.is_object() && present_in(pex, "pex_tag").is_none() {
            errors.push(format!("{label}: pex_metadata.pex_tag is required"));
        }
    }
    if let Some(b) = present(obj, "pex_bundle")
        && !b.is_boolean()
    {
        errors.push(format!(
            "{label}: pex_bundle must be true or false, got {}",
            kind(b)
        ));
    }
    if let Some(d) = present(obj, "defs_state_info")
        && !d.is_object()
    {
        errors.push(format!(
            "{label}: defs_state_info must be a mapping, got {}",
            kind(d)
        ));
    }
    if let Some(build) = present(obj, "build") {
        check_string_map(
            build,
            &label,
            "build",
            &["directory", "registry"],
            &mut errors,
        );
    }
    match name {
        Some(n) if errors.is_empty() => Ok(n),
        _ => Err(errors),
    }
}

/// Validates a `{"locations": [...]}` document and returns its entries, rejecting duplicate
/// names. All problems are reported together.
pub fn validate_locations_document(doc: &Value) -> Result<Vec<(String, Value)>, Vec<String>> {
    let Some(obj) = doc.as_object() else {
        return Err(vec![format!(
            "the document must be a mapping with a 'locations' list, got {}",
            kind(doc)
        )]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if key != "locations" {
            errors.push(format!(
                "unknown top-level key '{key}' (only 'locations' is allowed)"
            ));
        }
    }
    let list = match obj.get("locations") {
        Some(Value::Array(list)) => list.as_slice(),
        Some(other) => {
            errors.push(format!("'locations' must be a list, got {}", kind(other)));
            &[]
        }
        None => {
            errors.push("missing required key 'locations'".to_string());
            &[]
        }
    };
    let entries = validate_location_list(list);
    match entries {
        Ok(entries) if errors.is_empty() => Ok(entries),
        Ok(_) => Err(errors),
        Err(mut more) => {
            errors.append(&mut more);
            Err(errors)
        }
    }
}

/// Validates a list of location documents (all problems at once, duplicates rejected).
pub fn validate_location_list(list: &[Value]) -> Result<Vec<(String, Value)>, Vec<String>> {
    if list.len() > MAX_LOCATIONS {
        return Err(vec![format!(
            "the document has {} locations; at most {MAX_LOCATIONS} are allowed in one request",
            list.len()
        )]);
    }
    let mut errors = Vec::new();
    let mut entries: Vec<(String, Value)> = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::new();
    for (i, doc) in list.iter().enumerate() {
        match validate_location(doc, &format!("locations[{i}]")) {
            Ok(name) => {
                if !seen.insert(name.clone()) {
                    errors.push(format!(
                        "location '{name}' appears more than once; location names must be unique"
                    ));
                } else {
                    entries.push((name, doc.clone()));
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

/// The image a document runs, if any (Python-executable deploys have none).
pub fn image(doc: &Value) -> Option<&str> {
    doc.get("image").and_then(Value::as_str)
}

/// `git.commit_hash`, recorded with each revision.
pub fn commit_hash(doc: &Value) -> Option<&str> {
    doc.get("git")
        .and_then(|g| g.get("commit_hash"))
        .and_then(Value::as_str)
}

/// The document as the reference client's `CodeLocationDeployData` (Dagster "serdes" JSON,
/// stored under its old name `CodeDeploymentMetadata`, keys sorted as serdes writes them).
pub fn serialized_deployment_metadata(doc: &Value) -> String {
    let get = |key: &str| doc.get(key).cloned().unwrap_or(Value::Null);
    let code = |key: &str| {
        doc.get("code_source")
            .and_then(|c| c.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut m = Map::new();
    m.insert("__class__".into(), "CodeDeploymentMetadata".into());
    m.insert("agent_queue".into(), get("agent_queue"));
    m.insert("attribute".into(), get("attribute"));
    m.insert(
        "autoload_defs_module_name".into(),
        code("autoload_defs_module_name"),
    );
    m.insert("cloud_context_env".into(), Value::Object(Map::new()));
    m.insert(
        "container_context".into(),
        match get("container_context") {
            Value::Null => Value::Object(Map::new()),
            v => v,
        },
    );
    m.insert(
        "defs_state_info".into(),
        defs_state_info(doc.get("defs_state_info")),
    );
    m.insert("executable_path".into(), get("executable_path"));
    m.insert("git_metadata".into(), git_metadata(doc.get("git")));
    m.insert("image".into(), get("image"));
    m.insert("module_name".into(), code("module_name"));
    m.insert("package_name".into(), code("package_name"));
    m.insert("pex_metadata".into(), pex_metadata(doc.get("pex_metadata")));
    m.insert("python_file".into(), code("python_file"));
    m.insert("working_directory".into(), get("working_directory"));
    Value::Object(m).to_string()
}

fn git_metadata(git: Option<&Value>) -> Value {
    let Some(git) = git.filter(|g| g.is_object()) else {
        return Value::Null;
    };
    let mut m = Map::new();
    m.insert("__class__".into(), "GitMetadata".into());
    // serdes always writes these two and skips the others when unset.
    let mut keys: Vec<&str> = GIT_KEYS.to_vec();
    keys.sort_unstable();
    for key in keys {
        let v = git.get(key).cloned().unwrap_or(Value::Null);
        if v.is_null() && key != "commit_hash" && key != "url" {
            continue;
        }
        m.insert(key.into(), v);
    }
    Value::Object(m)
}

fn pex_metadata(pex: Option<&Value>) -> Value {
    let Some(pex) = pex.filter(|p| p.is_object()) else {
        return Value::Null;
    };
    let mut m = Map::new();
    m.insert("__class__".into(), "PexMetadata".into());
    m.insert(
        "pex_tag".into(),
        pex.get("pex_tag").cloned().unwrap_or(Value::Null),
    );
    m.insert(
        "python_version".into(),
        pex.get("python_version").cloned().unwrap_or(Value::Null),
    );
    Value::Object(m)
}

fn defs_state_info(info: Option<&Value>) -> Value {
    let Some(info) = info.filter(|i| i.is_object()) else {
        return Value::Null;
    };
    let mut mapping = Map::new();
    if let Some(entries) = info.get("info_mapping").and_then(Value::as_object) {
        for (key, entry) in entries {
            let v = match entry.as_object() {
                Some(e) => {
                    let mut k = Map::new();
                    k.insert("__class__".into(), "DefsKeyStateInfo".into());
                    k.insert(
                        "create_timestamp".into(),
                        e.get("create_timestamp").cloned().unwrap_or(Value::Null),
                    );
                    k.insert(
                        "version".into(),
                        e.get("version").cloned().unwrap_or(Value::Null),
                    );
                    Value::Object(k)
                }
                None => Value::Null,
            };
            mapping.insert(key.clone(), v);
        }
    }
    let mut m = Map::new();
    m.insert("__class__".into(), "DefsStateInfo".into());
    m.insert("info_mapping".into(), Value::Object(mapping));
    Value::Object(m)
}

/// A key's value unless it is absent or null (null means "not set", as the client drops nulls).
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn present_in<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|o| present(o, key))
}

fn check_code_source(cs: &Value, label: &str, errors: &mut Vec<String>) {
    let Some(obj) = cs.as_object() else {
        errors.push(format!(
            "{label}: code_source must be a mapping, got {}",
            kind(cs)
        ));
        return;
    };
    for key in obj.keys() {
        if !CODE_SOURCE_KEYS.contains(&key.as_str()) {
            errors.push(format!(
                "{label}: unknown key 'code_source.{key}' (allowed: {})",
                CODE_SOURCE_KEYS.join(", ")
            ));
        }
    }
    let given: Vec<&str> = CODE_SOURCE_KEYS
        .iter()
        .copied()
        .filter(|k| present(obj, k).is_some())
        .collect();
    if given.len() != 1 {
        errors.push(format!(
            "{label}: code_source must set exactly one of {} (found {})",
            CODE_SOURCE_KEYS.join(", "),
            if given.is_empty() {
                "none".to_string()
            } else {
                given.join(", ")
            }
        ));
    }
    for key in given {
        if let Some(v) = present(obj, key) {
            expect_string(v, label, &format!("code_source.{key}"), errors);
        }
    }
}

fn check_container_context(cc: &Value, label: &str, errors: &mut Vec<String>) {
    let Some(obj) = cc.as_object() else {
        errors.push(format!(
            "{label}: container_context must be a mapping, got {}",
            kind(cc)
        ));
        return;
    };
    for (key, v) in obj {
        if !CONTAINER_CONTEXT_KEYS.contains(&key.as_str()) {
            errors.push(format!(
                "{label}: unknown key 'container_context.{key}' (allowed: {})",
                CONTAINER_CONTEXT_KEYS.join(", ")
            ));
        } else if !v.is_object() && !v.is_null() {
            errors.push(format!(
                "{label}: container_context.{key} must be a mapping, got {}",
                kind(v)
            ));
        }
    }
}

/// A mapping whose values are strings, with a fixed set of keys.
fn check_string_map(v: &Value, label: &str, what: &str, keys: &[&str], errors: &mut Vec<String>) {
    let Some(obj) = v.as_object() else {
        errors.push(format!(
            "{label}: {what} must be a mapping, got {}",
            kind(v)
        ));
        return;
    };
    for (key, value) in obj {
        if !keys.contains(&key.as_str()) {
            errors.push(format!(
                "{label}: unknown key '{what}.{key}' (allowed: {})",
                keys.join(", ")
            ));
        } else if !value.is_null() {
            expect_string(value, label, &format!("{what}.{key}"), errors);
        }
    }
}

fn expect_string(v: &Value, label: &str, what: &str, errors: &mut Vec<String>) {
    if !v.is_string() {
        errors.push(format!("{label}: {what} must be a string, got {}", kind(v)));
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_document_ci_deploy_sends() {
        let doc = json!({"location_name":"c","code_source":{"module_name":"c"},
            "working_directory":"c","image":"example.com/registry:prod-c-abc",
            "git":{"commit_hash":"abc"}});
        assert_eq!(validate_location(&doc, "doc"), Ok("c".to_string()));
    }

    #[test]
    fn reports_every_problem_at_once() {
        let doc = json!({"code_source":{"module_name":"a","package_name":"b"},"imagee":"x",
            "git":{"sha":"1"}});
        let errors = validate_location(&doc, "locations[0]").unwrap_err();
        assert_eq!(
            errors,
            vec![
                "locations[0]: missing required key location_name".to_string(),
                "locations[0]: unknown key 'imagee' (allowed: location_name, code_source, image, \
                 working_directory, executable_path, attribute, container_context, agent_queue, \
                 git, pex_metadata, pex_bundle, defs_state_info, build)"
                    .to_string(),
                "locations[0]: code_source must set exactly one of package_name, module_name, \
                 python_file, autoload_defs_module_name (found package_name, module_name)"
                    .to_string(),
                "locations[0]: unknown key 'git.sha' (allowed: commit_hash, url, provider, \
                 repo_owner, repo_name, base_branch, defs_base_path)"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let a = json!({"location_name":"a","code_source":{"module_name":"a"}});
        let errors = validate_location_list(&[a.clone(), a]).unwrap_err();
        assert_eq!(
            errors,
            vec!["location 'a' appears more than once; location names must be unique"]
        );
    }

    #[test]
    fn metadata_matches_serdes_layout() {
        let doc = json!({"location_name":"x","code_source":{"module_name":"x"},"image":"y",
            "git":{"commit_hash":"abc","url":"u"},"agent_queue":"q",
            "pex_metadata":{"pex_tag":"t","python_version":"3.11"},
            "container_context":{"k8s":{"a":1}}});
        // The exact string Python's serialize_value() gives for the same CodeLocationDeployData.
        let expected = r#"{"__class__":"CodeDeploymentMetadata","agent_queue":"q","attribute":null,"autoload_defs_module_name":null,"cloud_context_env":{},"container_context":{"k8s":{"a":1}},"defs_state_info":null,"executable_path":null,"git_metadata":{"__class__":"GitMetadata","commit_hash":"abc","url":"u"},"image":"y","module_name":"x","package_name":null,"pex_metadata":{"__class__":"PexMetadata","pex_tag":"t","python_version":"3.11"},"python_file":null,"working_directory":null}"#;
        assert_eq!(serialized_deployment_metadata(&doc), expected);
    }
}
