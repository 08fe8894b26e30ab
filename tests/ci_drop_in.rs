//! The `ci` command lines of a real workflow, unchanged, run by the reference `dagster-cloud`
//! and by dagster-deploy against the same starting deployment: dagster-deploy must register
//! at least what the reference registers (issue 13, point 3). The reference CLI comes from
//! `DAGSTER_CLOUD_REFERENCE` (these tests fail without it in CI, skip elsewhere).

mod support;

use support::server as common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{TestServer, clean_command, reference_cli};
use dagster_deploy::server::Actor;
use serde_json::{Value, json};
use support::Monorepo;

const OURS: &str = env!("CARGO_BIN_EXE_dagster-deploy");

const YAML: &str = "\
locations:
  - location_name: a
    code_source:
      module_name: a.defs
    build:
      directory: a
      registry: registry.example.com/a
  - location_name: b
    code_source:
      package_name: b
    build:
      directory: b
      registry: registry.example.com/b
";

/// Two commits; the last changes only location `a`. Returns the repository and the first
/// commit.
fn project() -> (Monorepo, String) {
    let m = Monorepo::new();
    m.write("dagster_cloud.yaml", YAML);
    m.write("a/defs.py", "x = 1\n");
    m.write("b/setup.py", "\n");
    let first = m.commit("both");
    m.write("a/defs.py", "x = 2\n");
    m.commit("change a");
    (m, first)
}

/// Runs `steps` (each a `ci` command line) with `program` in the repository, as a workflow
/// does, against `server`'s `prod`; every step must succeed.
async fn run_steps(program: &Path, repo: &Monorepo, server: &TestServer, steps: &[&[&str]]) {
    let home = tempfile::tempdir().unwrap();
    let statedir = home.path().join("state");
    let url = server.url();
    let env = [
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_ORGANIZATION", "test"),
        ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
        ("DAGSTER_BUILD_STATEDIR", statedir.to_str().unwrap()),
    ];
    for args in steps {
        let mut cmd = clean_command(program, home.path(), args, &env);
        cmd.current_dir(repo.path());
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let shown = format!(
            "$ {} {}\n{}{}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{shown}");
        assert!(out.status.success(), "{shown}");
    }
}

/// Each registered location's image in `prod`.
fn images(server: &TestServer) -> BTreeMap<String, String> {
    let doc = server
        .server
        .deployments()
        .locations_document("prod")
        .unwrap();
    doc["locations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let name = l["location_name"].as_str().unwrap_or_default().to_string();
            (name, l["image"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// `ci init && ci set-build-output --image-tag t1 && ci deploy` against a deployment that
/// holds nothing: the reference registers both locations, so must we, though git saw only
/// `a` change.
#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_holding_nothing_gets_every_location() {
    let Some(reference) = reference_cli() else {
        return;
    };
    let (repo, _) = project();
    let steps: &[&[&str]] = &[
        &["ci", "init", "--project-dir", ".", "--deployment", "prod"],
        &["ci", "set-build-output", "--image-tag", "t1"],
        &["ci", "deploy"],
    ];
    let mut registered = Vec::new();
    for program in [reference.as_path(), Path::new(OURS)] {
        let server = TestServer::start().await;
        run_steps(program, &repo, &server, steps).await;
        registered.push(images(&server));
        server.stop().await;
    }
    let expected: BTreeMap<String, String> = [
        ("a".to_string(), "registry.example.com/a:t1".to_string()),
        ("b".to_string(), "registry.example.com/b:t1".to_string()),
    ]
    .into();
    assert_eq!(registered[0], expected, "the reference");
    assert_eq!(registered[1], expected, "dagster-deploy");
}

/// A workflow's own path filter decides what changed: `ci set-build-output --location-name b`
/// and `ci deploy --location-name b`, where `b` runs in the deployment at the previous commit
/// and git sees no change to it. The reference registers `b`; so must we.
#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_named_on_the_command_line_is_always_acted_on() {
    let Some(reference) = reference_cli() else {
        return;
    };
    let (repo, first) = project();
    let steps: &[&[&str]] = &[
        &[
            "ci",
            "init",
            "--project-dir",
            ".",
            "--dagster-cloud-yaml-path",
            "dagster_cloud.yaml",
            "--deployment",
            "prod",
        ],
        &[
            "ci",
            "set-build-output",
            "--location-name",
            "b",
            "--image-tag=t2",
        ],
        &["ci", "deploy", "--location-name", "b"],
    ];
    let mut registered = Vec::new();
    for program in [reference.as_path(), Path::new(OURS)] {
        let server = TestServer::start().await;
        // Both locations run in prod, deployed from the first commit.
        let deployed: Vec<Value> = ["a", "b"]
            .iter()
            .map(|name| {
                json!({"location_name": name, "code_source": {"module_name": name},
                       "image": format!("registry.example.com/{name}:t1"),
                       "git": {"commit_hash": first}})
            })
            .collect();
        server
            .server
            .deployments()
            .deploy_locations(
                "prod",
                &json!({ "locations": deployed }),
                &Actor::local("test"),
            )
            .unwrap();
        run_steps(program, &repo, &server, steps).await;
        registered.push(images(&server));
        server.stop().await;
    }
    let expected: BTreeMap<String, String> = [
        ("a".to_string(), "registry.example.com/a:t1".to_string()),
        ("b".to_string(), "registry.example.com/b:t2".to_string()),
    ]
    .into();
    assert_eq!(registered[0], expected, "the reference");
    assert_eq!(registered[1], expected, "dagster-deploy");
}
