//! The real reference client (`dagster-cloud` CLI) against the in-process server. The CLI is
//! found through `DAGSTER_CLOUD_REFERENCE`; without it these tests fail in CI and are skipped
//! (with a notice) elsewhere.

#[path = "server_common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::TestServer;
use serde_json::{Value, json};

fn reference_cli() -> Option<PathBuf> {
    match std::env::var_os("DAGSTER_CLOUD_REFERENCE") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("DAGSTER_CLOUD_REFERENCE must point at the dagster-cloud executable in CI")
        }
        None => {
            eprintln!(
                "notice: skipping reference CLI test: set DAGSTER_CLOUD_REFERENCE to the \
                 dagster-cloud executable to run it"
            );
            None
        }
    }
}

/// Runs the CLI with a clean environment (no CI variables, no user config) plus `env`.
async fn run(cli: &Path, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(cli);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .env("DAGSTER_CLOUD_CLI_CONFIG", home.join("no-config.yaml"))
        .current_dir(home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    eprintln!(
        "$ dagster-cloud {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(operation type, root field, path, deployment header)` of each recorded request.
fn operations(server: &TestServer) -> Vec<(String, String, String, Option<String>)> {
    server
        .take_requests()
        .into_iter()
        .map(|r| {
            (
                r.operation_type.unwrap_or("?").to_string(),
                r.root_fields.join(","),
                r.path,
                r.deployment_header,
            )
        })
        .collect()
}

fn op(
    kind: &str,
    field: &str,
    path: &str,
    deployment: Option<&str>,
) -> (String, String, String, Option<String>) {
    (
        kind.to_string(),
        field.to_string(),
        path.to_string(),
        deployment.map(str::to_string),
    )
}

fn stored(server: &TestServer) -> Value {
    server
        .server
        .deployments()
        .locations_document("prod")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_commands_work_unchanged() {
    let Some(cli) = reference_cli() else { return };
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let url = server.url();
    let env = [
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
        ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
    ];

    let out = run(
        &cli,
        home.path(),
        &[
            "deployment",
            "add-location",
            "a",
            "--module-name",
            "a_pkg.defs",
            "--image",
            "example.com/a:1",
            "--commit-hash",
            "abc",
            "--git-url",
            "https://git.example/a",
        ],
        &env,
    )
    .await;
    assert!(out.status.success());
    assert!(stdout(&out).contains("Added or updated location a."));
    assert_eq!(
        stored(&server),
        json!({"locations": [{
            "location_name": "a",
            "code_source": {"module_name": "a_pkg.defs"},
            "image": "example.com/a:1",
            "git": {"commit_hash": "abc", "url": "https://git.example/a"},
        }]})
    );
    assert_eq!(
        operations(&server),
        vec![
            op(
                "mutation",
                "addOrUpdateLocationFromDocument",
                "/graphql",
                Some("prod")
            ),
            op("query", "agents", "/graphql", Some("prod")),
            op("query", "workspaceOrError", "/graphql", Some("prod")),
        ]
    );

    let out = run(&cli, home.path(), &["deployment", "list-locations"], &env).await;
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("a\tImage: example.com/a:1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        operations(&server),
        vec![op("query", "workspace", "/graphql", Some("prod"))]
    );

    let workspace = home.path().join("workspace.yaml");
    std::fs::write(
        &workspace,
        "locations:\n  - location_name: b\n    code_source:\n      package_name: b\n    image: example.com/b:2\n  - location_name: c\n    code_source:\n      python_file: c/defs.py\n    working_directory: c\n",
    )
    .unwrap();
    let out = run(
        &cli,
        home.path(),
        &[
            "deployment",
            "sync-locations",
            "-w",
            workspace.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("Synced locations: b, c"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stored(&server),
        json!({"locations": [
            {"location_name": "b", "code_source": {"package_name": "b"}, "image": "example.com/b:2"},
            {"location_name": "c", "code_source": {"python_file": "c/defs.py"}, "working_directory": "c"},
        ]})
    );
    assert_eq!(
        operations(&server),
        vec![
            op(
                "mutation",
                "reconcileLocationsFromDocument",
                "/graphql",
                Some("prod")
            ),
            op("query", "agents", "/graphql", Some("prod")),
            op("query", "workspaceOrError", "/graphql", Some("prod")),
        ]
    );

    let out = run(
        &cli,
        home.path(),
        &["deployment", "delete-location", "b"],
        &env,
    )
    .await;
    assert!(out.status.success());
    assert!(stdout(&out).contains("Deleted location b."));
    assert_eq!(stored(&server)["locations"][0]["location_name"], json!("c"));
    assert_eq!(
        operations(&server),
        vec![op("mutation", "deleteLocation", "/graphql", Some("prod"))]
    );

    // Deleting again: the CLI reports the server's error and fails.
    let out = run(
        &cli,
        home.path(),
        &["deployment", "delete-location", "b"],
        &env,
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("location 'b' does not exist in deployment 'prod'")
            || stdout(&out).contains("location 'b' does not exist in deployment 'prod'")
    );

    server.stop().await;
}
