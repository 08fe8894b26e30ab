//! Loading from disk, the workspace values, build directory checks and the injected
//! environment.

use std::path::Path;

use dagster_deploy::config::{ConfigError, Source, Workspace, inspect, load, parse};
use dagster_deploy::plan::locate::check_on_disk;
use serde_json::json;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_str(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Workspace, ConfigError> {
    let source = Source {
        file: Path::new("dagster_cloud.yaml"),
        root: Path::new("."),
        yaml,
        settings_toml: None,
    };
    parse(&source, env)
}

#[test]
fn missing_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dagster_cloud.yaml");
    match load(&file, &no_env) {
        Err(ConfigError::Read { path, source }) => {
            assert_eq!(path, file);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn unreadable_settings_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dagster_cloud.yaml");
    std::fs::write(&file, "locations: []\n").unwrap();
    // A folder where the settings file should be cannot be read as text.
    std::fs::create_dir(dir.path().join("dagster-deploy.toml")).unwrap();
    match load(&file, &no_env) {
        Err(ConfigError::Read { path, .. }) => {
            assert_eq!(path, dir.path().join("dagster-deploy.toml"))
        }
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn loads_both_files_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dagster_cloud.yaml");
    std::fs::write(
        &file,
        "locations:\n  - location_name: etl\n    build:\n      directory: ./etl/\n      registry: example.com/etl\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("dagster-deploy.toml"),
        "[locations.etl]\nwatch = [\"shared\"]\n",
    )
    .unwrap();
    let ws = load(&file, &no_env).unwrap();
    assert_eq!(ws.file, file);
    assert_eq!(ws.root, dir.path());
    assert_eq!(ws.locations.len(), 1);
    let etl = &ws.locations[0];
    assert_eq!(etl.name, "etl");
    assert_eq!(etl.build_directory, "etl");
    assert_eq!(etl.registry.as_deref(), Some("example.com/etl"));
    assert_eq!((etl.line, etl.column), (2, 5));
    assert_eq!(ws.settings.for_location("etl").watch, vec!["shared"]);
}

#[test]
fn invalid_file_on_disk_reports_every_problem_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dagster_cloud.yaml");
    std::fs::write(
        &file,
        "locations:\n  - location_name: a\n    image: 5\n  - location_name: a\nextra: 1\n",
    )
    .unwrap();
    let Err(ConfigError::Invalid {
        file: reported,
        diagnostics,
    }) = load(&file, &no_env)
    else {
        panic!("expected diagnostics");
    };
    assert_eq!(reported, file);
    let found: Vec<(usize, usize, &str)> = diagnostics
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (3, 12, "`image` must be a string, found an integer"),
            (4, 20, "duplicate location name `a` (first used at line 2)"),
            (5, 1, "unknown key `extra`"),
        ]
    );
    assert!(diagnostics.iter().all(|d| d.file == file));
    let err = ConfigError::Invalid {
        file: reported,
        diagnostics,
    };
    assert_eq!(
        err.to_string(),
        format!("{} has 3 problems", file.display())
    );
}

#[test]
fn the_root_is_the_folder_of_the_file_as_named() {
    // Integration tests run in the package folder.
    let file = Path::new("tests/fixtures/config/valid/minimal.yaml");
    let ws = load(file, &no_env).unwrap();
    assert_eq!(ws.file, file);
    assert_eq!(ws.root, Path::new("tests/fixtures/config/valid"));
    assert_eq!(ws.locations[0].name, "quickstart");
}

#[test]
fn entries_drop_nulls_and_keep_build() {
    let ws = parse_str(
        "locations:\n  - location_name: a\n    image: ~\n    code_source: {module_name: a, package_name: null}\n    build: {registry: r, directory: null}\n    container_context: {k8s: {env_vars: [A, null]}}\n",
        &no_env,
    )
    .unwrap();
    assert_eq!(
        serde_json::Value::Object(ws.locations[0].entry.clone()),
        json!({
            "location_name": "a",
            "code_source": {"module_name": "a"},
            "build": {"registry": "r"},
            "container_context": {"k8s": {"env_vars": ["A"]}},
        })
    );
    assert_eq!(ws.locations[0].build_directory, "");
}

#[test]
fn defaults_merge_into_every_location() {
    let yaml = r#"defaults:
  build: {registry: example.com/shared}
  container_context:
    k8s:
      env_vars: [A=1, B=2]
      volumes: [{name: data, emptyDir: {}}]
      labels: {team: data}
      other: [x, y]
locations:
  - location_name: a
    build: {directory: a}
    container_context:
      k8s:
        env_vars: [B=3]
        volumes: [{name: data, hostPath: {path: /d}}]
        labels: {tier: gold}
        other: [y, z]
  - location_name: b
    build: {registry: example.com/b}
"#;
    let ws = parse_str(yaml, &no_env).unwrap();
    let a = &ws.locations[0];
    assert_eq!(a.registry.as_deref(), Some("example.com/shared"));
    assert_eq!(a.build_directory, "a");
    assert_eq!(
        a.entry["container_context"],
        json!({"k8s": {
            "env_vars": ["A=1", "B=3"],
            "volumes": [{"name": "data", "hostPath": {"path": "/d"}}],
            "labels": {"tier": "gold", "team": "data"},
            "other": ["x", "y", "z"],
        }})
    );
    let b = &ws.locations[1];
    assert_eq!(b.registry.as_deref(), Some("example.com/b"));
    assert_eq!(
        b.entry["container_context"]["k8s"]["env_vars"],
        json!(["A=1", "B=2"])
    );
}

