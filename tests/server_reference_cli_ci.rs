//! The real reference client's `ci` commands (`dagster-cloud ci ...`) against the in-process
//! server: a session's init, set-build-output and deploy, and branch deployments created,
//! deployed to and deleted. tests/server_reference_cli_deployment.rs runs its deployment
//! commands. The CLI is found through `DAGSTER_CLOUD_REFERENCE`; without it these tests fail in
//! CI and are skipped (with a notice) elsewhere.

mod support;

use support::git_in as git;
use support::server as common;

use common::run_clean as run;
use common::{deployed_documents, operations, stored, with_reference_cli};
use serde_json::{Value, json};
use support::stdout;

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

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_session_init_set_build_output_deploy() {
    let Some((cli, server, home)) = with_reference_cli().await else {
        return;
    };
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
    let Some((cli, server, home)) = with_reference_cli().await else {
        return;
    };
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
