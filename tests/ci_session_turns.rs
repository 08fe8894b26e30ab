//! `dagster-deploy ci ...` and the reference `dagster-cloud ci ...` taking turns on ONE state
//! folder against our server: either one initialises and the other deploys, and in a pull
//! request ours creates the branch deployment the reference deploys into.
//! tests/ci_session_ours.rs covers our own `ci build` and `ci` bad-input handling. The
//! reference CLI comes from `DAGSTER_CLOUD_REFERENCE` (these tests fail without it in CI, skip
//! elsewhere).

mod support;

use support::server as common;

use std::process::Output;

use common::{deployed_documents, run_clean, stored, with_reference_cli};
use serde_json::{Value, json};
use support::session::{ours, project, state_text, text};
use support::stdout;

/// Lines sorted: the reference lists state files in directory order.
fn sorted_lines(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = stdout(out).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_init_then_ours_then_reference_deploy() {
    let Some((cli, server, home)) = with_reference_cli().await else {
        return;
    };
    let repo = project();
    let statedir = home.path().join("state");
    let (p, s) = (repo.path().to_str().unwrap(), statedir.to_str().unwrap());
    let url = server.url();
    let env = [
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_ORGANIZATION", "test"),
        ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
    ];
    let init = [
        "ci",
        "init",
        "--project-dir",
        p,
        "--deployment",
        "prod",
        "--statedir",
        s,
        "--commit-hash",
        "abc123",
        "--git-url",
        "https://git.example/c/abc123",
    ];
    assert!(
        run_clean(&cli, home.path(), &init, &env)
            .await
            .status
            .success()
    );

    // Ours reads the reference's files.
    let out = ours(home.path(), &["ci", "status", "--statedir", s], &env).await;
    assert!(out.status.success(), "{}", text(&out));
    let states: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0]["location_name"], "a");
    assert_eq!(states[1]["build"]["commit_hash"], "abc123");
    assert_eq!(states[1]["history"][0]["log"], "initialized");

    // Ours edits them: b leaves the session, a gets an image.
    let out = ours(
        home.path(),
        &["ci", "locations-deselect", "b", "--statedir", s],
        &env,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = ours(
        home.path(),
        &[
            "ci",
            "set-build-output",
            "--statedir",
            s,
            "--image-tag",
            "t1",
        ],
        &env,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("Recorded image registry.example.com/a:t1 for location a"));

    // The reference sees our edits and deploys from them.
    let out = run_clean(
        &cli,
        home.path(),
        &["ci", "locations-list", "--statedir", s],
        &env,
    )
    .await;
    assert_eq!(sorted_lines(&out), ["a", "b DESELECTED"]);
    server.take_requests();
    let out = run_clean(&cli, home.path(), &["ci", "deploy", "--statedir", s], &env).await;
    assert!(out.status.success(), "{}", text(&out));
    let sent = deployed_documents(&server.take_requests());
    assert_eq!(sent.len(), 1);
    assert_eq!(
        stored(&server),
        json!({"locations": [{
            "location_name": "a", "code_source": {"module_name": "a.defs"},
            "working_directory": "a", "image": "registry.example.com/a:t1",
            "git": {"commit_hash": "abc123", "url": "https://git.example/c/abc123"},
        }]})
    );
    assert!(!state_text(&statedir).contains(&server.token));
    server.stop().await;
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_init_then_reference_then_ours_deploy() {
    let Some((cli, server, home)) = with_reference_cli().await else {
        return;
    };
    let repo = project();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let statedir = home.path().join("state");
    let (p, s) = (repo.path().to_str().unwrap(), statedir.to_str().unwrap());
    let url = server.url();
    let env = [
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
        ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
    ];
    let init = [
        "ci",
        "init",
        "--project-dir",
        p,
        "--statedir",
        s,
        "--base",
        "HEAD~1",
    ];
    let out = ours(home.path(), &init, &env).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("- a (selected: "), "{}", text(&out));
    assert!(
        stdout(&out).contains("- b (not selected: "),
        "{}",
        text(&out)
    );
    assert_eq!(
        server.take_requests().len(),
        0,
        "outside a pull request init calls nobody"
    );

    // The reference reads our files: only the changed location is selected.
    let out = run_clean(
        &cli,
        home.path(),
        &["ci", "locations-list", "--statedir", s],
        &env,
    )
    .await;
    assert_eq!(sorted_lines(&out), ["a", "b DESELECTED"], "{}", text(&out));
    let out = run_clean(
        &cli,
        home.path(),
        &[
            "ci",
            "set-build-output",
            "--statedir",
            s,
            "--image-tag",
            "t2",
        ],
        &env,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));

    let out = ours(home.path(), &["ci", "deploy", "--statedir", s], &env).await;
    assert!(out.status.success(), "{}", text(&out));
    let sent = deployed_documents(&server.take_requests());
    assert_eq!(sent.len(), 1, "one deployLocations");
    let expected = json!({"locations": [{
        "location_name": "a", "code_source": {"module_name": "a.defs"},
        "working_directory": "a", "image": "registry.example.com/a:t2",
        "git": {"commit_hash": head},
    }]});
    assert_eq!(sent[0], expected);
    assert_eq!(stored(&server), expected);
    let out_text = text(&out);
    assert!(!out_text.contains(&server.token));
    assert!(!state_text(&statedir).contains(&server.token));

    // Both tools read the history our deploy wrote.
    let out = ours(
        home.path(),
        &[
            "ci",
            "status",
            "--statedir",
            s,
            "--output-format",
            "markdown",
        ],
        &env,
    )
    .await;
    assert!(stdout(&out).contains("| a | "), "{}", text(&out));
    assert!(stdout(&out).contains(&format!("[View in Cloud]({url}/prod/locations)")));
    assert!(!stdout(&out).contains("| b | "));
    let out = run_clean(&cli, home.path(), &["ci", "status", "--statedir", s], &env).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("deploy successful"), "{}", text(&out));
    server.stop().await;
}

