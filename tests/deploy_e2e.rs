//! `deploy` end to end: the example monorepo → the real Docker engine → the real registry →
//! a `dagster-deploy serve` process that checks every registered image in that registry. Then
//! one location changes and the next deploy builds, pushes and registers exactly that one.
//! Also the embedded default: with no Dagster+ settings at all, `deploy` registers in
//! `.dagster-deploy/` at the repository root.

mod support;

use dagster_deploy::server::{Actor, Deployments};
use serde_json::Value;
use support::ci::Serve;
use support::{
    Cleanup, Monorepo, Run, Services, clean_pushed, python_shim_image, registry_tags, services,
    unique,
};

/// `dagster-deploy ARGS` in the monorepo, registering with the server.
fn against(m: &Monorepo, s: &Services, server: &Serve, args: &[&str]) -> Run {
    Run::of(
        m.command(s, args)
            .env("DAGSTER_CLOUD_URL", &server.url)
            .env("DAGSTER_CLOUD_API_TOKEN", &server.token),
    )
}

fn by_location<'a>(list: &'a Value, location: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|r| r["location"] == location))
        .unwrap_or_else(|| panic!("no {location} in {list:#}"))
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["location"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Every revision of `location` the server stored, through `history --json`.
fn revisions(m: &Monorepo, s: &Services, server: &Serve, location: &str) -> Vec<Value> {
    let run = against(m, s, server, &["history", location, "--json"]);
    assert_eq!(run.code, 0, "{run}");
    run.json()["revisions"].as_array().unwrap().clone()
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn example_monorepo_deploys_to_serve_then_only_the_changed_location() {
    let Some(s) = services().await else { return };
    let shim = python_shim_image(&s);
    let repo_path = unique("dagster-deploy-test/e2e");
    let registry = format!("{}/{repo_path}", s.registry);
    let m = Monorepo::example(&registry);
    let server = Serve::start(&s);
    let mut cleanup = Cleanup::new(&s);
    let base_arg = format!("BASE_IMAGE={shim}");
    let deploy = ["deploy", "--json", "--build-arg", &base_arg];

    // Git alone sees nothing new since the last commit, but the deployment holds nothing yet:
    // `plan` (like `deploy`) plans against what is deployed.
    m.commit("an unrelated commit");
    let plan = against(&m, &s, &server, &["plan", "--json"]);
    assert_eq!(plan.code, 0, "{plan}");
    for l in plan.json()["locations"].as_array().unwrap() {
        assert_eq!(l["action"], "build", "{plan}");
        assert_eq!(l["reason"]["code"], "not-deployed", "{plan}");
    }
    let git_only = against(&m, &s, &server, &["plan", "--json", "--git-only"]);
    assert_eq!(git_only.json()["summary"]["build"], 0, "{git_only}");

    // First deploy: every location is built and registered.
    let first = against(&m, &s, &server, &deploy);
    let json = first.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(first.code, 0, "{first}");
    let head = m.git(&["rev-parse", "HEAD"]);
    assert_eq!(json["summary"]["built"], 4, "{first}");
    let registration = &json["registration"];
    assert_eq!(registration["deployment"], "prod");
    assert_eq!(registration["commit"], head.as_str());
    let all = ["analytics", "ingest", "ml", "reporting"];
    assert_eq!(names(&registration["locations"]), all);
    for location in all {
        let r = by_location(&registration["locations"], location);
        assert_eq!(r["status"], "loaded", "{first}");
        assert_eq!(r["image"], by_location(&json["results"], location)["image"]);
    }
    // The stored documents are the reference's shape, with the image and commit.
    let ml = revisions(&m, &s, &server, "ml");
    assert_eq!(ml.len(), 1);
    // `--url` is the deployment URL, as in the `deployment` commands.
    let by_url = Run::of(
        m.command(&s, &["history", "ml", "--json", "--url"])
            .arg(format!("{}/prod", server.url))
            .env("DAGSTER_CLOUD_API_TOKEN", &server.token),
    );
    assert_eq!(by_url.code, 0, "{by_url}");
    assert_eq!(by_url.json()["revisions"].as_array().unwrap().len(), 1);
    let doc = &ml[0]["document"];
    assert_eq!(doc["location_name"], "ml");
    assert_eq!(doc["code_source"]["module_name"], "ml.definitions");
    assert_eq!(doc["git"]["commit_hash"], head.as_str());
    assert_eq!(doc["image"], by_location(&json["results"], "ml")["image"]);
    assert!(doc.get("build").is_none(), "{doc:#}");
    assert_eq!(
        doc["container_context"]["docker"]["env_vars"],
        serde_json::json!(["DAGSTER_EXAMPLE_ENV=dev", "MODEL_DIR=/tmp/models"])
    );

    // Change one location: exactly one build, one push, one registration.
    m.write(
        "ingest/ingest/definitions.py",
        &format!(
            "{}\n# changed\n",
            std::fs::read_to_string(m.path().join("ingest/ingest/definitions.py")).unwrap()
        ),
    );
    let second_head = m.commit("change ingest");
    let second = against(&m, &s, &server, &deploy);
    let again = second.json();
    clean_pushed(&mut cleanup, &again);
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(names(&again["results"]), ["ingest"], "{second}");
    let ingest = by_location(&again["results"], "ingest");
    assert_eq!(ingest["status"], "built");
    assert_eq!(ingest["pushed_tags"].as_array().unwrap().len(), 3);
    assert_eq!(names(&again["registration"]["locations"]), ["ingest"]);
    assert_eq!(
        by_location(&again["registration"]["locations"], "ingest")["status"],
        "loaded"
    );
    let ingest_revisions = revisions(&m, &s, &server, "ingest");
    assert_eq!(ingest_revisions.len(), 2);
    assert_eq!(
        ingest_revisions
            .iter()
            .filter(|r| r["document"]["git"]["commit_hash"] == second_head.as_str())
            .count(),
        1
    );
    for unchanged in ["analytics", "ml", "reporting"] {
        assert_eq!(
            revisions(&m, &s, &server, unchanged).len(),
            1,
            "{unchanged}"
        );
    }

    // Nothing changed since: nothing is built or registered.
    let third = against(&m, &s, &server, &deploy);
    assert_eq!(third.code, 0, "{third}");
    let nothing = third.json();
    assert_eq!(nothing["results"], serde_json::json!([]));
    assert_eq!(nothing["registration"]["locations"], serde_json::json!([]));
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn with_no_settings_deploy_uses_the_local_store_and_a_missing_image_fails_to_load() {
    let Some(s) = services().await else { return };
    let repo_path = unique("dagster-deploy-test/local");
    let registry = format!("{}/{repo_path}", s.registry);
    let m = Monorepo::new();
    let entry = |name: &str| {
        format!(
            "  - location_name: {name}\n    code_source:\n      package_name: {name}\n    \
             build:\n      directory: {name}\n      registry: {registry}\n"
        )
    };
    m.write(
        "dagster_cloud.yaml",
        &format!("locations:\n{}{}", entry("app"), entry("kept")),
    );
    for name in ["app", "kept"] {
        m.write(
            &format!("{name}/Dockerfile"),
            &format!("FROM {}\nCOPY hello.txt /\n", s.base_image),
        );
        m.write(&format!("{name}/hello.txt"), &format!("hello {name}\n"));
    }
    let first = m.commit("first");
    // From git alone the last commit changes nothing; the new store holds nothing, so the
    // first deploy builds and registers every location.
    let head = m.commit("an unrelated commit");
    let mut cleanup = Cleanup::new(&s);

    let run = Run::of(&mut m.command(&s, &["deploy", "--no-cache-from"]));
    for tag in registry_tags(&s, &repo_path) {
        cleanup.image(&format!("{registry}:{tag}"));
    }
    assert_eq!(run.code, 0, "{run}");
    let store = m.path().join(".dagster-deploy");
    assert!(
        run.stdout.contains(&format!(
            "registration in local store {} (deployment prod) at commit {}:",
            store.display(),
            &head[..7]
        )),
        "{run}"
    );
    assert_eq!(run.stdout.matches(" loaded ").count(), 2, "{run}");
    // The store is invisible to git, so the next plan sees nothing to do.
    assert_eq!(m.git(&["status", "--porcelain"]), "");
    let plan = Run::of(&mut m.command(&s, &["plan", "--json"]));
    assert_eq!(plan.code, 0, "{plan}");
    for l in plan.json()["locations"].as_array().unwrap() {
        assert_eq!(l["action"], "skip", "{plan}");
        assert_eq!(
            l["compared_with"],
            serde_json::json!({"commit": head, "source": "deployment"})
        );
    }
    // From git alone, the last commit changed nothing (yet the first deploy built both).
    let git_only = Run::of(&mut m.command(&s, &["plan", "--json", "--git-only"]));
    for l in git_only.json()["locations"].as_array().unwrap() {
        assert_eq!(l["action"], "skip", "{git_only}");
        assert_eq!(
            l["compared_with"],
            serde_json::json!({"commit": first, "source": "plan-base"})
        );
    }
    let history = Run::of(&mut m.command(&s, &["history", "app", "--json"]));
    assert_eq!(history.code, 0, "{history}");
    assert_eq!(history.json()["revisions"].as_array().unwrap().len(), 1);
    // Reading never creates: a mistyped deployment is an error, not a new deployment.
    let typo = Run::of(&mut m.command(&s, &["history", "app", "-d", "prdo"]));
    assert_ne!(typo.code, 0, "{typo}");
    assert!(typo.stderr.contains("prdo"), "{typo}");
    let names: Vec<String> = Deployments::open(&store)
        .unwrap()
        .deployments()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["prod"]);

    // Someone registers `kept` by hand with an image that was never pushed; then only its
    // entry changes, so deploy registers it again with the deployed image: a load error.
    let missing = format!("{registry}:never-pushed");
    Deployments::open(&store)
        .unwrap()
        .deploy_locations(
            "prod",
            &serde_json::json!({"locations": [{
                "location_name": "kept",
                "code_source": {"package_name": "kept"},
                "image": missing,
                "git": {"commit_hash": head},
            }]}),
            &Actor::local("test"),
        )
        .unwrap();
    let yaml = std::fs::read_to_string(m.path().join("dagster_cloud.yaml")).unwrap();
    m.write(
        "dagster_cloud.yaml",
        &yaml.replace("package_name: kept", "package_name: kept_v2"),
    );
    m.commit("kept: new package name");
    let failed = Run::of(&mut m.command(&s, &["deploy", "--json"]));
    assert_eq!(failed.code, 1, "{failed}");
    let json = failed.json();
    assert_eq!(json["results"], serde_json::json!([]), "{failed}");
    let kept = by_location(&json["registration"]["locations"], "kept");
    assert_eq!(kept["action"], "redeploy");
    assert_eq!(kept["status"], "load-failed");
    assert_eq!(kept["image"], missing.as_str());
    let message = kept["load_error"]["message"].as_str().unwrap();
    assert!(message.contains("never-pushed"), "{message}");
    assert!(!failed.stdout.contains(&s.password), "{failed}");
    assert!(!failed.stderr.contains(&s.password), "{failed}");
}
