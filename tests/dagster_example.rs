//! The example monorepo, end to end in a real Dagster: its Dockerfiles built on the machine-made
//! `python:3.11-slim` with dagster from PyPI, pushed to the test registry, deployed with
//! `dagster-deploy deploy` to a `serve` that runs each location's code server and the Dagster
//! UI. Then what the webserver's GraphQL API shows: every location loaded with its asset keys;
//! a code-only change redeployed while a client polls every 200 ms, never missing nor in error;
//! a revision whose import raises failing `deploy` with the Python traceback while the previous
//! one keeps serving;
//! a deleted location gone from the webserver and its container removed; nothing left running
//! once serve stops.
//!
//! The images keep fixed names in the registry (`dagster-deploy-test/dagster-example`), so a
//! rerun reuses them by content key instead of installing dagster again.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::dagster::{
    Location, ServeWithUi, containers_of, install, loaded, require_python_base, wait_for, want,
    workspace,
};
use support::{Monorepo, services};

const LOCATIONS: [&str; 4] = ["analytics", "ingest", "ml", "reporting"];

fn example_assets() -> Vec<(String, Vec<String>)> {
    want(&[
        ("analytics", &["customer_spend", "orders", "top_customer"]),
        ("ingest", &["event_counts", "raw_events"]),
        ("ml", &["price_per_item_model", "training_set"]),
        ("reporting", &["report_line_count", "spend_report"]),
    ])
}