/// In a GitHub pull request, our `ci init` creates the branch deployment and targets it, the
/// reference deploys into it from our files, and `ci branch-deployment --mark-closed` closes it.
#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_requests_get_a_branch_deployment() {
    let Some((cli, server, home)) = with_reference_cli().await else {
        return;
    };
    let repo = project();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let event = home.path().join("event.json");
    std::fs::write(
        &event,
        json!({"repository": {"full_name": "acme/mono", "default_branch": "main"},
               "pull_request": {"number": 12, "state": "open", "merged": false,
                                "html_url": "https://github.com/acme/mono/pull/12",
                                "head": {"ref": "feature/Fast-UI", "sha": head},
                                "base": {"sha": repo.git(&["rev-parse", "HEAD~1"])}}})
        .to_string(),
    )
    .unwrap();
    let statedir = home.path().join("state");
    let (p, s, e) = (
        repo.path().to_str().unwrap(),
        statedir.to_str().unwrap(),
        event.to_str().unwrap(),
    );
    let url = server.url();
    let github = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_PATH", e),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "acme/mono"),
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
    ];
    let out = ours(
        home.path(),
        &[
            "ci",
            "init",
            "--project-dir",
            p,
            "--statedir",
            s,
            "--deployment",
            "prod",
        ],
        &github,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out)
            .contains("Deploying to branch deployment feature-fast-ui, using base deployment prod"),
        "{}",
        text(&out)
    );
    let record = server
        .server
        .deployments()
        .deployment("feature-fast-ui")
        .unwrap();
    let branch = record.branch.unwrap();
    assert_eq!(branch.repo_name, "acme/mono");
    assert_eq!(branch.pull_request_number.as_deref(), Some("12"));
    assert_eq!(branch.pull_request_status.as_deref(), Some("OPEN"));
    assert_eq!(branch.commit.commit_hash, head);
    assert_eq!(branch.commit.commit_message.as_deref(), Some("change a"));
    let state: Value =
        serde_json::from_slice(&std::fs::read(statedir.join("location-a.json")).unwrap()).unwrap();
    assert_eq!(state["deployment_name"], "feature-fast-ui");
    assert_eq!(state["is_branch_deployment"], true);
    assert_eq!(
        state["build"]["git_url"],
        json!(format!("https://github.com/acme/mono/tree/{head}"))
    );

    // The reference deploys our session into the branch deployment (its GitHub detection
    // needs GITHUB_ACTION, which is not set: it only reads the files here).
    let plain = [
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
    ];
    let out = run_clean(
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
        &plain,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run_clean(
        &cli,
        home.path(),
        &["ci", "deploy", "--statedir", s],
        &plain,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let docs = server
        .server
        .deployments()
        .locations_document("feature-fast-ui")
        .unwrap();
    let deployed = |name: &str| {
        docs["locations"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["location_name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in the branch deployment: {docs}"))
    };
    let a = deployed("a");
    assert_eq!(a["image"], json!("registry.example.com/a:pr12"));
    assert_eq!(a["git"]["repo_name"], json!("mono"));
    // The new branch deployment held nothing, so `ci init` selected b too, though only a
    // changed (as the reference, which selects every location).
    assert_eq!(deployed("b")["image"], json!("registry.example.com/b:pr12"));
    assert_eq!(
        stored(&server),
        json!({"locations": []}),
        "prod is untouched"
    );

    let out = ours(
        home.path(),
        &["ci", "branch-deployment", p, "--mark-closed"],
        &github,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).trim(), "feature-fast-ui");
    let branch = server
        .server
        .deployments()
        .deployment("feature-fast-ui")
        .unwrap()
        .branch
        .unwrap();
    assert_eq!(branch.pull_request_status.as_deref(), Some("CLOSED"));

    // A push (no pull request) has no branch deployment: said plainly, exit 1.
    std::fs::write(&event, r#"{"repository": {"full_name": "acme/mono"}}"#).unwrap();
    let out = ours(home.path(), &["ci", "branch-deployment", p], &github).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no pull request"), "{}", text(&out));
    // On GitHub the token is announced to the runner for masking, and otherwise never printed.
    let shown = text(&out);
    assert!(
        shown.contains(&format!("::add-mask::{}", server.token)),
        "{shown}"
    );
    assert_eq!(shown.matches(&server.token).count(), 1, "{shown}");
    server.stop().await;
}
