//! `dagster-deploy ci ...` and the reference `dagster-cloud ci ...` taking turns on ONE state
//! folder against our server, and `ci` bad-input handling. The reference CLI comes from
//! `DAGSTER_CLOUD_REFERENCE` (these tests fail without it in CI, skip elsewhere).

mod support;

use support::server as common;

use std::path::Path;
use std::process::Output;

use common::{TestServer, reference_cli, run_clean};
use serde_json::{Value, json};
use support::Monorepo;

const YAML: &str = "\
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
      directory: b
      registry: registry.example.com/b
    container_context:
      k8s:
        env_vars:
          - X=1
";

const OURS: &str = env!("CARGO_BIN_EXE_dagster-deploy");

/// A repository whose last commit changes only location `a`.
fn project() -> Monorepo {
    let m = Monorepo::new();
    m.write("dagster_cloud.yaml", YAML);
    m.write("a/defs.py", "x = 1\n");
    m.write("b/setup.py", "\n");
    m.commit("both");
    m.write("a/defs.py", "x = 2\n");
    m.commit("change a");
    m
}

async fn ours(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_clean(Path::new(OURS), home, args, env).await
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Lines sorted: the reference lists state files in directory order.
fn sorted_lines(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = stdout(out).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stored(server: &TestServer) -> Value {
    server
        .server
        .deployments()
        .locations_document("prod")
        .unwrap()
}

fn deploy_requests(server: &TestServer) -> Vec<Value> {
    server
        .take_requests()
        .into_iter()
        .filter(|r| r.root_fields == ["deployLocations"])
        .map(|r| r.variables["document"].clone())
        .collect()
}

/// Every file of the state folder, concatenated.
fn state_text(statedir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(statedir).unwrap() {
        all.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    all
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_init_then_ours_then_reference_deploy() {
    let Some(cli) = reference_cli() else { return };
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
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
    let sent = deploy_requests(&server);
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
    let Some(cli) = reference_cli() else { return };
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
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
    let sent = deploy_requests(&server);
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

/// No server: every one of these fails before any request.
#[tokio::test]
async fn bad_input_is_named_with_a_fix() {
    let home = tempfile::tempdir().unwrap();
    let repo = project();
    let statedir = home.path().join("state");
    let (p, s) = (repo.path().to_str().unwrap(), statedir.to_str().unwrap());
    let env = [
        ("DAGSTER_CLOUD_URL", "http://127.0.0.1:9"),
        ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
        ("DAGSTER_CLOUD_API_TOKEN", "s3cret-token"),
    ];

    let out = ours(home.path(), &["ci", "status"], &env).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--statedir"), "{}", text(&out));
    assert!(text(&out).contains("DAGSTER_BUILD_STATEDIR"));

    let out = ours(home.path(), &["ci", "deploy", "--statedir", s], &env).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains(s) && text(&out).contains("ci init"),
        "{}",
        text(&out)
    );

    let out = ours(
        home.path(),
        &[
            "ci",
            "init",
            "--project-dir",
            p,
            "--statedir",
            s,
            "--location-name",
            "nope",
        ],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("--location-name nope"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("known locations: a, b"));

    let init = ["ci", "init", "--project-dir", p, "--statedir", s, "--all"];
    let out = ours(home.path(), &init, &env).await;
    assert!(out.status.success(), "{}", text(&out));

    // Nothing built: deploy refuses and names them.
    let out = ours(home.path(), &["ci", "deploy", "--statedir", s], &env).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("not been built: a, b"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("set-build-output"));

    let out = ours(
        home.path(),
        &[
            "ci",
            "set-build-output",
            "--statedir",
            s,
            "--image-tag",
            "t",
            "--location-name",
            "zz",
        ],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("zz") && text(&out).contains("locations-list"),
        "{}",
        text(&out)
    );

    let file = statedir.join("location-b.json");
    std::fs::write(&file, "{not json").unwrap();
    let out = ours(
        home.path(),
        &["ci", "locations-list", "--statedir", s],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(file.to_str().unwrap()),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("not a valid location state file"));
    assert!(text(&out).contains("ci init"));

    assert!(!state_text(&statedir).contains("s3cret-token"));
}

/// `ci build` builds and pushes only the session's selected location through our engine and
/// records its image; `ci deploy` registers exactly that image.
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_build_builds_the_selected_locations_and_deploy_registers_them() {
    let Some(s) = support::services().await else {
        return;
    };
    let server = TestServer::start().await;
    let repo_path = support::unique("dagster-deploy-test/ci");
    let registry = format!("{}/{repo_path}", s.registry);
    let m = Monorepo::new();
    m.write(
        "dagster_cloud.yaml",
        &YAML
            .replace("registry.example.com/a", &registry)
            .replace("registry.example.com/b", &registry),
    );
    let dockerfile = format!("FROM {}\nCOPY . /app\n", s.base_image);
    m.write("a/Dockerfile", &dockerfile);
    m.write("b/Dockerfile", &dockerfile);
    m.commit("both");
    m.write("a/defs.py", "x = 2\n");
    let head = m.commit("change a");
    let statedir = m.path().join(".session");
    let sd = statedir.to_str().unwrap();
    let url = server.url();
    let cfg = m.path().join(".no-config");
    let with_env = |args: &[&str]| {
        let mut cmd = m.command(&s, args);
        cmd.env("DAGSTER_CLOUD_URL", &url)
            .env("DAGSTER_CLOUD_DEPLOYMENT", "prod")
            .env("DAGSTER_CLOUD_API_TOKEN", &server.token)
            .env("DAGSTER_CLOUD_CLI_CONFIG", &cfg);
        cmd
    };
    let run = support::Run::of(&mut with_env(&[
        "ci",
        "init",
        "--statedir",
        sd,
        "--base",
        "HEAD~1",
    ]));
    assert_eq!(run.code, 0, "{run}");

    let run = tokio::task::spawn_blocking({
        let mut cmd = with_env(&["ci", "build", "--statedir", sd, "--no-cache-from"]);
        move || support::Run::of(&mut cmd)
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{run}");
    let state_a: Value =
        serde_json::from_slice(&std::fs::read(statedir.join("location-a.json")).unwrap()).unwrap();
    let image = state_a["build_output"]["image"]
        .as_str()
        .unwrap()
        .to_string();
    let mut cleanup = support::Cleanup::new(&s);
    cleanup.image(&image);
    assert!(image.starts_with(&format!("{registry}:a-ck-")), "{image}");
    assert_eq!(state_a["build_output"]["strategy"], "docker");
    let state_b: Value =
        serde_json::from_slice(&std::fs::read(statedir.join("location-b.json")).unwrap()).unwrap();
    assert_eq!(state_b["build_output"], Value::Null, "b is not selected");
    let tags = support::registry_tags(&s, &repo_path);
    for tag in &tags {
        cleanup.image(&format!("{registry}:{tag}"));
    }
    assert!(tags.iter().all(|t| t.starts_with("a-")), "{tags:?}");

    let run = tokio::task::spawn_blocking({
        let mut cmd = with_env(&["ci", "deploy", "--statedir", sd]);
        move || support::Run::of(&mut cmd)
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{run}");
    let docs = stored(&server);
    assert_eq!(docs["locations"].as_array().unwrap().len(), 1);
    assert_eq!(docs["locations"][0]["image"], json!(image));
    assert_eq!(docs["locations"][0]["git"]["commit_hash"], json!(head));
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
    let Some(cli) = reference_cli() else { return };
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
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