#[test]
fn templates_read_the_injected_environment_only() {
    let yaml = "locations:\n  - location_name: a\n    build:\n      registry: {{ get_env(\"REGISTRY\", \"example.com/default\") }}\n    image: \"{{ get_env('PATH', 'no-path') }}\"\n";
    // PATH is set in the process environment; the injected one decides.
    let ws = parse_str(yaml, &no_env).unwrap();
    assert_eq!(
        ws.locations[0].registry.as_deref(),
        Some("example.com/default")
    );
    assert_eq!(ws.locations[0].entry["image"], json!("no-path"));

    let env = |name: &str| (name == "REGISTRY").then(|| "example.com/set".to_string());
    let ws = parse_str(yaml, &env).unwrap();
    assert_eq!(ws.locations[0].registry.as_deref(), Some("example.com/set"));
}

#[test]
fn template_errors_are_diagnostics_with_positions() {
    let Err(ConfigError::Invalid { diagnostics, .. }) = parse_str(
        "locations:\n  - location_name: a\n    image: {{ get_env('X') | nope }}\n",
        &no_env,
    ) else {
        panic!("expected diagnostics");
    };
    assert_eq!(diagnostics.len(), 1);
    let d = &diagnostics[0];
    assert_eq!((d.line, d.field.as_str()), (3, ""));
    assert_eq!(
        d.message,
        "template error: unknown filter: filter nope is unknown"
    );
    assert_eq!(
        d.hint,
        "fix the Jinja template; besides Jinja's built-ins it can use `get_env(name, default)` and the `to_yaml` filter"
    );
}

#[test]
fn yaml_syntax_error_is_one_diagnostic_at_its_position() {
    let Err(ConfigError::Invalid { diagnostics, .. }) = parse_str(
        "locations:\n  - location_name: a\n    image: [x\n  - location_name: b\n",
        &no_env,
    ) else {
        panic!("expected diagnostics");
    };
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].field, "");
    assert!(diagnostics[0].message.starts_with("invalid YAML: "));
    assert_eq!(diagnostics[0].line, 4);
}

#[test]
fn build_directories_are_checked_on_disk_outside_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dagster_cloud.yaml");
    std::fs::write(
        &file,
        "locations:\n  - location_name: a\n    build: {directory: ./a}\n  - location_name: b\n    build: {directory: b/}\n  - location_name: root\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    let ws = load(&file, &no_env).unwrap();
    let found = check_on_disk(&ws);
    assert_eq!(found.len(), 1);
    let d = &found[0];
    assert_eq!(d.file, file);
    // Points at the `directory` value itself.
    assert_eq!((d.line, d.column), (5, 24));
    assert_eq!(d.field, "locations[1].build.directory");
    assert_eq!(
        d.message,
        "build directory `b` of location `b` does not exist"
    );
    assert_eq!(
        d.hint,
        "create the directory or fix `build.directory` (it is relative to the folder of dagster_cloud.yaml)"
    );
    std::fs::create_dir(dir.path().join("b")).unwrap();
    assert!(check_on_disk(&ws).is_empty());
}

#[test]
fn inspect_returns_what_loads_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dagster_cloud.yaml");
    std::fs::write(
        &file,
        "locations:\n  - location_name: a\n    imgae: x\n  - location_name: b\n",
    )
    .unwrap();
    let inspected = inspect(&file, &no_env).unwrap();
    let names: Vec<&str> = inspected
        .workspace
        .locations
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    assert_eq!(inspected.diagnostics.len(), 1);
    assert_eq!(inspected.diagnostics[0].message, "unknown key `imgae`");
}

#[test]
fn a_file_that_is_not_utf8_has_a_diagnostic_at_its_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dagster_cloud.yaml");
    std::fs::write(&file, b"locations:\n  - location_name: \xff\n").unwrap();
    let Err(ConfigError::Invalid { diagnostics, .. }) = load(&file, &no_env) else {
        panic!("expected diagnostics");
    };
    assert_eq!(diagnostics.len(), 1);
    assert_eq!((diagnostics[0].line, diagnostics[0].column), (2, 20));
    assert_eq!(diagnostics[0].message, "the file is not valid UTF-8");
}

#[test]
fn env_values_are_redacted_but_the_workspace_keeps_them() {
    let env = |name: &str| (name == "DB").then(|| "postgres://u:pw@host/db?x=1".to_string());
    let inspected = {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dagster_cloud.yaml");
        std::fs::write(
            &file,
            "locations:\n  - location_name: a\n    image: {{ get_env('DB') }}\n    imgae: {{ get_env('DB') }}\n",
        )
        .unwrap();
        inspect(&file, &env).unwrap()
    };
    let loc = &inspected.workspace.locations[0];
    assert_eq!(loc.entry["image"], json!("postgres://u:pw@host/db?x=1"));
    assert!(!format!("{:?}", inspected.workspace).contains("pw@host"));
    let messages: Vec<&str> = inspected
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(messages, vec!["unknown key `imgae`"]);
}
