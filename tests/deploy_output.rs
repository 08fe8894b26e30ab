//! What the CLI tells a user following the README (issue 14): where a dry run would register,
//! what each planned location was compared with, what `--location` means, listing the local
//! store, the Python-executable path's CI feedback, and a missing deployment's error. None
//! needs Docker: nothing here builds an image.

mod support;

use support::server as common;

use std::process::Command;

use dagster_deploy::deploy::LocalStore;
use dagster_deploy::server::Actor;
use serde_json::json;
use support::{Monorepo, Run};

/// `dagster-deploy ARGS` in `m` with no Dagster+ settings, no CI and no engine.
fn ours(m: &Monorepo, args: &[&str]) -> Command {
    let mut cmd = support::bin(m.path());
    cmd.args(args)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    cmd
}

/// The example with `ingest` and `analytics` in the local store's `prod`, deployed from the
/// first commit; a second commit changes nothing they build from.
fn deployed_example() -> (Monorepo, String) {
    let m = Monorepo::example("localhost:1/dagster-deploy-output");
    let first = m.git(&["rev-parse", "HEAD"]);
    // Created as `deploy` creates it (with its .gitignore), then filled directly.
    LocalStore::create(m.path(), "prod", None).unwrap();
    let docs: Vec<_> = ["ingest", "analytics"]
        .iter()
        .map(|name| {
            json!({"location_name": name, "code_source": {"package_name": name},
                   "image": format!("localhost:1/dagster-deploy-output:{name}-1"),
                   "git": {"commit_hash": first}})
        })
        .collect();
    dagster_deploy::server::Deployments::open(&m.path().join(".dagster-deploy"))
        .unwrap()
        .deploy_locations("prod", &json!({ "locations": docs }), &Actor::local("test"))
        .unwrap();
    m.write("NOTES.md", "nothing any location builds from\n");
    m.commit("notes");
    (m, first)
}

#[test]
fn a_dry_run_says_where_it_would_register_and_why_each_location_is_built() {
    let m = Monorepo::example("localhost:1/dagster-deploy-output");
    let run = Run::of(&mut ours(
        &m,
        &["deploy", "--dry-run", "--location", "ingest"],
    ));
    assert_eq!(run.code, 0, "{run}");
    let store = m.path().join(".dagster-deploy");
    assert!(
        run.stdout.contains(&format!(
            "would register in local store {} (created on first deploy)",
            store.display()
        )),
        "{run}"
    );
    // Nothing is deployed yet: ingest is built because it was named, the others because the
    // store does not run them; the output says which is which.
    assert!(
        run.stdout
            .contains("  why         named on the command line: built whatever changed"),
        "{run}"
    );
    assert!(
        run.stdout.contains("  why         not deployed yet"),
        "{run}"
    );
    assert!(
        run.stderr.contains(
            "--location ingest: built whatever changed, beside every location the plan selects"
        ),
        "{run}"
    );
    let help = Run::of(&mut ours(&m, &["deploy", "--help"]));
    let words = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("Build this location too, whatever changed (repeatable). It adds to what")
            && words.contains("it does not limit the run to this location"),
        "{help}"
    );
}

#[test]
fn plan_says_what_each_location_was_compared_with() {
    let (m, first) = deployed_example();
    let run = Run::of(&mut ours(&m, &["plan"]));
    assert_eq!(run.code, 0, "{run}");
    let store = m.path().join(".dagster-deploy");
    assert!(
        run.stdout.contains(&format!(
            "compared with what deployment prod (local store {} (deployment prod)) runs",
            store.display()
        )),
        "{run}"
    );
    let short = &first[..7];
    let row = |name: &str| {
        run.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{run}"))
            .to_string()
    };
    assert!(row("ingest").starts_with("skip "), "{run}");
    assert!(
        row("ingest").ends_with(&format!("(vs deployed {short})")),
        "{run}"
    );
    // Not in the store: built, whatever git says.
    assert!(row("ml").starts_with("build "), "{run}");
    assert!(row("ml").contains("not deployed yet"), "{run}");

    // Told to use git alone, the header says only the base.
    let git = Run::of(&mut ours(&m, &["plan", "--git-only"]));
    assert!(!git.stdout.contains("compared with what"), "{git}");
    assert!(!git.stdout.contains("vs deployed"), "{git}");
}

