//! The real reference client (`dagster-cloud` CLI) against the in-process server: its
//! deployment commands work unchanged, bad tokens get a clear message, and a missing image is
//! reported as a load failure. tests/server_reference_cli_ci.rs runs its `ci` commands. The
//! CLI is found through `DAGSTER_CLOUD_REFERENCE`; without it these tests fail in CI and are
//! skipped (with a notice) elsewhere.

mod support;

use support::server as common;

use common::run_clean as run;
use common::{TestServer, operations, reference_cli, stored, with_reference_cli};
use serde_json::json;
use support::stdout;

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

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_commands_work_unchanged() {
    let Some((cli, server, home)) = with_reference_cli().await else {
        return;
    };
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

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_a_clear_message() {
    let Some((cli, server, home)) = with_reference_cli().await else {
        return;
    };
    let url = server.url();
    let out = run(
        &cli,
        home.path(),
        &["deployment", "add-location", "a", "--module-name", "a"],
        &[
            ("DAGSTER_CLOUD_URL", url.as_str()),
            ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
            ("DAGSTER_CLOUD_API_TOKEN", "ddp_not-a-real-token"),
        ],
    )
    .await;
    assert!(!out.status.success());
    let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(
        all.contains("Unauthorized: the API token is not valid"),
        "{all}"
    );
    assert_eq!(stored(&server), json!({"locations": []}));
    server.stop().await;
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_reported_as_a_load_failure() {
    let Some(cli) = reference_cli() else { return };
    let registry = common::FakeRegistry::start(true, &["app:1"]).await;
    let server = TestServer::start_with(Some(registry.access("secret"))).await;
    let home = tempfile::tempdir().unwrap();
    let url = server.url();
    let env = [
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
        ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
    ];
    let good = registry.image("app:1");
    let out = run(
        &cli,
        home.path(),
        &[
            "deployment",
            "add-location",
            "ok",
            "--module-name",
            "ok",
            "--image",
            &good,
        ],
        &env,
    )
    .await;
    assert!(out.status.success());

    let missing = registry.image("app:2");
    let out = run(
        &cli,
        home.path(),
        &[
            "deployment",
            "add-location",
            "bad",
            "--module-name",
            "bad",
            "--image",
            &missing,
        ],
        &env,
    )
    .await;
    assert!(!out.status.success());
    let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(
        all.contains("Some locations failed to load after being synced by the agent:")
            && all.contains(&format!("image '{missing}' was not found in registry")),
        "{all}"
    );
    server.stop().await;
}
