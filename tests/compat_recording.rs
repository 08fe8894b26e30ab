//! The same command lines through the reference `dagster-cloud` CLI and through our binary,
//! each against its own fresh in-process server that records every request: both must send
//! the same operations, variables and headers (the client-version value aside), print the
//! same results and leave the same state. The reference is found through
//! `DAGSTER_CLOUD_REFERENCE`; without it this fails in CI and is skipped elsewhere.

mod support;

use support::server as common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;

use common::TestServer;
use dagster_deploy::server::ObservedRequest;
use serde_json::{Value, json};

/// What must match between the two clients, per request.
#[derive(Debug, PartialEq)]
struct Wire {
    operation_type: Option<&'static str>,
    operation_name: Option<String>,
    root_fields: Vec<String>,
    path: String,
    variables: Value,
    headers: BTreeMap<String, String>,
}

/// The protocol headers (the version's value is the client's own business).
fn wire(requests: Vec<ObservedRequest>) -> Vec<Wire> {
    requests
        .into_iter()
        .map(|r| Wire {
            operation_type: r.operation_type,
            operation_name: r.operation_name,
            root_fields: r.root_fields,
            path: r.path,
            variables: r.variables,
            headers: r
                .headers
                .into_iter()
                .filter(|(k, _)| k.starts_with("dagster-cloud-") || k == "content-type")
                .map(|(k, v)| {
                    let v = if k == "dagster-cloud-version" {
                        "<version>".to_string()
                    } else {
                        v
                    };
                    (k, v)
                })
                .collect(),
        })
        .collect()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_sends_what_the_reference_sends() {
    let Some(reference) = common::reference_cli() else {
        return;
    };
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_dagster-deploy"));
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(
        h.join("locations.yaml"),
        "locations:\n  - location_name: b\n    code_source:\n      package_name: b\n    build:\n      directory: b\n    container_context:\n      k8s:\n        env_vars: [\"X=1\"]\n",
    )
    .unwrap();
    std::fs::write(
        h.join("workspace.yaml"),
        "locations:\n  - location_name: b\n    code_source:\n      package_name: b\n    image: example.com/b:2\n  - location_name: c\n    code_source:\n      python_file: c/defs.py\n    working_directory: c\n",
    )
    .unwrap();

    let script: Vec<Vec<&str>> = vec![
        vec![
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
        vec![
            "deployment",
            "add-location",
            "--location-name",
            "z",
            "--package-name",
            "z",
        ],
        vec![
            "deployment",
            "update-location",
            "b",
            "--location-file",
            "locations.yaml",
            "--image",
            "example.com/b:1",
            "--working-directory",
            "src",
        ],
        vec!["deployment", "list-locations"],
        vec!["deployment", "pull-locations"],
        vec!["deployment", "sync-locations", "-w", "workspace.yaml"],
        vec!["deployment", "delete-location", "b"],
        vec!["deployment", "delete-location", "b"],
        vec![
            "branch-deployment",
            "create-or-update",
            "--url",
            "URL",
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
            "--base-deployment-name",
            "prod",
            "--snapshot-base-condition",
            "on-create",
        ],
        vec![
            "branch-deployment",
            "delete",
            "--deployment",
            "feature-fast-ui",
        ],
    ];

    let theirs_server = TestServer::start().await;
    let ours_server = TestServer::start().await;
    for args in &script {
        let mut outs = Vec::new();
        for (program, server) in [(&reference, &theirs_server), (&ours, &ours_server)] {
            let url = server.url();
            let args: Vec<&str> = args
                .iter()
                .map(|a| if *a == "URL" { url.as_str() } else { a })
                .collect();
            let env = [
                ("DAGSTER_CLOUD_URL", url.as_str()),
                ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
                ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
            ];
            let out = common::run_clean(program, h, &args, &env).await;
            outs.push((out, wire(server.take_requests())));
        }
        let [(theirs, theirs_wire), (ours, ours_wire)] = <[_; 2]>::try_from(outs).unwrap();
        assert!(
            !theirs_wire.is_empty(),
            "{args:?}: the reference sent nothing"
        );
        for w in &theirs_wire {
            assert_eq!(w.headers["dagster-cloud-api-token"], "<redacted>");
            assert_eq!(w.headers["dagster-cloud-version"], "<version>");
            assert_eq!(w.headers["dagster-cloud-scope"], "deployment");
        }
        assert_eq!(ours_wire, theirs_wire, "{args:?}: different requests");
        assert_eq!(ours.status.success(), theirs.status.success(), "{args:?}");
        match args[1] {
            "pull-locations" => {
                let parse = |o: &Output| -> Value { serde_yaml_ng::from_str(&stdout(o)).unwrap() };
                assert_eq!(parse(&ours), parse(&theirs));
            }
            "list-locations" | "create-or-update" => assert_eq!(stdout(&ours), stdout(&theirs)),
            "add-location" | "update-location" | "delete-location" | "sync-locations"
                if theirs.status.success() =>
            {
                let first = |o: &Output| stdout(o).lines().next().map(str::to_string);
                assert_eq!(first(&ours), first(&theirs), "{args:?}");
            }
            _ => {}
        }
    }
    assert_eq!(
        ours_server
            .server
            .deployments()
            .locations_document("prod")
            .unwrap(),
        theirs_server
            .server
            .deployments()
            .locations_document("prod")
            .unwrap()
    );
    // What sync left, minus the deleted location.
    let stored = ours_server
        .server
        .deployments()
        .locations_document("prod")
        .unwrap();
    assert_eq!(
        stored["locations"][0],
        json!({"location_name": "c", "code_source": {"python_file": "c/defs.py"}, "working_directory": "c"})
    );
    theirs_server.stop().await;
    ours_server.stop().await;
}
