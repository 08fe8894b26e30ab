//! Python-executable deploys end to end, against a real `dagster-deploy serve` process, by
//! every command that makes one: `serverless deploy-python-executable` builds, uploads and
//! registers the example monorepo's four locations, whose stored artefacts, downloaded through
//! `generateServerlessPexUrl`, really load the Dagster definitions with `python3.11`; the real
//! reference CLI deploys to the same kind of server; and `deploy` and `ci build` take the
//! python-executable build strategy. tests/pex_deploy_failures.rs covers what fails.
//!
//! Needs pex and uv (`scripts/pex-tools.sh`, or installed on first use), python3.11 and PyPI.
//! Without them these tests skip, except under `CI`, where they fail.

mod support;

use support::server as common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use support::copy_dir;
use support::pex::{Serve, prerequisites, serve};
use support::serve::ours;
use support::stderr;

/// Runs the downloaded artefacts as Dagster+ does (`PEX_PATH=deps.pex python source.pex`):
/// `dagster definitions validate` with the location's code source, from the source's
/// `working_directory/root`.
fn validate(deps: &Path, source: &Path, code_source: &Value, pex_root: &Path) {
    let python = |args: &[&str]| {
        let out = Command::new("python3.11")
            .arg(source)
            .args(args)
            .env("PEX_PATH", deps)
            .env("PEX_ROOT", pex_root)
            .env_remove("PYTHONPATH")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, root) = python(&[
        "-c",
        "import os, working_directory; \
         print(os.path.join(os.path.dirname(working_directory.__file__), 'root'))",
    ]);
    assert!(ok, "{root}");
    let root = root.trim().lines().last().unwrap().to_string();
    let (flag, value) = if let Some(p) = code_source["package_name"].as_str() {
        ("--package-name", p)
    } else {
        (
            "--module-name",
            code_source["module_name"].as_str().unwrap(),
        )
    };
    let (ok, output) = python(&[
        "-m",
        "dagster",
        "definitions",
        "validate",
        flag,
        value,
        "--working-directory",
        &root,
    ]);
    assert!(
        ok && output.contains("Validation successful"),
        "{value}: {output}"
    );
}

