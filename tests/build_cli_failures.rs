//! `dagster-deploy build` / `deploy` when things go wrong or nothing may happen: bad
//! credentials, a credential helper, Ctrl-C mid-build, `--dry-run`, no engine at the socket.
//! The binary against temporary git monorepos, the real Docker engine and the htpasswd
//! registry (`scripts/services.sh start`).

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::one_location;
use support::{Cleanup, Monorepo, Run, clean_pushed, registry_tags, services, unique};

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn wrong_credentials_fail_without_showing_the_password() {
    let Some(s) = services().await else { return };
    let repo_path = unique("dagster-deploy-test/denied");
    let m = one_location(
        &s,
        &format!("{}/{repo_path}", s.registry),
        "COPY hello.txt /\n",
    );
    let wrong = format!("not-the-password-{}", unique("x"));
    let run = Run::of(
        m.command(&s, &["build", "--all"])
            .env("DAGSTER_DEPLOY_REGISTRY_PASSWORD", &wrong),
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout.contains(&format!(
            "the registry {} refused the configured credentials (HTTP 401)",
            s.registry
        )),
        "{run}"
    );
    assert!(
        run.stderr.contains(
            "hint: set DAGSTER_DEPLOY_REGISTRY_USERNAME and DAGSTER_DEPLOY_REGISTRY_PASSWORD"
        ),
        "{run}"
    );
    assert!(
        !run.to_string().contains(&wrong),
        "the password leaked: {run}"
    );
    assert!(
        !run.to_string().contains(&s.password),
        "the password leaked: {run}"
    );
    assert_eq!(registry_tags(&s, &repo_path), Vec::<String>::new());
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn credentials_come_from_a_docker_credential_helper() {
    let Some(s) = services().await else { return };
    let repo_path = unique("dagster-deploy-test/helper");
    let m = one_location(
        &s,
        &format!("{}/{repo_path}", s.registry),
        "COPY hello.txt /\n",
    );
    let tools = tempfile::tempdir().unwrap();
    // The helper answers for the test registry only; it reads the server URL on stdin.
    let helper = tools.path().join("bin/docker-credential-ddtest");
    support::write_tree(
        tools.path(),
        &[support::Node::Mode(
            "bin/docker-credential-ddtest",
            &format!(
                "#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 2\n\
                 if [ \"$server\" = \"{}\" ]; then \
                 printf '{{\"ServerURL\":\"%s\",\"Username\":\"{}\",\"Secret\":\"{}\"}}' \"$server\"; \
                 else echo 'credentials not found in native keychain'; exit 1; fi\n",
                s.registry, s.user, s.password
            ),
            0o755,
        )],
    );
    assert!(helper.exists());
    let config = tools.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"credsStore": "ddtest"}"#).unwrap();
    let path = format!(
        "{}:{}",
        tools.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cleanup = Cleanup::new(&s);
    let run = Run::of(
        m.command(
            &s,
            &[
                "build",
                "--all",
                "--json",
                "--no-human-tag",
                "--no-cache-from",
            ],
        )
        .env_remove("DAGSTER_DEPLOY_REGISTRY_USERNAME")
        .env_remove("DAGSTER_DEPLOY_REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", &config)
        .env("PATH", path),
    );
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    clean_pushed(&mut cleanup, &json);
    let tags = registry_tags(&s, &repo_path);
    assert_eq!(tags.len(), 1, "{tags:?}");
    assert!(tags[0].starts_with("app-ck-"), "{tags:?}");
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn ctrl_c_during_a_build_stops_it_pushes_nothing_and_exits_130() {
    let Some(s) = services().await else { return };
    let repo_path = unique("dagster-deploy-test/interrupted");
    // A marker unique to this run, so the build is never a cache hit.
    let marker = format!("started-{}", unique("sleep"));
    let m = one_location(
        &s,
        &format!("{}/{repo_path}", s.registry),
        // Not ending in `sleep`: the shell (whose command line has the marker) stays, instead
        // of exec-ing its last command.
        &format!("RUN echo {marker} && sleep 60 && echo done\n"),
    );
    let mut child = m
        .command(&s, &["build", "--all", "--no-cache-from"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the build never started its RUN step: {seen:#?}"));
        // BuildKit's output lines of a step: `[app] #5 started-...`.
        let started = line.ends_with(&format!(" {marker}")) && !line.contains("RUN echo");
        seen.push(line);
        if started {
            break;
        }
    }
    let pid = child.id().to_string();
    let before = s.docker(&["ps", "--no-trunc", "--format", "{{.Command}}"]);
    assert!(
        before.contains(&marker) || !host_processes_with(&marker).is_empty(),
        "the RUN step is not running"
    );
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_with_deadline(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "{seen:#?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:#?}");
    assert_eq!(registry_tags(&s, &repo_path), Vec::<String>::new());
    // The engine stops the RUN step once the client is gone: a container for the classic
    // builder, a process of the engine's BuildKit (the test engine runs on this host).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut running = s.docker(&["ps", "--no-trunc", "--format", "{{.Command}}"]);
        running.push_str(&host_processes_with(&marker).join("\n"));
        if !running.contains(&marker) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the build container still runs: {running}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Command lines of this host's processes that contain `text`.
fn host_processes_with(text: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(text))
        .collect()
}

fn wait_with_deadline(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dagster-deploy did not stop within {limit:?} after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// These need no services: a dry run touches nothing, and a missing engine is reported.
#[test]
fn dry_run_prints_what_would_be_built_and_touches_nothing() {
    let m = Monorepo::example("localhost:1/dagster-deploy-dry-run");
    let run = Run::of(
        std::process::Command::new(env!("CARGO_BIN_EXE_dagster-deploy"))
            .current_dir(m.path())
            .args(["deploy", "--dry-run", "--all", "--json"])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env_remove("CI"),
    );
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    assert_eq!(json["dry_run"], true);
    let builds = json["builds"].as_array().unwrap();
    let names: Vec<&str> = builds
        .iter()
        .filter_map(|b| b["location"].as_str())
        .collect();
    assert_eq!(names, ["ingest", "analytics", "ml", "reporting"]);
    let ml = &builds[2];
    assert_eq!(ml["target"], "runtime");
    assert_eq!(ml["dockerfile"], "ml/Dockerfile");
    assert_eq!(ml["directory"], ".");
    assert_eq!(ml["build_args"]["PIP_EXTRA_FLAGS"], "--prefer-binary");
    let image = ml["image"].as_str().unwrap();
    assert!(
        image.starts_with("localhost:1/dagster-deploy-dry-run:ml-ck-"),
        "{image}"
    );
    assert_eq!(
        ml["cache_from"],
        "localhost:1/dagster-deploy-dry-run:ml-latest"
    );
    assert!(run.stderr.is_empty(), "{run}");
    // Nothing is deployed yet, and a dry run does not create the local store.
    let target = json["target"].as_str().unwrap();
    assert!(target.ends_with("(created on first deploy)"), "{target}");
    assert!(!m.path().join(".dagster-deploy").exists());

    let text = Run::of(
        std::process::Command::new(env!("CARGO_BIN_EXE_dagster-deploy"))
            .current_dir(m.path())
            .args(["deploy", "--dry-run", "--location", "ingest"])
            .env_remove("CI"),
    );
    assert_eq!(text.code, 0, "{text}");
    assert!(
        text.stdout
            .starts_with("dry run: nothing is built, pushed or registered\n"),
        "{text}"
    );
    assert!(
        text.stdout
            .contains("\nbuild ingest\n  image       localhost:1/"),
        "{text}"
    );
}

#[test]
fn no_engine_at_the_socket_names_it_and_says_how_to_start_docker() {
    let m = Monorepo::example("localhost:1/dagster-deploy-no-engine");
    let run = |json: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dagster-deploy"));
        cmd.current_dir(m.path())
            .args(["build", "--location", "ingest"])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env_remove("CI");
        if json {
            cmd.arg("--json");
        }
        Run::of(&mut cmd)
    };
    let text = run(false);
    assert_eq!(text.code, 1, "{text}");
    assert!(
        text.stderr.contains(
            "error: no Docker engine answers at unix:///nonexistent/docker.sock: the socket \
             /nonexistent/docker.sock does not exist"
        ),
        "{text}"
    );
    assert!(text.stderr.contains("hint: start Docker"), "{text}");
    let json = run(true);
    assert_eq!(json.code, 1, "{json}");
    assert_eq!(json.json()["error"]["code"], "engine-unavailable");
}
