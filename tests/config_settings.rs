//! `dagster-deploy.toml`: parsing, diagnostics and `Settings::for_location`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dagster_deploy::config::{
    ConfigError, Diagnostic, LocationSettings, Settings, Source, Workspace, parse,
};

const YAML: &str = "locations:\n  - location_name: etl\n  - location_name: ml\n";

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(yaml: &str, toml: &str) -> Result<Workspace, ConfigError> {
    let source = Source {
        file: Path::new("repo/dagster_cloud.yaml"),
        root: Path::new("repo"),
        yaml,
        settings_toml: Some(toml),
    };
    parse(&source, &no_env)
}

fn diagnostics(yaml: &str, toml: &str) -> Vec<Diagnostic> {
    match load(yaml, toml) {
        Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics,
        other => panic!("expected diagnostics, got {other:?}"),
    }
}

/// `line:column [field] message | hint` for compact exact assertions.
fn lines(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}:{} [{}] {} | {}",
                d.line, d.column, d.field, d.message, d.hint
            )
        })
        .collect()
}

#[test]
fn reads_defaults_and_locations() {
    let ws = load(
        YAML,
        r#"
[defaults]
watch = ["shared/**"]
ignore = ["**/*.md", "docs/**"]
dockerfile = "Dockerfile"
build_args = { PIP_INDEX_URL = "https://pypi.example.com", MODE = "prod" }
python_version = "3.11"
base_image = "python:3.11-slim"

[locations.etl]
watch = ["libs/etl-utils", "shared/**"]
ignore = ["**/*.md", "**/*.ipynb"]
build_args = { MODE = "etl" }
target = "runtime"
platform = "linux/amd64"
python_version = "3.12"
"#,
    )
    .unwrap();
    let expected_defaults = LocationSettings {
        watch: vec!["shared/**".into()],
        ignore: vec!["**/*.md".into(), "docs/**".into()],
        context: None,
        dockerfile: Some("Dockerfile".into()),
        build_args: BTreeMap::from([
            ("MODE".into(), "prod".into()),
            ("PIP_INDEX_URL".into(), "https://pypi.example.com".into()),
        ]),
        target: None,
        platform: None,
        python_version: Some("3.11".into()),
        base_image: Some("python:3.11-slim".into()),
        secrets: Vec::new(),
    };
    assert_eq!(ws.settings.defaults, expected_defaults);
    assert_eq!(ws.settings.locations.len(), 1);

    // Lists add to the defaults without repeats, build args merge by name, options override.
    let etl = ws.settings.for_location("etl");
    assert_eq!(etl.watch, vec!["shared/**", "libs/etl-utils"]);
    assert_eq!(etl.ignore, vec!["**/*.md", "docs/**", "**/*.ipynb"]);
    assert_eq!(etl.build_args["MODE"], "etl");
    assert_eq!(etl.build_args["PIP_INDEX_URL"], "https://pypi.example.com");
    assert_eq!(etl.dockerfile.as_deref(), Some("Dockerfile"));
    assert_eq!(etl.target.as_deref(), Some("runtime"));
    assert_eq!(etl.platform.as_deref(), Some("linux/amd64"));
    assert_eq!(etl.python_version.as_deref(), Some("3.12"));
    assert_eq!(etl.base_image.as_deref(), Some("python:3.11-slim"));

    // A location without a table gets the defaults as they are.
    assert_eq!(ws.settings.for_location("ml"), expected_defaults);
}

#[test]
fn no_settings_file_means_empty_settings() {
    let source = Source {
        file: Path::new("dagster_cloud.yaml"),
        root: Path::new("."),
        yaml: YAML,
        settings_toml: None,
    };
    let ws = parse(&source, &no_env).unwrap();
    assert_eq!(ws.settings, Settings::default());
    assert_eq!(ws.settings.for_location("etl"), LocationSettings::default());
}

#[test]
fn for_location_without_defaults() {
    let settings = Settings {
        defaults: LocationSettings::default(),
        locations: BTreeMap::from([(
            "a".to_string(),
            LocationSettings {
                dockerfile: Some("a/Dockerfile.prod".into()),
                ..LocationSettings::default()
            },
        )]),
        ..Settings::default()
    };
    assert_eq!(
        settings.for_location("a").dockerfile.as_deref(),
        Some("a/Dockerfile.prod")
    );
    assert_eq!(settings.for_location("b"), LocationSettings::default());
}

