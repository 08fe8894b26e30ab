//! Python-executable deploys end to end, against a real `dagster-deploy serve` process:
//! the example monorepo's four locations are built, uploaded and registered; the stored
//! artefacts are downloaded through `generateServerlessPexUrl` and really load the Dagster
//! definitions with `python3.11`; the real reference CLI deploys to the same kind of server;
//! and bad input fails clearly with nothing registered.
//!
//! Needs pex and uv (`scripts/pex-tools.sh`, or installed on first use), python3.11 and PyPI.
//! Without them these tests skip, except under `CI`, where they fail.

mod support;

use support::server as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use support::copy_dir;

/// Skips (or, in CI, fails) without the tools.
fn prerequisites() -> bool {
    let mut missing = Vec::new();
    if !Command::new("python3.11")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        missing.push("python3.11".to_string());
    }
    let dir = dagster_deploy::pex::tools::tools_dir();
    for tool in ["pex", "uv"] {
        let there = dir.join("venv/bin").join(tool).exists()
            || dagster_deploy::python_tools::which(tool).is_some();
        if !there {
            missing.push(format!("{tool} (in {})", dir.display()));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("missing {}", missing.join(", "));
    support::missing::<()>(&why, "run `scripts/pex-tools.sh` first").is_some()
}

/// A `dagster-deploy serve` process (no image checks: nothing here is a Docker image), and
/// the URL the deploys use (a test may put a proxy in front of it).
struct Serve {
    /// Held for its process, which stops when this is dropped.
    _server: support::ci::Serve,
    url: String,
    token: String,
}

fn ours() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dagster-deploy"))
}

fn serve(extra: &[&str]) -> Serve {
    let mut args = vec!["--no-image-checks"];
    args.extend_from_slice(extra);
    let server = support::ci::Serve::with_args(&args, &[]);
    Serve {
        url: server.url.clone(),
        token: server.token.clone(),
        _server: server,
    }
}

impl Serve {
    fn client(&self) -> common::Client {
        common::Client {
            http: reqwest::Client::new(),
            base: self.url.clone(),
            token: Some(self.token.clone()),
            deployment: Some("prod".into()),
        }
    }

