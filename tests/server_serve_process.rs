//! `dagster-deploy serve` as a real process, driven by the real reference CLI: deployment
//! commands, a branch deployment and a whole `ci` session; then SIGTERM stops it cleanly.
//! The reference is found through `DAGSTER_CLOUD_REFERENCE`; without it this fails in CI and
//! is skipped elsewhere.

mod support;

use support::server as common;

use std::path::Path;
use std::process::Output;

use dagster_deploy::server::Deployments;
use serde_json::json;
use support::serve::{Serve, token_create};

fn run(cli: &Path, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = common::clean_command(cli, home, args, env)
        .output()
        .unwrap();
    eprintln!(
        "$ dagster-cloud {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dagster-cloud {args:?} failed");
    out
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh)"
)]
#[test]
fn the_reference_cli_works_against_a_serve_process() {
    let Some(cli) = common::reference_cli() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let data = h.join("data");
    let token = token_create(&data, "test", &["--organization"]);
    assert!(token.starts_with("ddp_"));
    let mut serve = Serve::start_in(&data, &["--no-image-checks"], &[]);
    let url = serve.url.clone();
    let env = [
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
        ("DAGSTER_CLOUD_API_TOKEN", token.as_str()),
    ];

    let out = run(
        &cli,
        h,
        &[
            "deployment",
            "add-location",
            "a",
            "--module-name",
            "a.defs",
            "--image",
            "r/a:1",
        ],
        &env,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Added or updated location a."));
    let out = run(&cli, h, &["deployment", "list-locations"], &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("a\tImage: r/a:1"));
    std::fs::write(
        h.join("workspace.yaml"),
        "locations:\n  - location_name: b\n    code_source:\n      package_name: b\n    image: r/b:1\n",
    )
    .unwrap();
    run(
        &cli,
        h,
        &["deployment", "sync-locations", "-w", "workspace.yaml"],
        &env,
    );
    run(
        &cli,
        h,
        &["deployment", "add-location", "c", "--package-name", "c"],
        &env,
    );
    run(&cli, h, &["deployment", "delete-location", "c"], &env);
    let out = run(
        &cli,
        h,
        &[
            "branch-deployment",
            "create-or-update",
            "--url",
            &url,
            "--git-repo-name",
            "org/repo",
            "--branch-name",
            "feature/x",
            "--commit-hash",
            "c1",
            "--timestamp",
            "1700000000",
        ],
        &env,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "feature-x");

    // A whole ci session.
    let project = h.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("dagster_cloud.yaml"),
        "locations:\n  - location_name: d\n    code_source:\n      module_name: d.defs\n    build:\n      registry: r/d\n",
    )
    .unwrap();
    let state = h.join("state");
    let ci_env = [
        ("DAGSTER_CLOUD_URL", url.as_str()),
        ("DAGSTER_CLOUD_ORGANIZATION", "test"),
        ("DAGSTER_CLOUD_API_TOKEN", token.as_str()),
    ];
    let (p, s) = (project.to_str().unwrap(), state.to_str().unwrap());
    run(
        &cli,
        h,
        &[
            "ci",
            "init",
            "--project-dir",
            p,
            "--deployment",
            "prod",
            "--statedir",
            s,
            "--commit-hash",
            "abc",
        ],
        &ci_env,
    );
    run(
        &cli,
        h,
        &[
            "ci",
            "set-build-output",
            "--statedir",
            s,
            "--image-tag",
            "t1",
        ],
        &ci_env,
    );
    run(&cli, h, &["ci", "deploy", "--statedir", s], &ci_env);
    run(&cli, h, &["ci", "status", "--statedir", s], &ci_env);

    // What the server stored is what was sent (read while it runs: SQLite allows it).
    let store = Deployments::open(&data).unwrap();
    assert_eq!(
        store.locations_document("prod").unwrap(),
        json!({"locations": [
            {"location_name": "b", "code_source": {"package_name": "b"}, "image": "r/b:1"},
            {"location_name": "d", "code_source": {"module_name": "d.defs"}, "image": "r/d:t1",
             "git": {"commit_hash": "abc"}},
        ]})
    );
    assert!(store.deployment("feature-x").unwrap().branch.is_some());

    // SIGTERM: a clean stop with exit code 0.
    serve.signal("-TERM");
    let status = serve.wait();
    assert!(status.success(), "{status:?}");
    let rest = serve.lines().join("\n");
    assert!(rest.contains("shutting down"), "{rest}");
}
