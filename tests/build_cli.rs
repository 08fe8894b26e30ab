//! `dagster-deploy build` / `deploy` end to end: the binary against temporary git monorepos,
//! the real Docker engine and the htpasswd registry (`scripts/services.sh start`). Failures
//! and interruptions are in `build_cli_failures.rs`.

mod support;

use std::path::Path;

use base64::Engine as _;
use serde_json::Value;
use support::one_location;
use support::{
    Cleanup, Monorepo, Run, Services, clean_pushed, python_shim_image, registry_digest,
    registry_tags, services, unique,
};

fn results(json: &Value) -> Vec<Value> {
    json["results"].as_array().cloned().unwrap_or_default()
}

fn result<'a>(results: &'a [Value], location: &str) -> &'a Value {
    results
        .iter()
        .find(|r| r["location"] == location)
        .unwrap_or_else(|| panic!("no result for {location}: {results:#?}"))
}

/// A Docker client config folder holding `auth` for the test registry.
fn docker_config_with_login(s: &Services, dir: &Path) {
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", s.user, s.password));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, s.registry),
    )
    .unwrap();
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn example_monorepo_is_built_pushed_run_and_reused() {
    let Some(s) = services().await else { return };
    let shim = python_shim_image(&s);
    let repo_path = unique("dagster-deploy-test/example");
    let registry = format!("{}/{repo_path}", s.registry);
    let m = Monorepo::example(&registry);
    let head = m.git(&["rev-parse", "HEAD"]);
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_string_lossy().into_owned();
    let base_arg = format!("BASE_IMAGE={shim}");
    let args = [
        "build",
        "--all",
        "--json",
        "--build-arg",
        &base_arg,
        "--statedir",
        &state_arg,
    ];
    let mut cleanup = Cleanup::new(&s);

    let first = Run::of(&mut m.command(&s, &args));
    assert_eq!(first.code, 0, "{first}");
    let json = first.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(json["summary"]["built"], 4, "{first}");
    assert_eq!(json["head"], head.as_str());
    for r in results(&json) {
        let location = r["location"].as_str().unwrap();
        let key = r["content_key"].as_str().unwrap();
        let image = format!("{registry}:{location}-{key}");
        assert_eq!(r["image"], image.as_str());
        let tags: Vec<String> = [key.to_string(), head[..7].to_string(), "latest".into()]
            .iter()
            .map(|t| format!("{registry}:{location}-{t}"))
            .collect();
        assert_eq!(r["pushed_tags"], serde_json::json!(tags));
        // The digest the engine reported is what the registry serves for the key tag.
        assert_eq!(
            registry_digest(&s, &repo_path, &format!("{location}-{key}")).as_deref(),
            r["digest"].as_str()
        );
        // The deploy step finds the image in the build session state.
        let file = state.path().join(format!("location-{location}.json"));
        let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            saved["build_output"],
            serde_json::json!({"strategy": "docker", "image": image,
                               "python_version": null, "pex_bundle": false})
        );
        assert_eq!(saved["build"]["commit_hash"], head.as_str());
        assert_eq!(saved["history"][0]["status"], "pending");
    }
    // Plain progress lines on stderr (not a terminal), one prefix per location.
    assert!(first.stderr.contains("[ml] #1 "), "{first}");

    // Pull the analytics image back from the registry and run it.
    let analytics = result(&results(&json), "analytics")["image"]
        .as_str()
        .unwrap()
        .to_string();
    s.docker(&["rmi", &analytics]);
    let config = tempfile::tempdir().unwrap();
    docker_config_with_login(&s, config.path());
    let config_arg = config.path().to_string_lossy().into_owned();
    s.docker(&["--config", &config_arg, "pull", &analytics]);
    assert_eq!(
        s.read_from_image(&analytics, "/pip.log"),
        "pip install --no-cache-dir ./libs/common ./analytics\n"
    );
    let files = s.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &analytics,
        "find",
        "/opt/dagster/app",
        "-type",
        "f",
    ]);
    assert!(
        files.contains("/opt/dagster/app/analytics/analytics/definitions.py"),
        "{files}"
    );
    assert!(
        files.contains("/opt/dagster/app/libs/common/common/orders.py"),
        "{files}"
    );
    // analytics/Dockerfile.dockerignore keeps tests and other locations out of the context.
    assert!(!files.contains("/tests/"), "{files}");
    assert!(!files.contains("/ml/"), "{files}");
    let labels = s.docker(&["inspect", "--format", "{{json .Config.Labels}}", &analytics]);
    let labels: Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["org.opencontainers.image.revision"], head.as_str());
    assert_eq!(labels["io.dagster.code-location"], "analytics");
    assert!(labels["org.opencontainers.image.created"].is_string());

    // Nothing changed: the same run builds and pushes nothing.
    let tags_before = registry_tags(&s, &repo_path);
    assert_eq!(tags_before.len(), 12, "{tags_before:?}");
    let second = Run::of(&mut m.command(&s, &args));
    assert_eq!(second.code, 0, "{second}");
    let again = second.json();
    assert_eq!(again["summary"]["reused"], 4, "{second}");
    assert_eq!(again["summary"]["built"], 0);
    for r in results(&again) {
        assert_eq!(r["pushed_tags"], serde_json::json!([]));
        assert_eq!(
            r["image"],
            result(&results(&json), r["location"].as_str().unwrap())["image"]
        );
    }
    assert!(
        !second.stderr.contains("] #1 "),
        "nothing was built: {second}"
    );
    assert_eq!(registry_tags(&s, &repo_path), tags_before);
    let saved: Value =
        serde_json::from_slice(&std::fs::read(state.path().join("location-ml.json")).unwrap())
            .unwrap();
    assert_eq!(saved["history"].as_array().unwrap().len(), 2);
    assert!(
        saved["history"][1]["log"]
            .as_str()
            .unwrap()
            .starts_with("reused image")
    );

    // A new commit that changes no input: nothing is built, but the reused images get the new
    // commit's human tag, set on the registry to the same manifest.
    let next = m.commit("nothing that matters");
    let third = Run::of(&mut m.command(&s, &args));
    assert_eq!(third.code, 0, "{third}");
    let tagged = third.json();
    clean_pushed(&mut cleanup, &tagged);
    assert_eq!(tagged["summary"]["reused"], 4, "{third}");
    for r in results(&tagged) {
        let location = r["location"].as_str().unwrap();
        let human = format!("{location}-{}", &next[..7]);
        assert_eq!(
            r["pushed_tags"],
            serde_json::json!([format!("{registry}:{human}")]),
            "{third}"
        );
        let key = r["content_key"].as_str().unwrap();
        assert_eq!(
            registry_digest(&s, &repo_path, &human),
            registry_digest(&s, &repo_path, &format!("{location}-{key}"))
        );
    }
    assert!(!third.stderr.contains("] #1 "), "{third}");
}

