//! The real reference client (`dagster-cloud` CLI) against the in-process server. The CLI is
//! found through `DAGSTER_CLOUD_REFERENCE`; without it these tests fail in CI and are skipped
//! (with a notice) elsewhere.

mod support;

use support::git_in as git;
use support::server as common;

use std::path::Path;
use std::process::Output;

use common::TestServer;
use serde_json::{Value, json};

use common::reference_cli;

/// Runs the CLI with a clean environment (no CI variables, no user config) plus `env`.
async fn run(cli: &Path, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    common::run_clean(cli, home, args, env).await
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

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
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

const DAGSTER_CLOUD_YAML: &str = "\
locations:
  - location_name: a
    code_source:
      module_name: a.defs
    working_directory: a
    build:
      directory: a
      registry: registry.example.com/a
  - location_name: b
    code_source:
      package_name: b
    build:
      registry: registry.example.com/b
    container_context:
      k8s:
        env_vars:
          - X=1
";

/// The documents of a `{"locations": [...]}` by location name.
fn by_name(doc: &Value) -> std::collections::BTreeMap<String, Value> {
    doc["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["location_name"].as_str().unwrap().to_string(), l.clone()))
        .collect()
}

/// The `document` variable of each recorded `deployLocations`.
fn deployed_documents(requests: &[dagster_deploy::server::ObservedRequest]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.root_fields == ["deployLocations"])
        .map(|r| r.variables["document"].clone())
        .collect()
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_session_init_set_build_output_deploy() {
    let Some(cli) = reference_cli() else { return };
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("dagster_cloud.yaml"), DAGSTER_CLOUD_YAML).unwrap();
    let statedir = home.path().join("state");
    let (project, statedir) = (project.to_str().unwrap(), statedir.to_str().unwrap());
    let url = server.url();
    let env = [
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_ORGANIZATION", "test"),
        ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
    ];

    let out = run(
        &cli,
        home.path(),
        &[
            "ci",
            "init",
            "--project-dir",
            project,
            "--deployment",
            "prod",
            "--statedir",
            statedir,
            "--commit-hash",
            "abc123",
            "--git-url",
            "https://git.example/c/abc123",
        ],
        &env,
    )
    .await;
    assert!(out.status.success());
    // Outside a pull request, init talks to nobody.
    assert_eq!(operations(&server), vec![]);

    let out = run(
        &cli,
        home.path(),
        &[
            "ci",
            "set-build-output",
            "--statedir",
            statedir,
            "--image-tag",
            "t1",
        ],
        &env,
    )
    .await;
    assert!(out.status.success());

    let out = run(
        &cli,
        home.path(),
        &["ci", "deploy", "--statedir", statedir],
        &env,
    )
    .await;
    assert!(out.status.success());
    let expected = json!({"locations": [
        {"location_name": "a", "code_source": {"module_name": "a.defs"}, "working_directory": "a",
         "image": "registry.example.com/a:t1",
         "git": {"commit_hash": "abc123", "url": "https://git.example/c/abc123"}},
        {"location_name": "b", "code_source": {"package_name": "b"},
         "container_context": {"k8s": {"env_vars": ["X=1"]}},
         "image": "registry.example.com/b:t1",
         "git": {"commit_hash": "abc123", "url": "https://git.example/c/abc123"}},
    ]});
    let requests = server.take_requests();
    let sent = deployed_documents(&requests);
    assert_eq!(sent.len(), 1);
    // Stored exactly as sent (in the CLI's order, which follows its state files).
    assert_eq!(stored(&server), sent[0]);
    assert_eq!(by_name(&sent[0]), by_name(&expected));
    let ops: Vec<_> = requests
        .iter()
        .map(|r| {
            (
                r.root_fields.join(","),
                r.path.clone(),
                r.deployment_header.clone(),
            )
        })
        .collect();
    let prod = Some("prod".to_string());
    assert_eq!(
        ops,
        vec![
            (
                "deployLocations".into(),
                "/prod/graphql".into(),
                prod.clone()
            ),
            (
                "currentDeployment".into(),
                "/prod/graphql".into(),
                prod.clone()
            ),
            ("agents".into(), "/prod/graphql".into(), prod.clone()),
            (
                "workspaceOrError".into(),
                "/prod/graphql".into(),
                prod.clone()
            ),
            // Usage metrics go to the organisation URL.
            ("markCliEvent".into(), "/graphql".into(), None),
        ]
    );
    server.stop().await;
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_deployments_create_deploy_delete() {
    let Some(cli) = reference_cli() else { return };
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let url = server.url();
    let token_env = [("DAGSTER_CLOUD_API_TOKEN", server.token.as_str())];

    let out = run(
        &cli,
        home.path(),
        &[
            "branch-deployment",
            "create-or-update",
            "--url",
            &url,
            "--git-repo-name",
            "org/repo",
            "--branch-name",
            "feature/Fast-UI",
            "--commit-hash",
            "c1",
            "--timestamp",
            "1700000000.5",
            "--pull-request-url",
            "https://git.example/pr/12",
            "--pull-request-id",
            "12",
            "--pull-request-status",
            "OPEN",
            "--commit-message",
            "Make it fast",
            "--author-name",
            "Ada",
            "--author-email",
            "ada@example.com",
        ],
        &token_env,
    )
    .await;
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "feature-fast-ui");
    let requests = server.take_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].root_fields, ["createOrUpdateBranchDeployment"]);
    assert_eq!(
        (
            requests[0].path.as_str(),
            requests[0].deployment_header.as_deref()
        ),
        ("/graphql", None)
    );
    assert_eq!(
        requests[0].variables["branchData"]["pullRequestNumber"],
        json!("12")
    );
    assert_eq!(
        requests[0].variables["commit"]["timestamp"],
        json!(1700000000.5)
    );
    let record = server
        .server
        .deployments()
        .deployment("feature-fast-ui")
        .unwrap();
    let branch = record.branch.unwrap();
    assert_eq!(
        (branch.repo_name.as_str(), branch.branch_name.as_str()),
        ("org/repo", "feature/Fast-UI")
    );
    assert_eq!(branch.pull_request_number.as_deref(), Some("12"));
    assert_eq!(branch.pull_request_status.as_deref(), Some("OPEN"));
    assert_eq!(branch.commit.commit_hash, "c1");
    assert_eq!(
        branch.commit.commit_message.as_deref(),
        Some("Make it fast")
    );

    // A CI session on the same branch (read from git) lands in that branch deployment.
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("dagster_cloud.yaml"), DAGSTER_CLOUD_YAML).unwrap();
    git(&project, &["init", "-q", "-b", "feature/Fast-UI"]);
    git(
        &project,
        &["remote", "add", "origin", "https://github.com/org/repo.git"],
    );
    git(&project, &["add", "."]);
    git(&project, &["commit", "-qm", "Second commit"]);
    let statedir = home.path().join("state");
    let (p, s) = (project.to_str().unwrap(), statedir.to_str().unwrap());
    let env = [
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_ORGANIZATION", "test"),
        ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
    ];
    let out = run(
        &cli,
        home.path(),
        &[
            "ci",
            "init",
            "--project-dir",
            p,
            "--statedir",
            s,
            "--location-name",
            "b",
            "--require-branch-deployment",
        ],
        &env,
    )
    .await;
    assert!(out.status.success());
    assert!(stdout(&out).contains("Deploying to branch deployment feature-fast-ui"));
    let branch = server
        .server
        .deployments()
        .deployment("feature-fast-ui")
        .unwrap()
        .branch
        .unwrap();
    assert_eq!(
        branch.commit.commit_message.as_deref(),
        Some("Second commit")
    );
    assert_ne!(branch.commit.commit_hash, "c1");
    run(
        &cli,
        home.path(),
        &[
            "ci",
            "set-build-output",
            "--statedir",
            s,
            "--image-tag",
            "pr12",
        ],
        &env,
    )
    .await;
    let out = run(&cli, home.path(), &["ci", "deploy", "--statedir", s], &env).await;
    assert!(out.status.success());
    let docs = server
        .server
        .deployments()
        .locations_document("feature-fast-ui")
        .unwrap();
    assert_eq!(
        docs["locations"][0]["image"],
        json!("registry.example.com/b:pr12")
    );
    assert_eq!(docs["locations"][0]["git"]["repo_name"], json!("repo"));
    assert_eq!(
        stored(&server),
        json!({"locations": []}),
        "prod is untouched"
    );
    server.take_requests();

    let out = run(
        &cli,
        home.path(),
        &[
            "branch-deployment",
            "delete",
            "--deployment",
            "feature-fast-ui",
        ],
        &env,
    )
    .await;
    assert!(out.status.success());
    let fields: Vec<_> = server
        .take_requests()
        .into_iter()
        .map(|r| r.root_fields.join(","))
        .collect();
    assert_eq!(fields, ["deploymentByName", "deleteDeployment"]);
    assert!(
        server
            .server
            .deployments()
            .deployment("feature-fast-ui")
            .is_err()
    );
    server.stop().await;
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_a_clear_message() {
    let Some(cli) = reference_cli() else { return };
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
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