#[test]
fn every_problem_is_reported_with_its_toml_position() {
    let toml = r#"[defaults]
watch = "shared"
ignore = ["**/*.md", "src/[", 5]
dockerfil = "Dockerfile"
python_version = 3.11
build_args = { A = "1", B = 2 }

[locations.etl]
platform = true

[locations.etll]
target = "x"

[locations.nothing_like_it]

[extra]
"#;
    let found = diagnostics(YAML, toml);
    assert!(
        found
            .iter()
            .all(|d| d.file == Path::new("repo/dagster-deploy.toml"))
    );
    assert_eq!(
        lines(&found),
        vec![
            "2:9 [defaults.watch] `watch` must be a list of strings, found a string | write it as a list, e.g. `watch = [\"docs/**\"]`",
            "3:22 [defaults.ignore[1]] invalid glob `src/[`: unclosed character class; missing ']' | fix the pattern (globs use `*`, `**`, `?`, `[...]` and `{a,b}`)",
            "3:31 [defaults.ignore[2]] entries of `ignore` must be strings, found an integer | quote the entry",
            "4:1 [defaults.dockerfil] unknown key `dockerfil` | did you mean `dockerfile`?",
            "5:18 [defaults.python_version] `python_version` must be a string, found a float | quote the value: `python_version = \"3.11\"`",
            "6:29 [defaults.build_args.B] build argument `B` must be a string, found an integer | quote the value: `B = \"2\"`",
            "9:12 [locations.etl.platform] `platform` must be a string, found a boolean | quote the value: `platform = \"true\"`",
            "11:12 [locations.etll] `[locations.etll]` names no location of dagster_cloud.yaml | did you mean `etl`?",
            "14:12 [locations.nothing_like_it] `[locations.nothing_like_it]` names no location of dagster_cloud.yaml | locations in dagster_cloud.yaml: `etl`, `ml`",
            "16:2 [extra] unknown key `extra` | allowed keys here: `defaults`, `locations`",
        ]
    );
}

#[test]
fn toml_syntax_errors_are_positioned() {
    let found = diagnostics(YAML, "[defaults]\nwatch = [\"a\"\nignore = []\n");
    assert!(!found.is_empty());
    assert!(
        found[0].message.starts_with("invalid TOML: "),
        "{:?}",
        found[0]
    );
    assert_eq!(found[0].hint, "fix the TOML syntax at this position");
    assert_eq!(found[0].field, "");
    assert_eq!(found[0].file, Path::new("repo/dagster-deploy.toml"));
    assert_eq!((found[0].line, found[0].column), (3, 1));
}

#[test]
fn wrong_table_shapes() {
    let found = diagnostics(YAML, "defaults = 1\nlocations = { etl = \"x\" }\n");
    assert_eq!(
        lines(&found),
        vec![
            "1:12 [defaults] `defaults` must be a table, found an integer | write it as a `[defaults]` table",
            "2:21 [locations.etl] `locations.etl` must be a table, found a string | write it as a `[locations.etl]` table",
        ]
    );
}

#[test]
fn yaml_and_toml_problems_are_reported_together_sorted_by_file() {
    let yaml = "locations:\n  - location_name: etl\n    imag: x\n";
    let toml = "[locations.etl]\nwatchh = []\n";
    let found = diagnostics(yaml, toml);
    let files: Vec<PathBuf> = found.iter().map(|d| d.file.clone()).collect();
    assert_eq!(
        files,
        vec![
            PathBuf::from("repo/dagster-deploy.toml"),
            PathBuf::from("repo/dagster_cloud.yaml"),
        ]
    );
    assert_eq!(found[0].message, "unknown key `watchh`");
    assert_eq!(found[1].message, "unknown key `imag`");
}

#[test]
fn location_names_are_not_checked_when_the_yaml_does_not_give_them_all() {
    // With a nameless location we cannot tell which `[locations.X]` tables are stale.
    let yaml = "locations:\n  - location_name: etl\n  - image: x\n";
    let found = diagnostics(yaml, "[locations.other]\n");
    assert_eq!(
        lines(&found),
        vec![
            "3:5 [locations[1].location_name] missing required key `location_name` | add `location_name: <name>` to this location",
        ]
    );
}

#[test]
fn secrets_and_context_are_read_and_bad_secrets_are_positioned() {
    let ws = load(
        YAML,
        "[defaults]\nsecrets = [\"id=pypi,env=PYPI_TOKEN\"]\n\
         [locations.etl]\ncontext = \"etl/..\"\nsecrets = [\"id=netrc,src=/run/netrc\"]\n",
    )
    .unwrap();
    let etl = ws.settings.for_location("etl");
    assert_eq!(etl.context.as_deref(), Some("etl/.."));
    assert_eq!(
        etl.secrets,
        ["id=pypi,env=PYPI_TOKEN", "id=netrc,src=/run/netrc"]
    );
    assert_eq!(ws.settings.for_location("ml").context, None);

    let found = diagnostics(
        YAML,
        "[locations.ml]\nsecrets = [\"env=TOKEN\", 3]\n[locations.etl]\nsecrets = \"id=a\"\n",
    );
    assert_eq!(
        lines(&found),
        [
            "2:12 [locations.ml.secrets[0]] invalid secret `env=TOKEN`: missing `id=` | write \
             `id=ID,env=VAR` (an environment variable) or `id=ID,src=FILE` (a file), as for \
             `docker buildx build --secret`",
            "2:25 [locations.ml.secrets[1]] entries of `secrets` must be strings, found an \
             integer | quote the entry",
            "4:11 [locations.etl.secrets] `secrets` must be a list of strings, found a string | \
             write it as a list, e.g. `secrets = [\"id=pypi,env=PYPI_TOKEN\"]`",
        ]
    );
}
