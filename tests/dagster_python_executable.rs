//! A Python-executable location in a real Dagster: the example's `ingest` deployed with
//! `serverless deploy-python-executable` (no Docker) to a `serve` whose agent runs it from the
//! uploaded PEX files, is LOADED with its asset keys in the Dagster UI serve runs; a code-only
//! change deployed the same way shows its new asset there.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::Monorepo;
use support::dagster::{ServeWithUi, install, loaded, wait_for, want};

/// python3.11 and the pex tools (scripts/pex-tools.sh); missing is a failure, never a skip.
fn require_pex_tools() {
    assert!(
        Command::new("python3.11")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "python3.11 is missing"
    );
    let dir = dagster_deploy::pex::tools::tools_dir();
    for tool in ["pex", "uv"] {
        assert!(
            dir.join("venv/bin").join(tool).exists()
                || dagster_deploy::python_tools::which(tool).is_some(),
            "{tool} is missing: run scripts/pex-tools.sh"
        );
    }
}

fn deploy_python_executable(serve: &ServeWithUi, dir: &Path) -> support::Run {
    serve.against(
        Command::new(env!("CARGO_BIN_EXE_dagster-deploy"))
            .current_dir(dir)
            .args([
                "serverless",
                "deploy-python-executable",
                "--location-file",
                "dagster_cloud.yaml",
                "--location-name",
                "ingest",
            ])
            .env("DAGSTER_CLOUD_DEPLOYMENT", "prod")
            .env("DAGSTER_CLOUD_CLI_CONFIG", dir.join(".no-config"))
            .env_remove("DAGSTER_CLOUD_ORGANIZATION"),
    )
}

#[cfg_attr(
    not(ci),
    ignore = "needs pex, uv and Dagster from PyPI (scripts/test.sh)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn a_python_executable_location_loads_in_the_dagster_ui() {
    require_pex_tools();
    tokio::task::spawn_blocking(install).await.expect("install");
    let m = Monorepo::example("localhost:5000/dagster-deploy-test/unused");
    let serve = ServeWithUi::with_args(&["--code-server-ports", "42300-42399"], &[]);
    let http = reqwest::Client::new();
    let limit = Duration::from_secs(180);

    let first = deploy_python_executable(&serve, m.path());
    assert_eq!(first.code, 0, "{first}\n--- serve\n{}", serve.log());
    wait_for(&http, &serve.ui, limit, "ingest", |l| {
        loaded(l) == want(&[("ingest", &["event_counts", "raw_events"])])
    })
    .await;

    let definitions = m.path().join("ingest/ingest/definitions.py");
    let code = std::fs::read_to_string(&definitions).expect("read");
    let changed = code.replace(
        "defs = dg.Definitions(assets=[raw_events, event_counts])",
        "@dg.asset\ndef pex_change() -> int:\n    return 2\n\n\n\
         defs = dg.Definitions(assets=[raw_events, event_counts, pex_change])",
    );
    assert_ne!(code, changed, "the example's ingest definitions changed");
    m.write("ingest/ingest/definitions.py", &changed);
    let second = deploy_python_executable(&serve, m.path());
    assert_eq!(second.code, 0, "{second}\n--- serve\n{}", serve.log());
    wait_for(&http, &serve.ui, limit, "the new ingest", |l| {
        loaded(l) == want(&[("ingest", &["event_counts", "pex_change", "raw_events"])])
    })
    .await;
}
