//! Python-executable deploys that fail, against a real `dagster-deploy serve` process: bad
//! input fails clearly with nothing registered, large files are left out by `.gitignore` or
//! warned about, and a refused or interrupted upload fails the deploy with nothing
//! registered.
//!
//! Needs pex and uv (`scripts/pex-tools.sh`, or installed on first use), python3.11 and PyPI.
//! Without them these tests skip, except under `CI`, where they fail.

mod support;

use serde_json::Value;
use support::pex::{prerequisites, serve};
use support::stderr;

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
    support::git_in(d, &["init", "-q"]);
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
