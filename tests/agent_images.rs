//! `serve`'s agent with image locations, end to end: a real code-location image (Dagster from
//! PyPI on the local `python:3.11-slim`) in the test registry, run as containers on the real
//! engine, loaded by real Dagster code servers.
//!
//! The life of a location: LOADED with a workspace entry; a revision whose import raises fails
//! with the Python traceback (ours and the reference CLI print it) while the previous revision
//! keeps serving; a killed code server is restarted; a restarted `serve` adopts what runs; a
//! deleted location and a closed branch deployment leave nothing running. And bad input: an
//! image that cannot be pulled, a module the image lacks, an unreachable engine.
//!
//! Code-server ports 41000-41199 (other agent tests use other parts of 41000-41999).

mod support;

use support::server as common;

use dagster_deploy::server::{Actor, Deployments};
use serde_json::{Value, json};
use support::agent::AgentServe;
use support::{Cleanup, services};

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The load error of `location` (`None` while loading or loaded).
fn load_error(statuses: &[(String, String, Value)], location: &str) -> Option<Value> {
    statuses
        .iter()
        .find(|(n, status, e)| {
            n == location && status == "LOADED" && e["__typename"] == "PythonError"
        })
        .map(|(_, _, e)| e.clone())
}

fn loaded(statuses: &[(String, String, Value)], location: &str) -> bool {
    statuses.iter().any(|(n, status, e)| {
        n == location && status == "LOADED" && e["__typename"] == "RepositoryLocation"
    })
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker, the registry and the Python base image (scripts/test.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_location_runs_fails_keeps_serving_restarts_is_adopted_and_goes() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let image = support::agent::location_image(&s, &mut cleanup);
    let mut serve = AgentServe::start(
        &s,
        &["--code-server-ports", "41000-41049", "--keep-code-servers"],
        &[],
    );
    let add = |module: &str| {
        vec![
            "deployment".to_string(),
            "add-location".into(),
            "app".into(),
            "--module-name".into(),
            module.into(),
            "--working-directory".into(),
            "/app".into(),
            "--image".into(),
            image.clone(),
        ]
    };

    // A location that loads: LOADED, one running container, one workspace entry.
    let good = add("good_loc");
    let run = serve.ours("prod", &strs(&good));
    assert_eq!(run.code, 0, "{run}\n{}", serve.log());
    assert!(loaded(&serve.statuses("prod").await, "app"));
    assert_eq!(serve.containers(), [("app".to_string(), true)]);
    let entries = serve.workspace("prod");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, "app");
    let port = entries[0].1;
    assert!((41000..=41049).contains(&port));
    // No privileges, no host mounts, published on loopback only, none of serve's environment.
    let ids = serve.container_ids();
    let inspect = std::process::Command::new("docker")
        .args(["inspect", &ids[0]])
        .output()
        .unwrap();
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let c = &inspect[0];
    assert_eq!(c["HostConfig"]["CapDrop"], json!(["ALL"]), "{c}");
    assert_eq!(
        c["HostConfig"]["SecurityOpt"],
        json!(["no-new-privileges"]),
        "{c}"
    );
    assert_eq!(c["Mounts"], json!([]), "{c}");
    assert_eq!(
        c["HostConfig"]["PortBindings"]["4000/tcp"][0]["HostIp"],
        "127.0.0.1"
    );
    assert_eq!(c["Config"]["Labels"]["dagster-deploy.location"], "app");
    let env = c["Config"]["Env"].to_string();
    assert!(env.contains("DAGSTER_MODULE_NAME=good_loc"), "{env}");
    assert!(
        !env.contains(&s.password) && !env.contains("REGISTRY"),
        "{env}"
    );

    // A revision whose import raises: exit 1 with the user's frame and the cause chain.
    let bad = add("bad_loc");
    let run = serve.ours("prod", &strs(&bad));
    assert_eq!(run.code, 1, "{run}");
    for needed in [
        "keeps serving",
        "DagsterUserCodeLoadError",
        "The above exception was caused by the following exception:",
        "RuntimeError: could not load config for bad_loc",
        "File \"/app/bad_loc.py\", line 5, in _load_config",
        "KeyError: 'missing_key'",
    ] {
        assert!(run.stderr.contains(needed), "missing {needed:?}:\n{run}");
    }
    // The status carries the real traceback; the previous revision keeps serving.
    let error = load_error(&serve.statuses("prod").await, "app").expect("a load error");
    assert!(
        error["message"].as_str().unwrap().contains("keeps serving"),
        "{error}"
    );
    assert!(!error["stack"].as_array().unwrap().is_empty(), "{error}");
    let chain = error["errorChain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "{error}");
    assert_eq!(chain[1]["error"]["message"], "KeyError: 'missing_key'\n");
    assert_eq!(serve.workspace("prod"), [("app".to_string(), port)]);
    // The failed revision's container is removed right after its failure is reported.
    serve
        .until("only the serving revision's container", || {
            serve.containers() == [("app".to_string(), true)]
        })
        .await;

    // The reference CLI against serve prints the same error.
    if let Some(cli) = common::reference_cli() {
        let home = tempfile::tempdir().unwrap();
        let url = format!("{}/prod", serve.url);
        let env = [
            ("DAGSTER_CLOUD_URL", url.as_str()),
            ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
            ("DAGSTER_CLOUD_API_TOKEN", serve.token.as_str()),
        ];
        let out = common::run_clean(&cli, home.path(), &strs(&bad), &env).await;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        for needed in [
            "Error loading app",
            "RuntimeError: could not load config for bad_loc",
            "File \"/app/bad_loc.py\", line 5, in _load_config",
            "KeyError: 'missing_key'",
        ] {
            assert!(
                text.contains(needed),
                "reference output lacks {needed:?}:\n{text}"
            );
        }
    }

    // Back to the good code; then kill its code server: it is restarted, same container.
    let run = serve.ours("prod", &strs(&good));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(serve.workspace("prod"), [("app".to_string(), port)]);

    // A new good revision starts beside the serving one; the workspace file lists it by the
    // time it is LOADED, and the old one goes after the grace period.
    let mut newer = good.clone();
    newer.extend(["--attribute".to_string(), "defs".to_string()]);
    let run = serve.ours("prod", &strs(&newer));
    assert_eq!(run.code, 0, "{run}");
    let switched = serve.workspace("prod");
    assert_eq!(switched.len(), 1, "{switched:?}");
    assert_ne!(
        switched[0].1, port,
        "the workspace still lists the old code server"
    );
    let port = switched[0].1;
    serve
        .until("the replaced code server to go", || {
            serve.container_ids().len() == 1
        })
        .await;
    let ids = serve.container_ids();
    assert_eq!(ids.len(), 1, "{:?}", serve.containers());
    let killed = std::process::Command::new("docker")
        .args(["kill", &ids[0]])
        .output()
        .unwrap();
    assert!(killed.status.success());
    serve
        .until("the killed code server to be restarted", || {
            serve.log().contains("restarting after exit code 137")
        })
        .await;
    let statuses = serve.settled("prod", &["app"]).await;
    assert!(loaded(&statuses, "app"), "{statuses:?}");
    assert_eq!(serve.containers(), [("app".to_string(), true)]);
    assert_eq!(serve.container_ids(), ids);

    // serve restarted with --keep-code-servers in between: adopted, not restarted, no duplicate.
    serve.stop();
    assert_eq!(serve.container_ids(), ids, "a kept code server was stopped");
    serve.restart();
    let statuses = serve.settled("prod", &["app"]).await;
    assert!(loaded(&statuses, "app"), "{statuses:?}");
    assert!(
        serve.log().contains("adopting a code server left running"),
        "{}",
        serve.log()
    );
    assert_eq!(serve.container_ids(), ids);
    assert_eq!(serve.workspace("prod"), [("app".to_string(), port)]);

    // Deleting the location stops and removes its code server and its workspace entry.
    let run = serve.ours("prod", &["deployment", "delete-location", "app"]);
    assert_eq!(run.code, 0, "{run}");
    serve
        .until("the deleted location's container to go", || {
            serve.container_ids().is_empty()
        })
        .await;
    assert!(serve.workspace("prod").is_empty());

    // Deleted while serve was down (its code server kept): the next serve removes the orphan.
    let mut other = good.clone();
    other[2] = "other".into();
    let run = serve.ours("prod", &strs(&other));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(serve.containers(), [("other".to_string(), true)]);
    serve.stop();
    Deployments::open(&serve.data)
        .unwrap()
        .delete_location("prod", "other", &Actor::local("test"))
        .unwrap();
    assert_eq!(serve.containers(), [("other".to_string(), true)]);
    serve.restart();
    serve
        .until("the orphaned code server to be removed", || {
            serve.container_ids().is_empty()
        })
        .await;
    serve
        .until("its workspace entry to go", || {
            serve.workspace("prod").is_empty()
        })
        .await;
}

const BRANCH: &str = "mutation($branchData: CreateOrUpdateBranchDeploymentInput!, $commit: DeploymentCommitInput!) {
    createOrUpdateBranchDeployment(branchData: $branchData, commit: $commit) {
        __typename ... on DagsterCloudDeployment { deploymentName } ... on PythonError { message } } }";