    /// `dagster-deploy ARGS` in `dir`, pointed at this server. HOME stays the user's, so the
    /// pex/uv caches and built dependencies are reused between runs.
    fn deploy(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = ours();
        cmd.current_dir(dir)
            .args(["serverless", "deploy-python-executable"])
            .args(args)
            .env("DAGSTER_CLOUD_URL", &self.url)
            .env("DAGSTER_CLOUD_DEPLOYMENT", "prod")
            .env("DAGSTER_CLOUD_API_TOKEN", &self.token)
            .env("DAGSTER_CLOUD_CLI_CONFIG", dir.join(".no-config"))
            .env_remove("DAGSTER_CLOUD_ORGANIZATION")
            .envs(env.iter().copied());
        let started = std::time::Instant::now();
        let out = cmd.output().unwrap();
        eprintln!(
            "$ dagster-deploy serverless deploy-python-executable {} ({:.1} s, {})\n{}{}",
            args.join(" "),
            started.elapsed().as_secs_f64(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    async fn documents(&self) -> Vec<Value> {
        let data = self
            .client()
            .data(common::LOCATIONS_AS_DOCUMENT, json!({}))
            .await;
        data["locationsAsDocument"]["document"]["locations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Downloads a stored file through a GET URL of `generateServerlessPexUrl`.
    async fn download(&self, name: &str, to: &Path) -> PathBuf {
        let data = self
            .client()
            .data(
                "mutation G($filenames: [String!]!) { \
                 generateServerlessPexUrl(filenames: $filenames, method:GET) { url } }",
                json!({ "filenames": [name] }),
            )
            .await;
        let url = data["generateServerlessPexUrl"][0]["url"].as_str().unwrap();
        let resp = reqwest::get(url).await.unwrap();
        assert_eq!(resp.status(), 200, "download {name}");
        let path = to.join(name);
        std::fs::write(&path, resp.bytes().await.unwrap()).unwrap();
        path
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

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

/// A one-module location needing only `requirements` in `requirements.txt`.
fn location(requirements: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    std::fs::write(
        dir.path().join("app/__init__.py"),
        "import dagster as dg\ndefs = dg.Definitions()\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("requirements.txt"), requirements).unwrap();
    dir
}

const APP: [&str; 4] = ["--location-name", "app", "--module-name", "app"];

#[cfg_attr(
    not(ci),
    ignore = "needs python3.11, pex and uv (scripts/pex-tools.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_clearly_and_registers_nothing() {
    if !prerequisites() {
        return;
    }
    let server = serve(&[]);

    // No Python of the requested version (a setup.py project needs it to read its
    // requirements): only Debian's folders on PATH, which have no python3.9.
    let dir = location("");
    std::fs::remove_file(dir.path().join("requirements.txt")).unwrap();
    std::fs::write(
        dir.path().join("setup.py"),
        "from setuptools import setup\nsetup(name='app', install_requires=['dagster'])\n",
    )
    .unwrap();
    let out = server.deploy(
        dir.path(),
        &[&APP[..], &["--python-version", "3.9"]].concat(),
        &[("PATH", "/usr/bin:/bin")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no Python 3.9 found on PATH"),
        "{}",
        stderr(&out)
    );

    // Unsupported version.
    let dir = location("dagster\n");
    let out = server.deploy(
        dir.path(),
        &[&APP[..], &["--python-version", "3.8"]].concat(),
        &[],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unsupported --python-version"));

    // Unresolvable requirements: the resolver's reason is shown.
    let dir = location("dagster\nno-such-package-dagster-deploy-test==1.0\n");
    let out = server.deploy(dir.path(), &APP, &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("cannot be resolved"), "{e}");
    assert!(
        e.contains("no-such-package-dagster-deploy-test") && e.contains("not found"),
        "{e}"
    );

    // A package without dagster.
    let dir = location("six\n");
    let out = server.deploy(dir.path(), &APP, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("do not include dagster"),
        "{}",
        stderr(&out)
    );

    // No project files at all.
    let dir = location("");
    std::fs::remove_file(dir.path().join("requirements.txt")).unwrap();
    let out = server.deploy(dir.path(), &APP, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("has no requirements.txt, pyproject.toml or setup.py"));

    assert!(server.documents().await.is_empty(), "nothing registered");
}

#[cfg_attr(
    not(ci),
    ignore = "needs python3.11, pex and uv (scripts/pex-tools.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_are_ignored_by_gitignore_or_warned_about() {
    if !prerequisites() {
        return;
    }
    let server = serve(&[]);
    let dir = location("dagster\n");
    let d = dir.path();
    assert!(
        Command::new("git")
            .args(["init", "-q"])
            .current_dir(d)
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir_all(d.join("data")).unwrap();
    // 2 GB, sparse: costs no disk, and would cost minutes if it were read.
    let big = std::fs::File::create(d.join("data/big.bin")).unwrap();
    big.set_len(2 * 1024 * 1024 * 1024).unwrap();
    std::fs::write(d.join(".gitignore"), "data/\n").unwrap();
    std::fs::write(d.join("app/medium.csv"), vec![b'x'; 2_000_000]).unwrap();
    let out = server.deploy(
        d,
        &[&APP[..], &["--json"]].concat(),
        &[("DAGSTER_DEPLOY_LARGE_FILE_BYTES", "1000000")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("medium.csv") && e.contains("goes into the source archive"),
        "{e}"
    );
    assert!(!e.contains("big.bin"), "{e}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let work = tempfile::tempdir().unwrap();
    let source = server
        .download(
            result["locations"][0]["source"].as_str().unwrap(),
            work.path(),
        )
        .await;
    assert!(std::fs::metadata(&source).unwrap().len() < 10_000_000);
}

#[cfg_attr(
    not(ci),
    ignore = "needs python3.11, pex and uv (scripts/pex-tools.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_fails_the_deploy_and_registers_nothing() {
    if !prerequisites() {
        return;
    }
    // The server refuses files over 100 kB: the dependencies archive cannot go up.
    let server = serve(&["--max-file-size", "100000"]);
    let dir = location("dagster\n");
    let out = server.deploy(dir.path(), &APP, &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("uploading deps-") && e.contains("413"), "{e}");
    assert!(e.contains("nothing was registered"), "{e}");
    assert!(server.documents().await.is_empty());
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
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(r)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
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

/// A proxy in front of `target` that forwards everything but cuts every `PUT` off after its
/// first bytes, as a dropped connection does mid-upload.
/// A proxy that hangs up on every PUT; it forwards to the address set in the returned cell
/// (set once the server behind it is up: the server hands out URLs under the proxy's, its
/// `--public-url`).
async fn cutting_proxy() -> (String, std::sync::Arc<std::sync::OnceLock<String>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let target_cell = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let cell = target_cell.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let Some(target) = cell.get().cloned() else {
                continue;
            };
            tokio::spawn(async move {
                let mut first = vec![0u8; 4096];
                let Ok(n) = client.read(&mut first).await else {
                    return;
                };
                if first[..n].starts_with(b"PUT ") {
                    // Forward nothing; hang up mid-request.
                    return;
                }
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let back =
                    tokio::spawn(
                        async move { tokio::io::copy(&mut from_server, &mut to_client).await },
                    );
                let mut chunk = first[..n].to_vec();
                loop {
                    // A kept-alive connection may carry the PUT as a later request.
                    if chunk.starts_with(b"PUT ") || to_server.write_all(&chunk).await.is_err() {
                        break;
                    }
                    let mut buf = vec![0u8; 65536];
                    match from_client.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => chunk = buf[..n].to_vec(),
                    }
                }
                back.abort();
            });
        }
    });
    (format!("http://{addr}"), target_cell)
}

#[cfg_attr(
    not(ci),
    ignore = "needs python3.11, pex and uv (scripts/pex-tools.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_fails_the_deploy_and_registers_nothing() {
    if !prerequisites() {
        return;
    }
    let (proxy, target) = cutting_proxy().await;
    let mut server = serve(&["--public-url", &proxy]);
    let direct = server.url.clone();
    target
        .set(direct.trim_start_matches("http://").to_string())
        .unwrap();
    server.url = proxy;
    let dir = location("dagster\n");
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let s = &server;
        let out = s.deploy(&d, &APP, &[]);
        (out, server)
    })
    .await
    .unwrap();
    let (out, mut server) = out;
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("uploading ") && e.contains("nothing was registered"),
        "{e}"
    );
    server.url = direct;
    assert!(server.documents().await.is_empty());
}
