//! The dagster_cloud.yaml fixture corpus (`tests/fixtures/config/`), checked through the library.
//!
//! `valid/*.yaml` must load; the result is pinned in `<name>.json` (whose entries
//! `reference_check.py` also compares with the reference CLI's merged locations).
//! `invalid/*.yaml` must fail; every diagnostic is pinned in `<name>.expected`.
//! After a deliberate change, rewrite the pins with `UPDATE_FIXTURES=1 cargo test --test
//! config_corpus` and review the diff.

use std::path::{Path, PathBuf};

use dagster_deploy::config::{ConfigError, Diagnostic, Source, Workspace, parse};
use serde_json::{Value, json};

fn corpus(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus {folder} too small");
    files
}

/// `# env: NAME=value` header lines, as `reference_check.py` reads them.
fn fixture_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# env: "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(path: &Path) -> Result<Workspace, ConfigError> {
    let text = std::fs::read_to_string(path).unwrap();
    let vars = fixture_env(&text);
    let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let source = Source {
        file: Path::new(path.file_name().unwrap()),
        root: Path::new("."),
        yaml: &text,
        settings_toml: None,
    };
    parse(&source, &env)
}

fn render_workspace(ws: &Workspace) -> String {
    let locations: Vec<Value> = ws
        .locations
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "build_directory": l.build_directory,
                "registry": l.registry,
                "line": l.line,
                "column": l.column,
                "entry": l.entry,
            })
        })
        .collect();
    serde_json::to_string_pretty(&json!({ "locations": locations })).unwrap() + "\n"
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}:{} [{}] {}\n    hint: {}\n",
                d.line, d.column, d.field, d.message, d.hint
            )
        })
        .collect()
}

fn check_pin(pin: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(pin, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(pin).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}:\n--- pinned\n{expected}--- actual\n{actual}",
            pin.display()
        ));
    }
}

#[test]
fn valid_files_load_as_pinned() {
    let mut failures = Vec::new();
    for path in corpus("valid") {
        match load(&path) {
            Ok(ws) => check_pin(
                &path.with_extension("json"),
                &render_workspace(&ws),
                &mut failures,
            ),
            Err(err) => failures.push(format!("{} was rejected: {err:?}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_files_fail_with_pinned_diagnostics() {
    let mut failures = Vec::new();
    for path in corpus("invalid") {
        match load(&path) {
            Err(ConfigError::Invalid { file, diagnostics }) => {
                assert_eq!(file, Path::new(path.file_name().unwrap()));
                assert!(!diagnostics.is_empty());
                let rendered = render_diagnostics(&diagnostics);
                check_pin(&path.with_extension("expected"), &rendered, &mut failures);
            }
            Err(other) => failures.push(format!("{}: unexpected error {other:?}", path.display())),
            Ok(_) => failures.push(format!("{} was accepted", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
