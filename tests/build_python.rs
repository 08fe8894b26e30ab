//! Real Python builds with BuildKit on `python:3.11-slim` made on this machine from Debian
//! packages (scripts/python-base-image.sh): a uv-style location installing dagster from PyPI
//! whose image loads its definitions, its rebuild on a fresh runner (no local images, no local
//! build cache: the dependency steps come from the registry's cache), and a location without a
//! Dockerfile whose generated one installs exactly the locked versions.
//!
//! Needs `scripts/services.sh start` and `scripts/python-base-image.sh` (scripts/test.sh runs
//! both).

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use bollard::query_parameters::PruneBuildOptions;
use serde_json::Value;
use support::{Cleanup, Monorepo, Run, Services, clean_pushed, copy_dir, services, unique};

const PYTHON_IMAGE: &str = "python:3.11-slim";

/// The services, with the Python base image required (under CI a missing one fails).
async fn python_services() -> Option<Services> {
    let s = services().await?;
    match s.engine.client().inspect_image(PYTHON_IMAGE).await {
        Ok(_) => Some(s),
        Err(e) if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") => {
            panic!("{PYTHON_IMAGE} is missing ({e}): run scripts/python-base-image.sh")
        }
        Err(_) => {
            eprintln!("SKIPPED: {PYTHON_IMAGE} is missing; run scripts/python-base-image.sh");
            None
        }
    }
}

struct Record {
    id: String,
    description: String,
    parents: Vec<String>,
}

/// Deletes the engine's build cache records of one build chain: those whose description has
/// `marker` and everything built on them (a shared engine: other builds' cache stays).
async fn forget_build_cache(s: &Services, marker: &str) {
    let docker = s.engine.client();
    let socket = s
        .docker_host
        .strip_prefix("unix://")
        .expect("the test engine listens on a unix socket");
    for _ in 0..10 {
        // Raw JSON: API 1.41 names a record's parent `Parent`, later ones `Parents`.
        let out = std::process::Command::new("curl")
            .args(["-sf", "--unix-socket", socket, "http://engine/system/df"])
            .output()
            .expect("run curl");
        let usage: Value = serde_json::from_slice(&out.stdout).expect("engine disk usage");
        let records: Vec<Record> = usage["BuildCache"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Record {
                id: r["ID"].as_str().unwrap_or_default().to_string(),
                description: r["Description"].as_str().unwrap_or_default().to_string(),
                parents: r["Parents"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(std::iter::once(&r["Parent"]))
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect(),
            })
            .collect();
        let mut doomed: BTreeSet<String> = records
            .iter()
            .filter(|r| r.description.contains(marker))
            .map(|r| r.id.clone())
            .collect();
        loop {
            let before = doomed.len();
            for r in &records {
                if r.parents.iter().any(|p| doomed.contains(p)) {
                    doomed.insert(r.id.clone());
                }
            }
            if doomed.len() == before {
                break;
            }
        }
        if doomed.is_empty() {
            return;
        }
        let filters = std::collections::HashMap::from([(
            "id".to_string(),
            doomed.into_iter().collect::<Vec<_>>(),
        )]);
        let options = PruneBuildOptions {
            filters: Some(filters),
            ..Default::default()
        };
        docker
            .prune_build(Some(options))
            .await
            .expect("prune build cache");
    }
    panic!("build cache records of {marker} are still in use");
}

/// Runs `command` in `image` without network; its stdout.
fn run_in(s: &Services, image: &str, command: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "none", image];
    args.extend(command);
    s.docker(&args)
}