#[cfg_attr(
    not(ci),
    ignore = "needs python3.11, pex and uv (scripts/pex-tools.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_monorepo_deploys_and_its_artefacts_load_dagster() {
    if !prerequisites() {
        return;
    }
    let server = serve(&[]);
    let repo = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo"),
        repo.path(),
    );
    let out = server.deploy(
        repo.path(),
        &[
            "--location-file",
            "dagster_cloud.yaml",
            "--location-name",
            "*",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let built = result["locations"].as_array().unwrap();
    let names: Vec<&str> = built
        .iter()
        .map(|b| b["location"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ingest", "analytics", "ml", "reporting"]);
    // The same PyPI requirements everywhere (`common` is local): one dependencies archive.
    let deps: std::collections::BTreeSet<&str> =
        built.iter().map(|b| b["deps"].as_str().unwrap()).collect();
    assert_eq!(deps.len(), 1, "{result}");

    let docs = server.documents().await;
    assert_eq!(docs.len(), 4);
    let work = tempfile::tempdir().unwrap();
    let pex_root = work.path().join("pex-root");
    for b in built {
        let name = b["location"].as_str().unwrap();
        let doc = docs.iter().find(|d| d["location_name"] == name).unwrap();
        assert_eq!(doc["pex_metadata"]["pex_tag"], b["pex_tag"], "{doc}");
        assert_eq!(doc["pex_metadata"]["python_version"], "3.11");
        assert!(doc.get("image").is_none(), "{doc}");
        let deps = server
            .download(b["deps"].as_str().unwrap(), work.path())
            .await;
        let source = server
            .download(b["source"].as_str().unwrap(), work.path())
            .await;
        let (d, s, cs, r) = (deps, source, doc["code_source"].clone(), pex_root.clone());
        tokio::task::spawn_blocking(move || validate(&d, &s, &cs, &r))
            .await
            .unwrap();
    }

    // A code-only change: only the new source archive is sent.
    let defs = repo.path().join("ingest/ingest/definitions.py");
    let mut text = std::fs::read_to_string(&defs).unwrap();
    text.push_str("\n# a code-only change\n");
    std::fs::write(&defs, text).unwrap();
    let out = server.deploy(
        repo.path(),
        &[
            "--location-file",
            "dagster_cloud.yaml",
            "--location-name",
            "ingest",
            "--deps-cache-to",
            "x",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = &again["locations"][0];
    assert_eq!(b["deps_built"], false);
    assert_eq!(b["uploaded"], json!([b["source"]]), "{again}");
    assert_ne!(b["source"], built[0]["source"]);

    // --deps-cache-to recorded the archive as the reference records it
    // (`requirements-<key>-<base64 tag>.txt`), and --deps-cache-from reads it back.
    let deps = b["deps"].as_str().unwrap();
    let key = deps.trim_start_matches("deps-").trim_end_matches(".pex");
    let record = server
        .download(&format!("requirements-{key}-eA==.txt"), work.path())
        .await;
    let record: Value = serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    assert_eq!(record["deps_pex_name"], deps);
    assert!(
        record["dagster_version"]
            .as_str()
            .unwrap()
            .starts_with("1."),
        "{record}"
    );
    let out = server.deploy(
        repo.path(),
        &[
            "--location-file",
            "dagster_cloud.yaml",
            "--location-name",
            "ingest",
            "--deps-cache-from",
            "x",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[cfg_attr(
    not(ci),
    ignore = "needs the reference dagster-cloud CLI (scripts/reference-cli.sh); needs python3.11, pex and uv (scripts/pex-tools.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_cli_deploys_a_python_executable_to_serve() {
    if !prerequisites() {
        return;
    }
    let Some(cli) = common::reference_cli() else {
        return;
    };
    let server = serve(&[]);
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("hello");
    std::fs::create_dir_all(dir.join("hello")).unwrap();
    std::fs::write(
        dir.join("hello/__init__.py"),
        "import dagster as dg\n\n@dg.asset\ndef greeting():\n    return 'hi'\n\n\
         defs = dg.Definitions(assets=[greeting])\n",
    )
    .unwrap();
    // The reference insists on dagster-cloud in the dependencies.
    std::fs::write(dir.join("requirements.txt"), "dagster-cloud\n").unwrap();
    let env = [
        ("DAGSTER_CLOUD_URL", server.url.as_str()),
        ("DAGSTER_CLOUD_DEPLOYMENT", "prod"),
        ("DAGSTER_CLOUD_API_TOKEN", server.token.as_str()),
        // The reference's pip and pex caches stay where they were.
        ("HOME", &std::env::var("HOME").unwrap_or_default()),
    ];
    let args = [
        "serverless",
        "deploy-python-executable",
        ".",
        "--location-name",
        "hello",
        "--module-name",
        "hello",
        "--build-method",
        "local",
        "--location-load-timeout",
        "120",
    ];
    let mut cmd = common::clean_command(&cli, &dir, &args, &env);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Upload successful"), "{text}");
    assert!(!text.contains("Upload failed"), "{text}");
    let docs = server.documents().await;
    let tag = docs[0]["pex_metadata"]["pex_tag"].as_str().unwrap();
    assert!(
        tag.starts_with("files=deps-") && tag.contains(".pex:source-"),
        "{tag}"
    );
}

/// `dagster-deploy ARGS` in `dir` against `server`, outside any CI context.
fn run_ours(server: &Serve, dir: &Path, args: &[&str]) -> Output {
    let out = ours()
        .current_dir(dir)
        .args(args)
        .env("DAGSTER_CLOUD_URL", &server.url)
        .env("DAGSTER_CLOUD_DEPLOYMENT", "prod")
        .env("DAGSTER_CLOUD_API_TOKEN", &server.token)
        .env("DAGSTER_CLOUD_CLI_CONFIG", dir.join(".no-config"))
        .env_remove("CI")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env_remove("DAGSTER_BUILD_STATEDIR")
        .output()
        .unwrap();
    eprintln!(
        "$ dagster-deploy {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[cfg_attr(
    not(ci),
    ignore = "needs python3.11, pex and uv (scripts/pex-tools.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_ci_build_take_the_python_executable_strategy() {
    if !prerequisites() {
        return;
    }
    let server = serve(&[]);
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monorepo"),
        r,
    );
    let git = |args: &[&str]| support::git_in(r, args);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "example"]);

    let out = run_ours(
        &server,
        r,
        &[
            "deploy",
            "--build-strategy",
            "python-executable",
            "--all",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["locations"].as_array().unwrap().len(), 4);
    let docs = server.documents().await;
    assert_eq!(docs.len(), 4);
    for d in &docs {
        assert!(
            d["pex_metadata"]["pex_tag"]
                .as_str()
                .unwrap()
                .starts_with("files=deps-")
        );
        assert_eq!(d["git"]["commit_hash"].as_str().unwrap().len(), 40, "{d}");
    }

    // A location never moves backwards, as with images: ingest deployed from a newer commit
    // is skipped when an older one is deployed, unless --force.
    let first = git(&["rev-parse", "HEAD"]);
    std::fs::write(r.join("ingest/ingest/newer.py"), "X = 1\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "newer"]);
    let newer = git(&["rev-parse", "HEAD"]);
    let py_deploy = |extra: &[&str]| {
        let mut args = vec![
            "deploy",
            "--build-strategy",
            "python-executable",
            "--location",
            "ingest",
        ];
        args.extend_from_slice(extra);
        run_ours(&server, r, &args)
    };
    assert!(py_deploy(&[]).status.success());
    let ingest_commit = |docs: &[Value]| {
        docs.iter()
            .find(|d| d["location_name"] == "ingest")
            .map(|d| {
                d["git"]["commit_hash"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
    };
    assert_eq!(
        ingest_commit(&server.documents().await),
        Some(newer.clone())
    );
    git(&["checkout", "-q", &first]);
    let out = py_deploy(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("newer than"), "{}", stderr(&out));
    assert_eq!(ingest_commit(&server.documents().await), Some(newer));
    let out = py_deploy(&["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ingest_commit(&server.documents().await), Some(first));
    git(&["checkout", "-q", "main"]);

    // A CI session: ours builds, ours deploys from the state files.
    let state = tempfile::tempdir().unwrap();
    let sd = state.path().to_str().unwrap();
    let out = run_ours(&server, r, &["ci", "init", "--statedir", sd, "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_ours(
        &server,
        r,
        &[
            "ci",
            "build",
            "--statedir",
            sd,
            "--build-strategy",
            "python-executable",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let st: Value =
        serde_json::from_slice(&std::fs::read(state.path().join("location-ml.json")).unwrap())
            .unwrap();
    assert_eq!(st["build_output"]["strategy"], "python-executable", "{st}");
    assert_eq!(st["build_output"]["python_version"], "3.11");
    let out = run_ours(&server, r, &["ci", "deploy", "--statedir", sd]);
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = server.documents().await;
    let ml = docs.iter().find(|d| d["location_name"] == "ml").unwrap();
    assert_eq!(ml["pex_metadata"]["pex_tag"], st["build_output"]["pex_tag"]);
}
