//! The Dagster side of `serve`, against real Dagster from PyPI: the UI `serve --dagster-ui`
//! runs (dagster-webserver and dagster-daemon as child processes) follows the workspace file
//! the agent publishes — entries added, switched to a new code server (never missing while a
//! client polls), removed — because `Workspaces::publish` tells it to `reloadWorkspace`; its
//! processes get none of the server's environment and stop with the server.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use dagster_deploy::dagster::graphql;
use dagster_deploy::dagster::ui::{self, UiOptions};
use dagster_deploy::server::workspace::{Webserver, WorkspaceEntry};
use dagster_deploy::server::{self, ServeOptions};
use support::dagster::{CodeServer, asset_file, free_port, install, loaded, wait_for, want};

fn entry(location: &str, server: &CodeServer) -> WorkspaceEntry {
    WorkspaceEntry {
        location: location.into(),
        host: "127.0.0.1".into(),
        port: server.port,
    }
}

/// Pids of processes whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// The names of a process's environment variables.
fn environment_names(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let mut names: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            String::from_utf8_lossy(kv)
                .split('=')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    names.sort();
    names
}

#[cfg_attr(not(ci), ignore = "needs Dagster from PyPI (scripts/test.sh)")]
#[tokio::test(flavor = "multi_thread")]
async fn the_dagster_ui_follows_the_published_workspace() {
    let install = tokio::task::spawn_blocking(install).await.expect("install");
    let dir = tempfile::tempdir().expect("tempdir");
    let v2 = dir.path().join("v2");
    std::fs::create_dir_all(&v2).expect("mkdir");
    let a1 = asset_file(dir.path(), "loc_a", &["alpha"]);
    let b = asset_file(dir.path(), "loc_b", &["beta"]);
    let a2 = asset_file(&v2, "loc_a", &["alpha", "alpha_v2"]);
    let (i1, i2) = (install.clone(), install.clone());
    let starting_a1 = std::thread::spawn(move || CodeServer::start(&i1, &a1, "loc_a"));
    let starting_b = std::thread::spawn(move || CodeServer::start(&i2, &b, "loc_b"));

    let ui_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let url = format!("http://{ui_addr}");
    let mut opts = ServeOptions::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        dir.path().join("data"),
    );
    opts.registry = None;
    opts.dagster_webservers = vec![Webserver {
        deployment: "prod".into(),
        url: url.clone(),
    }];
    let server = server::start(opts).await.expect("server");
    let workspaces = server.workspaces().clone();
    let file = workspaces.ensure("prod").expect("workspace file");
    let (stop_ui, ui_stopped) = tokio::sync::watch::channel(false);
    let ui_task = tokio::spawn(ui::run(
        UiOptions {
            deployment: "prod".into(),
            addr: ui_addr,
            workspace: file.clone(),
            dir: workspaces.dir("prod"),
        },
        ui_stopped,
    ));
    let http = reqwest::Client::new();
    wait_for(
        &http,
        &url,
        Duration::from_secs(240),
        "an empty workspace",
        |l| l.is_empty(),
    )
    .await;

    // The webserver and daemon: none of the server's environment.
    let children = processes_naming(&file.display().to_string());
    assert_eq!(children.len(), 2, "webserver and daemon: {children:?}");
    for pid in children {
        let names = environment_names(pid);
        let allowed = ["DAGSTER_HOME", "HOME", "LANG", "PATH", "TMPDIR", "TZ"];
        assert!(
            names.iter().all(|n| allowed.contains(&n.as_str())),
            "process {pid} got {names:?}"
        );
    }

    // Added: the webserver loads each new entry.
    let a1 = starting_a1.join().expect("code server a");
    let b = starting_b.join().expect("code server b");
    workspaces
        .publish("prod", &[entry("loc_a", &a1)])
        .expect("publish");
    wait_for(&http, &url, Duration::from_secs(90), "loc_a", |l| {
        loaded(l) == want(&[("loc_a", &["alpha"])])
    })
    .await;
    workspaces
        .publish("prod", &[entry("loc_a", &a1), entry("loc_b", &b)])
        .expect("publish");
    wait_for(
        &http,
        &url,
        Duration::from_secs(90),
        "loc_a and loc_b",
        |l| loaded(l) == want(&[("loc_a", &["alpha"]), ("loc_b", &["beta"])]),
    )
    .await;

    // Switched to a new code server on another port while a client polls every 200 ms: the
    // location is never missing nor in error, and the new code shows.
    let i3 = install.clone();
    let a2 = tokio::task::spawn_blocking(move || CodeServer::start(&i3, &a2, "loc_a"))
        .await
        .expect("code server a2");
    workspaces
        .publish("prod", &[entry("loc_a", &a2), entry("loc_b", &b)])
        .expect("publish");
    let (mut polls, mut bad) = (0, Vec::new());
    let began = Instant::now();
    loop {
        let seen = support::dagster::workspace(&http, &url).await;
        polls += 1;
        let a = seen
            .as_ref()
            .and_then(|l| l.iter().find(|x| x.name == "loc_a").cloned());
        match &a {
            Some(a) if a.typename == "RepositoryLocation" => {
                if a.assets == ["alpha", "alpha_v2"] {
                    break;
                }
            }
            _ => bad.push(format!("poll {polls}: {a:?}")),
        }
        assert!(
            began.elapsed() < Duration::from_secs(90),
            "never switched: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        bad.is_empty(),
        "{} of {polls} polls bad: {bad:#?}",
        bad.len()
    );
    drop(a1);

    // Removed: gone from the webserver too.
    workspaces
        .publish("prod", &[entry("loc_b", &b)])
        .expect("publish");
    wait_for(&http, &url, Duration::from_secs(90), "loc_b alone", |l| {
        l.len() == 1 && loaded(l) == want(&[("loc_b", &["beta"])])
    })
    .await;

    // Stopping the UI stops both processes.
    stop_ui.send(true).expect("stop");
    ui_task.await.expect("ui task");
    assert!(
        !graphql::is_up(&http, &url).await,
        "webserver still answers"
    );
    let left = processes_naming(&file.display().to_string());
    assert!(left.is_empty(), "still running: {left:?}");
    server.shutdown().await.expect("shutdown");
}

/// `serve ARGS` that must refuse to start: exit 2; returns its stderr.
fn refused(args: &[&str]) -> String {
    let data = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_dagster-deploy"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data")
        .arg(data.path())
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serve_refuses_a_webserver_url_that_is_not_http() {
    let stderr = refused(&["--no-image-checks", "--dagster-webserver", "localhost:3001"]);
    assert!(
        stderr.contains("\"localhost:3001\" is not an http(s) URL")
            && stderr.contains("http://127.0.0.1:3001"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_webserver_of_a_deployment_that_cannot_exist() {
    let value = "no way=http://127.0.0.1:3002";
    let stderr = refused(&["--no-image-checks", "--dagster-webserver", value]);
    assert!(
        stderr.contains(&format!("--dagster-webserver {value:?}")),
        "{stderr}"
    );
}

#[test]
fn the_dagster_ui_needs_code_servers() {
    let stderr = refused(&["--dagster-ui", "--no-code-servers"]);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
