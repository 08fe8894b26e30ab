//! The layering of docs/architecture.md, checked: a top-level module of `src/` may use only
//! modules of a lower layer (no import circles). Test modules (`#[cfg(test)]` onwards) and
//! comments are not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// docs/architecture.md's table.
const LAYERS: &[(&str, u8)] = &[
    ("config", 0),
    ("changes", 0),
    ("protocol", 0),
    ("python_tools", 0),
    ("child_process", 0),
    ("dagster", 1),
    ("printer", 1),
    ("registry", 1),
    ("api", 2),
    ("server", 2),
    ("plan", 2),
    ("build", 3),
    ("pex", 3),
    ("ci", 3),
    ("progress", 4),
    ("error", 4),
    ("deploy", 5),
    ("output", 5),
    ("cli", 5),
    ("commands", 6),
    ("logging", 6),
];

/// Every `.rs` file under `path` (or `path` itself), its production part.
fn sources(path: &Path, out: &mut Vec<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read src") {
            sources(&entry.expect("entry").path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        let text = std::fs::read_to_string(path).expect("read source");
        let production = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: Vec<&str> = production
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        out.push(code.join("\n"));
    }
}

/// The top-level modules `code` names through `crate::`.
fn uses(code: &str, modules: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        // `crate::{a, b::c}` names several.
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|p| p.trim().split("::").next().unwrap_or_default())
                .collect(),
            None => vec![
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default(),
            ],
        };
        for name in names {
            if modules.contains(name) {
                found.insert(name.to_string());
            }
        }
    }
    found
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let names: BTreeSet<&str> = layer.keys().copied().collect();
    let mut on_disk = BTreeSet::new();
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if stem == "lib" || stem == "main" {
            continue;
        }
        on_disk.insert(stem.clone());
        let Some(&own) = layer.get(stem.as_str()) else {
            continue;
        };
        let mut code = Vec::new();
        sources(&path, &mut code);
        for used in uses(&code.join("\n"), &names) {
            if used != stem && layer[used.as_str()] >= own {
                wrong.push(format!(
                    "{stem} (layer {own}) uses {used} (layer {})",
                    layer[used.as_str()]
                ));
            }
        }
    }
    let listed: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "every top-level module has a layer in docs/architecture.md and here"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_use_of_a_higher_layer_is_found() {
    let names: BTreeSet<&str> = ["plan", "error", "deploy"].into_iter().collect();
    let code = "use crate::{error::Error, plan};\nlet x = crate::deploy::flow::deploy;";
    let found: Vec<String> = uses(code, &names).into_iter().collect();
    assert_eq!(found, ["deploy", "error", "plan"]);
}