/// The number BuildKit gave the step whose line contains `text`, and whether it was cached.
fn step_cached(stderr: &str, text: &str) -> bool {
    let number = stderr
        .lines()
        .find(|l| l.contains(text) && l.contains("] #"))
        .and_then(|l| l.split("] #").nth(1)?.split(' ').next().map(str::to_string))
        .unwrap_or_else(|| panic!("no step `{text}` in:\n{stderr}"));
    stderr
        .lines()
        .any(|l| l.ends_with(&format!("] #{number} CACHED")))
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn realistic_location_loads_its_definitions_and_a_fresh_runner_rebuilds_only_the_code() {
    let Some(s) = python_services().await else {
        return;
    };
    let mut cleanup = Cleanup::new(&s);
    let repo = format!("{}/{}", s.registry, unique("dagster-deploy-test/realistic"));
    let salt = unique("realistic-salt");
    let m = Monorepo::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/buildkit/realistic"),
        &m.path().join("realistic"),
    );
    m.write(
        "dagster_cloud.yaml",
        &format!(
            "locations:\n  - location_name: realistic\n    code_source: {{module_name: \
             realistic.definitions}}\n    build: {{directory: realistic, registry: {repo}}}\n"
        ),
    );
    m.commit("realistic");
    let salt_arg = format!("CACHE_SALT={salt}");
    let args = ["build", "--all", "--json", "--build-arg", &salt_arg];

    let cold = Run::of(&mut m.command(&s, &args));
    let json = cold.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    let first = &json["results"][0];
    assert_eq!(first["builder"], "buildkit");
    assert_eq!(first["cached_steps"], 0, "{json:#}");
    let image = first["image"].as_str().unwrap().to_string();
    let validated = run_in(
        &s,
        &image,
        &[
            "dagster",
            "definitions",
            "validate",
            "-m",
            "realistic.definitions",
        ],
    );
    assert!(
        validated.contains("Validation successful for code location realistic.definitions"),
        "{validated}"
    );

    // A fresh runner: none of this build's images or build cache is left on the engine.
    for tag in first["pushed_tags"].as_array().unwrap() {
        s.docker(&["rmi", tag.as_str().unwrap()]);
    }
    forget_build_cache(&s, &salt).await;
    m.write(
        "realistic/realistic/greeting.py",
        "GREETING = \"hello again\"\n",
    );
    m.commit("code only");
    let warm = Run::of(&mut m.command(&s, &args));
    let json: Value = warm.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(warm.code, 0, "{}", warm.stderr);
    let second = &json["results"][0];
    assert_eq!(second["status"], "built");
    // The dependency steps came from the cache in the registry; the code steps ran.
    assert!(
        step_cached(&warm.stderr, "pip install --no-cache-dir uv"),
        "{}",
        warm.stderr
    );
    assert!(
        step_cached(&warm.stderr, "--no-install-project"),
        "{}",
        warm.stderr
    );
    assert!(!step_cached(&warm.stderr, "] COPY . ."), "{}", warm.stderr);
    assert!(second["cached_steps"].as_u64().unwrap() >= 3, "{json:#}");
    assert!(
        warm.stderr.contains(&format!(
            "of {} steps cached",
            second["steps"].as_u64().unwrap()
        )),
        "the summary line counts cached steps: {}",
        warm.stderr
    );
    let image = second["image"].as_str().unwrap();
    let greeting = run_in(
        &s,
        image,
        &[
            "python",
            "-c",
            "from realistic.greeting import GREETING; print(GREETING)",
        ],
    );
    assert_eq!(greeting, "hello again\n");
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn generated_dockerfile_installs_exactly_the_locked_versions() {
    let Some(s) = python_services().await else {
        return;
    };
    let mut cleanup = Cleanup::new(&s);
    let repo = format!("{}/{}", s.registry, unique("dagster-deploy-test/generated"));
    let m = Monorepo::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/buildkit/locked");
    copy_dir(&fixture, &m.path().join("locked"));
    m.write("locked/locked_project.py", "VALUE = 1\n");
    m.write(
        "dagster_cloud.yaml",
        &format!(
            "locations:\n  - location_name: locked\n    code_source: {{module_name: \
             locked_project}}\n    build: {{directory: locked, registry: {repo}}}\n"
        ),
    );
    m.commit("no Dockerfile");

    let printed = Run::of(&mut m.command(&s, &["build", "--all", "--print-dockerfile"]));
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    assert!(
        printed.stdout.contains("\nFROM python:3.11-slim\n"),
        "{}",
        printed.stdout
    );
    assert!(
        printed
            .stdout
            .contains("uv sync --frozen --no-dev --no-install-project")
    );

    let run = Run::of(&mut m.command(&s, &["build", "--all", "--json"]));
    let json = run.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let image = json["results"][0]["image"].as_str().unwrap();
    // PyPI's newest are six 1.17 and idna 3.10+: the lock's versions mean `--frozen` held.
    let script = "import importlib.metadata as m; print(m.version('six'), m.version('idna'))";
    let versions = run_in(&s, image, &["python", "-c", script]);
    assert_eq!(versions, "1.16.0 3.4\n");

    // `.python-version` wins over requires-python (shown, not built: no 3.12 image here).
    m.write("locked/.python-version", "3.12\n");
    let printed = Run::of(&mut m.command(&s, &["build", "--all", "--print-dockerfile"]));
    assert!(
        printed.stdout.contains("\nFROM python:3.12-slim\n"),
        "{}",
        printed.stdout
    );
}