/// One location per bad input, plus a good one and a broken Dockerfile: each fails alone,
/// with its step and a clear message, and nothing is pushed for it.
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn each_bad_location_fails_alone_with_a_clear_message() {
    let Some(s) = services().await else { return };
    let base = unique("dagster-deploy-test/bad");
    let reg = |name: &str| format!("{}/{base}-{name}", s.registry);
    let m = Monorepo::new();
    let entry = |name: &str, registry: Option<&str>| {
        let registry = registry.map_or(String::new(), |r| format!("      registry: {r}\n"));
        format!(
            "  - location_name: {name}\n    code_source:\n      package_name: {name}\n    build:\n      directory: {name}\n{registry}"
        )
    };
    let yaml = format!(
        "locations:\n{}{}{}{}{}{}{}",
        entry("good", Some(&reg("good"))),
        entry("broken", Some(&reg("broken"))),
        entry("noregistry", None),
        entry("unreachable", Some("127.0.0.1:1/dagster-deploy-test")),
        entry(
            "unknownhost",
            Some("no-such-host.invalid/dagster-deploy-test")
        ),
        entry("nodockerfile", Some(&reg("nodockerfile"))),
        entry("toolarge", Some(&reg("toolarge"))),
    );
    m.write("dagster_cloud.yaml", &yaml);
    m.write(
        "dagster-deploy.toml",
        "[locations.nodockerfile]\ndockerfile = \"nodockerfile/Missing.Dockerfile\"\n",
    );
    let simple = format!("FROM {}\nCOPY hello.txt /hello.txt\n", s.base_image);
    for name in [
        "good",
        "noregistry",
        "unreachable",
        "unknownhost",
        "nodockerfile",
        "toolarge",
    ] {
        m.write(&format!("{name}/Dockerfile"), &simple);
        m.write(&format!("{name}/hello.txt"), "hello\n");
    }
    m.write("toolarge/big.bin", &"x".repeat(64 * 1024));
    m.write(
        "broken/Dockerfile",
        &format!(
            "FROM {}\nRUN echo marker-before-failure && exit 3\n",
            s.base_image
        ),
    );
    m.commit("locations");

    let mut cleanup = Cleanup::new(&s);
    let run = Run::of(&mut m.command(
        &s,
        &[
            "build",
            "--all",
            "--json",
            "--max-context-size",
            "32K",
            "--network",
            "none",
        ],
    ));
    assert_eq!(run.code, 1, "{run}");
    let json = run.json();
    clean_pushed(&mut cleanup, &json);
    let all = results(&json);
    assert_eq!(result(&all, "good")["status"], "built", "{run}");
    assert_eq!(json["summary"]["failed"], 6, "{run}");

    let failure = |name: &str| {
        let r = result(&all, name);
        assert_eq!(r["status"], "failed", "{name}: {r:#}");
        assert_eq!(r["pushed_tags"], serde_json::json!([]), "{name}");
        let f = r["failure"].clone();
        (
            f["step"].as_str().unwrap().to_string(),
            f["message"].as_str().unwrap().to_string(),
            f,
        )
    };
    let (step, message, f) = failure("broken");
    assert_eq!(step, "build");
    assert!(message.contains("exit code: 3"), "{message}");
    let tail: Vec<&str> = f["log_tail"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tail.iter().any(|l| l.contains("marker-before-failure")),
        "{tail:?}"
    );
    assert!(
        run.stderr
            .contains("[broken] FAILED: failed at step `build`"),
        "{run}"
    );

    let (step, message, f) = failure("noregistry");
    assert_eq!(step, "configure");
    assert_eq!(
        message,
        "location `noregistry` must be built but has no `build.registry`"
    );
    assert!(f["hint"].as_str().unwrap().contains("dagster_cloud.yaml"));

    let (step, message, _) = failure("unreachable");
    assert_eq!(step, "check");
    assert!(
        message.contains("cannot connect to the registry 127.0.0.1:1"),
        "{message}"
    );

    let (step, message, _) = failure("unknownhost");
    assert_eq!(step, "check");
    assert!(
        message.contains("unknown registry host no-such-host.invalid"),
        "{message}"
    );

    let (step, message, _) = failure("nodockerfile");
    assert_eq!(step, "context");
    assert!(
        message.contains("Missing.Dockerfile not found"),
        "{message}"
    );

    let (step, message, _) = failure("toolarge");
    assert_eq!(step, "context");
    assert!(
        message.contains("larger than the limit of 32.0 KiB"),
        "{message}"
    );

    for name in ["broken", "nodockerfile", "toolarge"] {
        assert_eq!(
            registry_tags(&s, &format!("{base}-{name}")),
            Vec::<String>::new(),
            "{name} pushed something"
        );
    }
    assert_eq!(registry_tags(&s, &format!("{base}-good")).len(), 3);
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn a_location_without_dockerfile_gets_a_generated_one() {
    let Some(s) = services().await else { return };
    let shim = python_shim_image(&s);
    let repo_path = unique("dagster-deploy-test/generated");
    let m = Monorepo::new();
    m.write(
        "dagster_cloud.yaml",
        &format!(
            "locations:\n  - location_name: gen\n    code_source:\n      module_name: app\n    \
             build:\n      directory: gen\n      registry: {}/{repo_path}\n",
            s.registry
        ),
    );
    m.write(
        "dagster-deploy.toml",
        &format!("[locations.gen]\nbase_image = \"{shim}\"\n"),
    );
    m.write("gen/requirements.txt", "dagster\n");
    m.write("gen/app.py", "print('hi')\n");
    m.write("gen/.dockerignore", "notes.txt\n");
    m.write("gen/notes.txt", "not in the image\n");
    m.commit("gen");

    let printed = Run::of(&mut m.command(&s, &["build", "--all", "--print-dockerfile"]));
    assert_eq!(printed.code, 0, "{printed}");
    assert!(
        printed.stdout.starts_with("# ---- gen (generated)\n"),
        "{printed}"
    );
    assert!(
        printed.stdout.contains(&format!("FROM {shim}\n")),
        "{printed}"
    );

    let mut cleanup = Cleanup::new(&s);
    let run = Run::of(&mut m.command(&s, &["build", "--all", "--json", "--network", "none"]));
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    clean_pushed(&mut cleanup, &json);
    let image = json["results"][0]["image"].as_str().unwrap().to_string();
    assert_eq!(
        s.read_from_image(&image, "/pip.log"),
        "pip install --no-cache-dir -r requirements.txt\n"
    );
    let files = s.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "ls",
        "-a",
        "/opt/dagster/app",
    ]);
    // BuildKit reads the generated Dockerfile from the session, not from the context: `COPY .`
    // copies exactly what .dockerignore lets through.
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        [".", "..", ".dockerignore", "app.py", "requirements.txt"]
    );
}