/// Why a poll is bad: a location missing, or not loaded.
fn problems(seen: Option<&[Location]>, expected: &[&str]) -> Option<String> {
    let Some(seen) = seen else {
        return Some("no answer".into());
    };
    let by_name: BTreeMap<&str, &Location> = seen.iter().map(|l| (l.name.as_str(), l)).collect();
    let bad: Vec<String> = expected
        .iter()
        .filter_map(|name| match by_name.get(name) {
            None => Some(format!("{name} missing")),
            Some(l) if l.typename != "RepositoryLocation" => {
                Some(format!("{name}: {} {:?}", l.typename, l.error))
            }
            Some(_) => None,
        })
        .collect();
    (!bad.is_empty()).then(|| bad.join("; "))
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker, the registry, the Python base image and Dagster from PyPI (scripts/test.sh)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn the_example_monorepo_runs_in_the_dagster_ui() {
    let Some(s) = services().await else { return };
    require_python_base(&s);
    // Installed before serve needs it, so its UI does not wait for pip.
    tokio::task::spawn_blocking(install).await.expect("install");
    let m = Monorepo::example(&format!(
        "{}/dagster-deploy-test/dagster-example",
        s.registry
    ));
    let serve = ServeWithUi::start(&s, "42200-42299");
    let http = reqwest::Client::new();

    // Deployed: every location LOADED in the real webserver, with its asset keys.
    let deploy = serve.against(&mut m.command(&s, &["deploy"]));
    assert_eq!(deploy.code, 0, "{deploy}\n--- serve\n{}", serve.log());
    let limit = Duration::from_secs(120);
    let seen = wait_for(&http, &serve.ui, limit, "the example's locations", |l| {
        loaded(l) == example_assets()
    })
    .await;
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert_eq!(containers_of(&s, &serve.server_id()), LOCATIONS);

    // A code-only change, redeployed while a client polls every 200 ms.
    let definitions = m.path().join("ingest/ingest/definitions.py");
    let code = std::fs::read_to_string(&definitions).expect("read");
    let changed = code.replace(
        "defs = dg.Definitions(assets=[raw_events, event_counts])",
        "@dg.asset(group_name=\"landing\")\ndef active_users(raw_events: list[dict]) -> int:\n    \
         return len({row[\"user\"] for row in raw_events})\n\n\n\
         defs = dg.Definitions(assets=[raw_events, event_counts, active_users])",
    );
    assert_ne!(code, changed, "the example's ingest definitions changed");
    m.write("ingest/ingest/definitions.py", &changed);
    m.commit("ingest: active_users");
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (http, ui, stop) = (http.clone(), serve.ui.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut polls, mut bad) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let seen = workspace(&http, &ui).await;
                polls += 1;
                if let Some(p) = problems(seen.as_deref(), &LOCATIONS) {
                    bad.push(format!("poll {polls}: {p}"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (polls, bad)
        })
    };
    let mut cmd = m.command(&s, &["deploy"]);
    cmd.env("DAGSTER_CLOUD_URL", &serve.url)
        .env("DAGSTER_CLOUD_API_TOKEN", &serve.token);
    let redeploy = tokio::task::spawn_blocking(move || support::Run::of(&mut cmd))
        .await
        .expect("deploy");
    assert_eq!(redeploy.code, 0, "{redeploy}\n--- serve\n{}", serve.log());
    assert!(
        redeploy.stdout.contains("\n1 location: "),
        "only ingest is built: {redeploy}"
    );
    let new_ingest = ["active_users", "event_counts", "raw_events"];
    let began = Instant::now();
    loop {
        let seen = workspace(&http, &serve.ui).await.unwrap_or_default();
        if seen
            .iter()
            .any(|l| l.name == "ingest" && l.assets == new_ingest)
        {
            break;
        }
        assert!(
            began.elapsed() < limit,
            "the new ingest never showed: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let (polls, bad) = poller.await.expect("poller");
    assert!(polls > 0);
    assert!(
        bad.is_empty(),
        "{} of {polls} polls bad: {bad:#?}",
        bad.len()
    );
    eprintln!("{polls} polls during the code-only redeploy, none bad");

    // A revision whose import raises: `deploy` exits 1 with the real traceback (the user's
    // frame and the cause), and the previous revision keeps serving in the webserver.
    let broken = format!(
        "{changed}\n\ndef _settings() -> dict:\n    return {{}}[\"INGEST_SETTINGS\"]\n\n\n\
         try:\n    _settings()\nexcept KeyError as e:\n    \
         raise RuntimeError(\"ingest settings are missing\") from e\n"
    );
    m.write("ingest/ingest/definitions.py", &broken);
    m.commit("ingest: needs settings");
    let mut cmd = m.command(&s, &["deploy"]);
    cmd.env("DAGSTER_CLOUD_URL", &serve.url)
        .env("DAGSTER_CLOUD_API_TOKEN", &serve.token);
    let failed = tokio::task::spawn_blocking(move || support::Run::of(&mut cmd))
        .await
        .expect("deploy");
    assert_eq!(failed.code, 1, "{failed}\n--- serve\n{}", serve.log());
    let said = format!("{}{}", failed.stdout, failed.stderr);
    for needed in [
        "ingest",
        "keeps serving",
        "RuntimeError: ingest settings are missing",
        "KeyError: 'INGEST_SETTINGS'",
        "ingest/definitions.py\", line",
    ] {
        assert!(said.contains(needed), "missing {needed:?}:\n{failed}");
    }
    let seen = workspace(&http, &serve.ui).await.unwrap_or_default();
    assert!(
        problems(Some(&seen), &LOCATIONS).is_none()
            && seen
                .iter()
                .any(|l| l.name == "ingest" && l.assets == new_ingest),
        "the previous ingest keeps serving: {seen:#?}"
    );

    // Deleted: gone from the webserver, its code server removed, the others untouched.
    // `deployment` commands take the deployment's URL.
    let prod = format!("{}/prod", serve.url);
    let delete =
        serve.against(&mut m.command(&s, &["deployment", "delete-location", "ml", "--url", &prod]));
    assert_eq!(delete.code, 0, "{delete}");
    wait_for(&http, &serve.ui, limit, "ml removed", |l| {
        l.len() == 3
            && !l.iter().any(|x| x.name == "ml")
            && problems(Some(l), &["analytics", "ingest", "reporting"]).is_none()
    })
    .await;
    let began = Instant::now();
    while containers_of(&s, &serve.server_id()) != ["analytics", "ingest", "reporting"] {
        assert!(
            began.elapsed() < limit,
            "containers: {:?}",
            containers_of(&s, &serve.server_id())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Stopped: no code server, no webserver left.
    let mut serve = serve;
    serve.stop();
    let left = containers_of(&s, &serve.server_id());
    assert!(
        left.is_empty(),
        "code servers left after serve stopped: {left:?}\n--- serve\n{}",
        serve.log()
    );
    assert!(!dagster_deploy::dagster::graphql::is_up(&http, &serve.ui).await);
}
