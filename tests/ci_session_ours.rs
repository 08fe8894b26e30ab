//! `dagster-deploy ci ...` on its own: `ci` bad input is named with a fix, and `ci build`
//! builds only the session's selected location through the real engine for `ci deploy` to
//! register. tests/ci_session_turns.rs has ours and the reference CLI taking turns.

mod support;

use support::server as common;

use common::{TestServer, stored};
use serde_json::{Value, json};
use support::Monorepo;
use support::session::{YAML, ours, project, state_text, text};

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