/// The classic builder on a fresh CI runner (no local layers): the build pulls
/// `<location>-latest` and the engine reuses its layers for the steps that did not change.
/// (BuildKit imports the cache from the registry instead: tests/build_fresh_runner.rs.)
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn layers_are_reused_from_the_pushed_cache_image_on_a_fresh_engine() {
    let Some(s) = services().await else { return };
    let repo_path = unique("dagster-deploy-test/cache");
    let marker = unique("slow-step");
    let m = one_location(
        &s,
        &format!("{}/{repo_path}", s.registry),
        &format!("RUN echo {marker} > /slow\nCOPY hello.txt /\n"),
    );
    let mut cleanup = Cleanup::new(&s);
    let classic = ["build", "--all", "--json", "--builder", "classic"];
    let first = Run::of(&mut m.command(&s, &classic));
    assert_eq!(first.code, 0, "{first}");
    let json = first.json();
    // Forget every local copy, as on a new runner.
    for tag in json["results"][0]["pushed_tags"].as_array().unwrap() {
        s.docker(&["rmi", tag.as_str().unwrap()]);
    }
    m.write("app/hello.txt", "changed\n");
    m.commit("change the last step's input");
    let second = Run::of(&mut m.command(&s, &classic));
    assert_eq!(second.code, 0, "{second}");
    clean_pushed(&mut cleanup, &second.json());
    let cache = format!("{}/{repo_path}:app-latest", s.registry);
    cleanup.image(&cache);
    assert!(
        second
            .stderr
            .contains(&format!("[app] pulling {cache} for its layer cache")),
        "{second}"
    );
    let after_run_step = second
        .stderr
        .split(&format!("RUN echo {marker} > /slow\n"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        after_run_step.starts_with("[app]  ---> Using cache\n"),
        "{second}"
    );
}

/// `build` records the results for a separate deploy job; the state folder may come from
/// DAGSTER_BUILD_STATEDIR, the organisation and deployment from the environment.
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn build_records_results_in_the_state_folder_named_by_the_environment() {
    let Some(s) = services().await else { return };
    let repo_path = unique("dagster-deploy-test/deploy");
    let m = one_location(
        &s,
        &format!("{}/{repo_path}", s.registry),
        "COPY hello.txt /\n",
    );
    let state = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::new(&s);
    let run = Run::of(
        m.command(&s, &["build", "--all", "--json", "--no-cache-from"])
            .env("DAGSTER_BUILD_STATEDIR", state.path())
            .env("DAGSTER_CLOUD_ORGANIZATION", "acme")
            .env("DAGSTER_CLOUD_DEPLOYMENT", "staging")
            .env("GITHUB_REPOSITORY", "acme/mono"),
    );
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(json["summary"]["built"], 1, "{run}");
    assert_eq!(json["statedir"], state.path().to_string_lossy().as_ref());
    let saved: Value =
        serde_json::from_slice(&std::fs::read(state.path().join("location-app.json")).unwrap())
            .unwrap();
    assert_eq!(saved["url"], "https://acme.dagster.cloud");
    assert_eq!(saved["deployment_name"], "staging");
    assert_eq!(saved["location_name"], "app");
    // The same git facts `deploy` and `ci init` record, so a later `ci deploy` sends them.
    assert_eq!(saved["build"]["repo_owner"], "acme");
    assert_eq!(saved["build"]["repo_name"], "mono");
    assert_eq!(
        saved["build"]["build_config"]["registry"],
        format!("{}/{repo_path}", s.registry)
    );
    assert_eq!(saved["build_output"]["image"], json["results"][0]["image"]);

    // Settings come from where every command reads them, the dagster-cloud config file too.
    let config = state.path().join("dagster-cloud-config");
    std::fs::write(&config, "organization: beta\ndefault_deployment: staging\n").unwrap();
    let other = tempfile::tempdir().unwrap();
    let run = Run::of(
        m.command(&s, &["build", "--all", "--json", "--no-cache-from"])
            .env("DAGSTER_BUILD_STATEDIR", other.path())
            .env("DAGSTER_CLOUD_CLI_CONFIG", &config),
    );
    assert_eq!(run.code, 0, "{run}");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(other.path().join("location-app.json")).unwrap())
            .unwrap();
    assert_eq!(saved["url"], "https://beta.dagster.cloud");
    assert_eq!(saved["deployment_name"], "staging");
}