#[test]
fn deployment_list_and_pull_locations_read_the_local_store() {
    let m = Monorepo::example("localhost:1/dagster-deploy-output");
    let none = Run::of(&mut ours(&m, &["deployment", "list-locations"]));
    assert_eq!(none.code, 2, "{none}");
    assert!(none.stderr.contains("no local store"), "{none}");

    let (m, _) = deployed_example();
    let run = Run::of(&mut ours(&m, &["deployment", "list-locations"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        run.stdout,
        "Listing locations...\n\
         analytics\tPackage: analytics\tImage: localhost:1/dagster-deploy-output:analytics-1\n\
         ingest\tPackage: ingest\tImage: localhost:1/dagster-deploy-output:ingest-1\n",
        "{run}"
    );

    // pull-locations too: the stored documents as a workspace YAML document.
    let pulled = Run::of(&mut ours(&m, &["deployment", "pull-locations"]));
    assert_eq!(pulled.code, 0, "{pulled}");
    let doc: serde_json::Value = serde_yaml_ng::from_str(&pulled.stdout).unwrap();
    let names: Vec<&str> = doc["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["location_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["analytics", "ingest"], "{pulled}");
    assert_eq!(
        doc["locations"][1]["image"],
        "localhost:1/dagster-deploy-output:ingest-1"
    );
}

/// The Python-executable path ends like the Docker one: with nothing to deploy too, the
/// dotenv report is written for the next CI jobs.
#[test]
fn python_executables_write_the_dotenv_report_when_nothing_changed() {
    let m = Monorepo::example("localhost:1/dagster-deploy-output");
    let dotenv = m.path().join("deploy.env");
    let run = Run::of(
        ours(
            &m,
            &[
                "deploy",
                "--build-strategy",
                "python-executable",
                "--base",
                "HEAD",
                "--dotenv",
            ],
        )
        .arg(&dotenv),
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("Nothing to deploy"), "{run}");
    let head = m.git(&["rev-parse", "HEAD"]);
    let text = std::fs::read_to_string(&dotenv).unwrap_or_else(|e| panic!("{e}\n{run}"));
    assert_eq!(
        text,
        format!(
            "DAGSTER_CLOUD_DEPLOYMENT=prod\nDAGSTER_DEPLOY_IS_BRANCH_DEPLOYMENT=false\n\
             DAGSTER_DEPLOY_COMMIT={head}\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_deployment_is_named_with_the_right_hint() {
    let server = common::TestServer::start().await;
    let m = Monorepo::example("localhost:1/dagster-deploy-output");
    let url = format!("{}/nope", server.url());
    let mut cmd = ours(
        &m,
        &["deployment", "list-locations", "--deployment", "nope"],
    );
    cmd.env("DAGSTER_CLOUD_URL", &url)
        .env("DAGSTER_CLOUD_API_TOKEN", &server.token);
    let run = tokio::task::spawn_blocking(move || Run::of(&mut cmd))
        .await
        .unwrap();
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("deployment 'nope' does not exist"),
        "{run}"
    );
    assert!(
        run.stderr.contains("hint: check the deployment name"),
        "{run}"
    );
    assert!(!run.stderr.contains("does not speak"), "{run}");
    server.stop().await;
}

/// `--quiet` keeps results and warnings and drops progress; it goes anywhere on the line.
#[test]
fn quiet_keeps_the_results_and_drops_the_progress() {
    let m = Monorepo::example("localhost:1/dagster-deploy-output");
    let loud = Run::of(&mut ours(
        &m,
        &["deploy", "--dry-run", "--location", "ingest"],
    ));
    let quiet = Run::of(&mut ours(
        &m,
        &["deploy", "--dry-run", "--location", "ingest", "--quiet"],
    ));
    assert_eq!(quiet.code, 0, "{quiet}");
    assert!(!loud.stderr.is_empty(), "{loud}");
    assert_eq!(quiet.stderr, "", "{quiet}");
    assert_eq!(quiet.stdout, loud.stdout);
    // Before the command too, and winning over --verbose.
    let first = Run::of(&mut ours(
        &m,
        &["-q", "deploy", "--dry-run", "--location", "ingest", "-v"],
    ));
    assert_eq!((first.code, first.stderr.as_str()), (0, ""), "{first}");
}