fn branch_vars(status: &str) -> Value {
    json!({
        "branchData": {"repoName": "org/repo", "branchName": "feat/agent", "pullRequestStatus": status,
                       "pullRequestNumber": "7"},
        "commit": {"commitHash": "c1", "timestamp": 1.5},
    })
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker, the registry and the Python base image (scripts/test.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_alone_and_a_closed_branch_deployment_stops_its_code_servers() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let image = support::agent::location_image(&s, &mut cleanup);
    let serve = AgentServe::start(&s, &["--code-server-ports", "41050-41099"], &[]);
    let body = serve.graphql("/graphql", BRANCH, branch_vars("OPEN")).await;
    let branch = body["data"]["createOrUpdateBranchDeployment"]["deploymentName"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string();

    let python = support::agent::python_image(&s, &mut cleanup);
    let missing_image = format!("{}/dagster-deploy-test/agent-no-such-image:1", s.registry);
    let document = json!({"locations": [
        {"location_name": "good", "code_source": {"module_name": "good_loc"}, "working_directory": "/app", "image": image},
        {"location_name": "nomodule", "code_source": {"module_name": "no_such_module"}, "working_directory": "/app", "image": image},
        {"location_name": "nopull", "code_source": {"module_name": "good_loc"}, "image": missing_image},
        {"location_name": "nodagster", "code_source": {"module_name": "good_loc"}, "image": python},
        {"location_name": "untrusted", "code_source": {"module_name": "good_loc"}, "image": "registry.invalid:5000/x:1"},
    ]});
    let deploy = "mutation($document: GenericScalar!) { deployLocations(document: $document) { __typename } }";
    let body = serve
        .graphql(
            &format!("/{branch}/graphql"),
            deploy,
            json!({"document": document}),
        )
        .await;
    assert_eq!(
        body["data"]["deployLocations"]["__typename"], "DeployLocationsSuccess",
        "{body}"
    );
    let statuses = serve
        .settled(
            &branch,
            &["good", "nomodule", "nopull", "nodagster", "untrusted"],
        )
        .await;
    assert!(loaded(&statuses, "good"), "{statuses:?}\n{}", serve.log());
    let message = |location: &str| {
        load_error(&statuses, location)
            .unwrap_or_else(|| panic!("{location} has no load error: {statuses:?}"))["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let nomodule = message("nomodule");
    assert!(
        nomodule.contains("No module named 'no_such_module'"),
        "{nomodule}"
    );
    let nopull = message("nopull");
    assert!(
        nopull.contains("location 'nopull'") && nopull.contains(&missing_image),
        "{nopull}"
    );
    assert!(nopull.contains("cannot pull image"), "{nopull}");
    let nodagster = message("nodagster");
    assert!(
        nodagster.contains("exited with code 127 before serving"),
        "{nodagster}"
    );
    assert!(nodagster.contains("dagster"), "{nodagster}");
    let untrusted = message("untrusted");
    assert!(
        untrusted.contains("--registry registry.invalid:5000"),
        "{untrusted}"
    );
    // Only the good one runs (failed ones are removed) and is in the workspace.
    serve
        .until("only the good location to run", || {
            serve.containers() == [("good".to_string(), true)]
        })
        .await;
    assert_eq!(
        serve
            .workspace(&branch)
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>(),
        ["good"]
    );

    // Closing the pull request stops the branch deployment's code servers.
    let body = serve
        .graphql("/graphql", BRANCH, branch_vars("CLOSED"))
        .await;
    assert_eq!(
        body["data"]["createOrUpdateBranchDeployment"]["deploymentName"],
        branch.as_str()
    );
    serve
        .until("the closed branch deployment's containers to go", || {
            serve.container_ids().is_empty()
        })
        .await;
    serve
        .until("its workspace entries to go", || {
            serve.workspace(&branch).is_empty()
        })
        .await;
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker, the registry and the Python base image (scripts/test.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_is_a_load_error_naming_the_location() {
    let Some(s) = services().await else { return };
    let serve = AgentServe::start(
        &s,
        &["--code-server-ports", "41100-41109"],
        &[("DOCKER_HOST", "tcp://127.0.0.1:1")],
    );
    let image = format!("{}/dagster-deploy-test/agent-any:1", s.registry);
    let run = serve.ours(
        "prod",
        &[
            "deployment",
            "add-location",
            "app",
            "--module-name",
            "m",
            "--image",
            &image,
        ],
    );
    assert_eq!(run.code, 1, "{run}\nserve:\n{}", serve.log());
    assert!(
        run.stderr.contains("location 'app'"),
        "{run}\nserve:\n{}",
        serve.log()
    );
    assert!(
        run.stderr
            .contains("cannot reach the Docker engine at tcp://127.0.0.1:1"),
        "{run}"
    );
    assert!(run.stderr.contains("DOCKER_HOST"), "{run}");
}
