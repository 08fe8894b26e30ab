//! `serve`'s agent with Python-executable locations: the example monorepo's `ingest` deployed
//! with `serverless deploy-python-executable` runs as a code-server process (no engine involved)
//! and is LOADED; killing it restarts it; a Python version the server lacks is a load error
//! naming the version and the fix, and the other location keeps running.
//!
//! Needs python3.11, pex and uv (`scripts/pex-tools.sh`) and PyPI; fails without them in CI.
//! Code-server ports 41200-41249.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use support::agent::AgentServe;
use support::{copy_dir, git_in, services};

fn deploy_ingest(serve: &AgentServe, repo: &Path) -> support::Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dagster-deploy"));
    cmd.current_dir(repo)
        .args(["serverless", "deploy-python-executable"])
        .args([
            "--location-file",
            "dagster_cloud.yaml",
            "--location-name",
            "ingest",
        ])
        .env("DAGSTER_CLOUD_URL", &serve.url)
        .env("DAGSTER_CLOUD_DEPLOYMENT", "prod")
        .env("DAGSTER_CLOUD_API_TOKEN", &serve.token)
        .env("DAGSTER_CLOUD_CLI_CONFIG", repo.join(".no-config"))
        .env_remove("DAGSTER_CLOUD_ORGANIZATION");
    let run = support::Run::of(&mut cmd);
    eprintln!("$ dagster-deploy serverless deploy-python-executable ingest\n{run}");
    run
}

#[cfg_attr(
    not(ci),
    ignore = "needs the services, python3.11, pex and uv (scripts/test.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_executable_location_runs_as_a_process_and_is_restarted() {
    // The services give the registry the agent is configured with (no image is used here).
    let Some(s) = services().await else { return };
    let python = Command::new("python3.11").arg("--version").output();
    assert!(
        python.is_ok_and(|o| o.status.success()),
        "python3.11 is needed on PATH (it runs the code server)"
    );
    let serve = AgentServe::start(&s, &["--code-server-ports", "41200-41249"], &[]);
    let repo = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo"),
        repo.path(),
    );
    git_in(repo.path(), &["init", "-q", "-b", "main"]);
    git_in(repo.path(), &["add", "-A"]);
    git_in(repo.path(), &["commit", "-qm", "x"]);

    let run = deploy_ingest(&serve, repo.path());
    assert_eq!(run.code, 0, "{run}\n{}", serve.log());
    assert!(run.stderr.contains("ingest loaded"), "{run}");
    let processes = serve.processes();
    assert_eq!(processes.len(), 1, "{processes:?}");
    assert_eq!(processes[0].0, "ingest");
    assert!(
        serve.containers().is_empty(),
        "a Python executable ran in a container"
    );
    let entries = serve.workspace("prod");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "ingest");
    // The code server sees none of serve's environment.
    let environ = std::fs::read(format!("/proc/{}/environ", processes[0].1)).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("DAGSTER_PACKAGE_NAME=ingest"), "{environ}");
    assert!(
        !environ.contains("DAGSTER_DEPLOY_REGISTRY_PASSWORD"),
        "{environ}"
    );
    assert!(
        !environ.contains(&s.password),
        "the registry password reached user code"
    );

    // Under root, user code runs as nobody.
    let status = std::fs::read_to_string(format!("/proc/{}/status", processes[0].1)).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .to_string();
    let me = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    if me.trim() == "0" {
        let nobody = Command::new("id")
            .args(["-u", "nobody"])
            .output()
            .unwrap()
            .stdout;
        assert_eq!(uid, String::from_utf8(nobody).unwrap().trim());
    } else {
        assert_eq!(uid, me.trim());
    }

    // Killed: restarted on the same port, LOADED again.
    let old_pid = processes[0].1;
    assert!(
        Command::new("kill")
            .args(["-KILL", &old_pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    serve
        .until("the killed code server to be restarted", || {
            serve.log().contains("restarting after exit code")
                && serve
                    .processes()
                    .iter()
                    .any(|(l, pid)| l == "ingest" && *pid != old_pid)
        })
        .await;
    let statuses = serve.settled("prod", &["ingest"]).await;
    assert!(
        statuses
            .iter()
            .any(|(n, _, e)| n == "ingest" && e["__typename"] == "RepositoryLocation"),
        "{statuses:?}\n{}",
        serve.log()
    );
    assert_eq!(serve.workspace("prod"), entries);

    // A Python the server lacks: a load error naming it; ingest keeps running.
    let docs = serve
        .graphql(
            "/prod/graphql",
            "query { locationsAsDocument { document } }",
            json!({}),
        )
        .await;
    let mut doc = docs["data"]["locationsAsDocument"]["document"]["locations"][0].clone();
    doc["location_name"] = json!("future");
    doc["pex_metadata"]["python_version"] = json!("3.99");
    let add = "mutation($document: GenericScalar!) { addOrUpdateLocationFromDocument(document: $document) { __typename } }";
    let body = serve
        .graphql("/prod/graphql", add, json!({"document": doc}))
        .await;
    assert_eq!(
        body["data"]["addOrUpdateLocationFromDocument"]["__typename"], "WorkspaceEntry",
        "{body}"
    );
    let statuses = serve.settled("prod", &["future"]).await;
    let (_, _, error) = statuses.iter().find(|(n, _, _)| n == "future").unwrap();
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("location 'future' needs Python 3.99"),
        "{message}"
    );
    assert!(message.contains("python3.99"), "{message}");
    assert_eq!(serve.processes().len(), 1);
    assert_eq!(serve.workspace("prod"), entries);
}
