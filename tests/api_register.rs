//! `api::register` end to end over real git repositories: the local store, our server through
//! the client, the never-backwards rule, concurrent deploys of two commits, and (with the
//! services from `scripts/services.sh`) LOADED through the real registry.

mod support;

use support::git_in as git;
use support::server as common;

use std::collections::BTreeMap;
use std::path::Path;

use dagster_deploy::api::{ApiToken, Client, ClientOptions};
use dagster_deploy::build::{Engine, ImageRef};
use dagster_deploy::deploy::select::{self, Against};
use dagster_deploy::deploy::{
    Deployment, LOCAL_STORE_DIR, LocalStore, RegisterOptions, RegisterStatus, Remote, register,
};
use dagster_deploy::plan::{self, Action, CiFacts, Plan, PlanRequest};
use dagster_deploy::server::{RegistryAccess, RegistryCredentials};
use serde_json::json;

const YAML: &str = "\
locations:
  - location_name: a
    code_source:
      package_name: a
    build:
      directory: a
      registry: localhost:5000/a
  - location_name: b
    code_source:
      module_name: b.defs
    build:
      directory: b
      registry: localhost:5000/b
";

/// A repository with locations `a` and `b`; returns the first commit.
fn repo(dir: &Path) -> String {
    git(dir, &["init", "-q", "-b", "main"]);
    for loc in ["a", "b"] {
        std::fs::create_dir_all(dir.join(loc)).unwrap();
        std::fs::write(dir.join(loc).join("code.py"), "x = 1\n").unwrap();
    }
    std::fs::write(dir.join("dagster_cloud.yaml"), YAML).unwrap();
    commit(dir, "first")
}

fn commit(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", message]);
    git(dir, &["rev-parse", "HEAD"])
}

fn plan_at(dir: &Path, base: Option<&str>, head: Option<&str>, all: bool) -> Plan {
    let req = PlanRequest {
        config: dir.join("dagster_cloud.yaml"),
        base: base.map(str::to_string),
        head: head.map(str::to_string),
        include_dirty: Some(false),
        force: Vec::new(),
        all,
    };
    plan::plan(&req, &CiFacts::default(), &|_| None).unwrap()
}

fn images(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(l, i)| (l.to_string(), i.to_string()))
        .collect()
}

/// Our in-process server's `prod` deployment, through the client.
fn remote_target(server: &common::TestServer) -> Remote {
    let client = Client::new(
        &format!("{}/prod", server.url()),
        ApiToken::new(server.token.clone()).unwrap(),
        Some("prod"),
        ClientOptions::default(),
    )
    .unwrap();
    Remote { client }
}

/// Every location the deployment holds, with its deployed commit: what plans compare with.
async fn deployed_locations(
    target: &dyn Deployment,
) -> Result<BTreeMap<String, Option<String>>, dagster_deploy::error::Error> {
    let all = PlanRequest::default();
    Ok(select::deployed(&Against::Deployment(target), &all)
        .await?
        .unwrap_or_default())
}

fn status(report: &dagster_deploy::deploy::RegisterReport, location: &str) -> RegisterStatus {
    report
        .locations
        .iter()
        .find(|l| l.location == location)
        .unwrap_or_else(|| panic!("{location} not in {report:?}"))
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_registers_builds_keeps_images_on_redeploy_and_never_goes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c1 = repo(dir);
    let target = LocalStore::create(dir, "prod", None).unwrap();
    assert!(deployed_locations(&target).await.unwrap().is_empty());

    // Everything built, but b's build failed: only a is registered.
    let plan = plan_at(dir, None, None, true);
    let report = register(
        &plan,
        &images(&[("a", "localhost:5000/a:ck-1")]),
        &target,
        &RegisterOptions::default(),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(status(&report, "a"), RegisterStatus::Loaded);
    assert_eq!(status(&report, "b"), RegisterStatus::NotRegistered);
    assert!(!report.succeeded());
    let docs = target.current_documents().await.unwrap();
    assert_eq!(
        docs["a"],
        json!({
            "location_name": "a",
            "code_source": {"package_name": "a"},
            "image": "localhost:5000/a:ck-1",
            "git": {"commit_hash": c1},
        })
    );
    assert!(!docs.contains_key("b"));
    assert!(
        dir.join(LOCAL_STORE_DIR)
            .join("deployments.sqlite3")
            .is_file()
    );

    // Only a's entry changes: a is redeployed with the image it has.
    std::fs::write(
        dir.join("dagster_cloud.yaml"),
        YAML.replace(
            "package_name: a\n",
            "package_name: a\n    attribute: defs\n",
        ),
    )
    .unwrap();
    let c2 = commit(dir, "a: attribute");
    let plan = plan_at(dir, Some(&c1), None, false);
    assert_eq!(plan.location("a").unwrap().action, Action::Redeploy);
    assert_eq!(plan.location("b").unwrap().action, Action::Skip);
    let report = register(
        &plan,
        &images(&[]),
        &target,
        &RegisterOptions::default(),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(status(&report, "a"), RegisterStatus::Loaded);
    let docs = target.current_documents().await.unwrap();
    assert_eq!(docs["a"]["image"], "localhost:5000/a:ck-1");
    assert_eq!(docs["a"]["attribute"], "defs");
    assert_eq!(
        deployed_locations(&target).await.unwrap(),
        BTreeMap::from([("a".to_string(), Some(c2.clone()))])
    );

    // Deploying the older commit again: refused unless forced.
    let old = plan_at(dir, None, Some(&c1), true);
    let report = register(
        &old,
        &images(&[("a", "localhost:5000/a:old"), ("b", "localhost:5000/b:old")]),
        &target,
        &RegisterOptions::default(),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(status(&report, "a"), RegisterStatus::SkippedBackwards);
    let skipped = report.locations.iter().find(|l| l.location == "a").unwrap();
    assert!(skipped.message.contains("--force"), "{}", skipped.message);
    // b was never deployed, so it is registered.
    assert_eq!(status(&report, "b"), RegisterStatus::Loaded);
    assert_eq!(
        target.current_documents().await.unwrap()["a"]["git"]["commit_hash"],
        c2
    );
    let forced = RegisterOptions {
        force: true,
        ..Default::default()
    };
    let report = register(
        &old,
        &images(&[("a", "localhost:5000/a:old")]),
        &target,
        &forced,
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(status(&report, "a"), RegisterStatus::Loaded);
    assert_eq!(
        target.current_documents().await.unwrap()["a"]["git"]["commit_hash"],
        c1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deploy_locations_call_to_our_server_and_load_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c1 = repo(dir);
    let server = common::TestServer::start().await;
    let target = remote_target(&server);
    let plan = plan_at(dir, None, None, true);
    let progress = std::sync::Mutex::new(Vec::new());
    let report = register(
        &plan,
        &images(&[("a", "reg.example/a:1"), ("b", "reg.example/b:1")]),
        &target,
        &RegisterOptions::default(),
        &|l| progress.lock().unwrap().push(l.to_string()),
    )
    .await
    .unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.registered(), ["a", "b"]);
    let fields: Vec<String> = server
        .take_requests()
        .into_iter()
        .map(|r| r.root_fields.join(","))
        .collect();
    assert_eq!(
        fields,
        [
            "locationsAsDocument",
            "deployLocations",
            "currentDeployment",
            "agents",
            "workspaceOrError"
        ]
    );
    assert_eq!(
        deployed_locations(&target).await.unwrap(),
        BTreeMap::from([
            ("a".to_string(), Some(c1.clone())),
            ("b".to_string(), Some(c1))
        ])
    );
    assert!(progress.lock().unwrap()[0].contains("Registered a, b"));
    server.stop().await;
}

/// Two deploys of two commits of one repository race for the same locations, each through
/// its own store connection (as two processes would): the newer commit always ends up
/// deployed, whichever registers first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deploys_never_let_the_older_commit_win() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let c1 = repo(&dir);
    std::fs::write(dir.join("a/code.py"), "x = 2\n").unwrap();
    std::fs::write(dir.join("b/code.py"), "x = 2\n").unwrap();
    let c2 = commit(&dir, "second");
    let older = plan_at(&dir, None, Some(&c1), true);
    let newer = plan_at(&dir, None, Some(&c2), true);
    for round in 0..8 {
        let deployment = format!("race-{round}");
        let mut handles = Vec::new();
        // Alternate who starts first.
        let order = if round % 2 == 0 {
            [(&older, "old"), (&newer, "new")]
        } else {
            [(&newer, "new"), (&older, "old")]
        };
        for (plan, tag) in order {
            let (plan, dir, deployment) = (plan.clone(), dir.clone(), deployment.clone());
            handles.push(std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let target = LocalStore::create(&dir, &deployment, None).unwrap();
                    let imgs =
                        images(&[("a", &format!("r/a:{tag}")), ("b", &format!("r/b:{tag}"))]);
                    register(&plan, &imgs, &target, &RegisterOptions::default(), &|_| {})
                        .await
                        .unwrap()
                })
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        let target = LocalStore::create(&dir, &deployment, None).unwrap();
        let docs = target.current_documents().await.unwrap();
        for loc in ["a", "b"] {
            assert_eq!(docs[loc]["git"]["commit_hash"], c2, "round {round}: {loc}");
            assert_eq!(docs[loc]["image"], format!("r/{loc}:new"));
        }
    }
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaded_through_the_real_registry() {
    let Some(s) = support::services().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    repo(dir);
    let mut cleanup = support::Cleanup::new(&s);
    let path = support::unique("dagster-deploy-test/register");
    let pushed = format!("{}/{path}:a1", s.registry);
    cleanup.image(&pushed);
    let remote = ImageRef::parse(&pushed).unwrap();
    s.engine.tag_image(&s.base_image, &remote).await.unwrap();
    s.engine
        .push_image(&remote, Some(&s.credentials()), &|_| {})
        .await
        .unwrap();
    let missing = format!("{}/{path}:never-pushed", s.registry);
    let access = RegistryAccess {
        credentials: vec![RegistryCredentials {
            registry: s.registry.clone(),
            username: s.user.clone(),
            password: s.password.clone().into(),
        }],
        insecure_registries: vec![],
    };
    let plan = plan_at(dir, None, None, true);
    let imgs = images(&[("a", &pushed), ("b", &missing)]);

    // Through our server's built-in agent...
    let server = common::TestServer::start_with(Some(access.clone())).await;
    let remote_target = remote_target(&server);
    // ...and through the local store's own check.
    let local_target = LocalStore::create(dir, "prod", Some(access)).unwrap();
    for target in [&remote_target as &dyn Deployment, &local_target] {
        let report = register(&plan, &imgs, target, &RegisterOptions::default(), &|_| {})
            .await
            .unwrap();
        assert_eq!(status(&report, "a"), RegisterStatus::Loaded, "{report:?}");
        assert_eq!(
            status(&report, "b"),
            RegisterStatus::LoadFailed,
            "{report:?}"
        );
        let b = report.locations.iter().find(|l| l.location == "b").unwrap();
        let error = b.load_error.as_ref().unwrap();
        assert!(
            error
                .message
                .contains(&format!("image '{missing}' was not found")),
            "{}",
            error.message
        );
    }
    server.stop().await;
}

/// The deployed commit is each location's base: a change made since it was deployed is built
/// even when the common base (here: the last commit) would not show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_commits_are_the_plans_base_per_location() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c1 = repo(dir);
    let target = LocalStore::create(dir, "prod", None).unwrap();
    let first = plan_at(dir, None, None, true);
    register(
        &first,
        &images(&[("a", "r/a:1"), ("b", "r/b:1")]),
        &target,
        &RegisterOptions::default(),
        &|_| {},
    )
    .await
    .unwrap();
    // a changes (a pipeline that never deployed it), then an unrelated commit.
    std::fs::write(dir.join("a/code.py"), "x = 2\n").unwrap();
    let c2 = commit(dir, "a changes");
    std::fs::write(dir.join("README.md"), "hi\n").unwrap();
    commit(dir, "docs");
    let req = PlanRequest {
        config: dir.join("dagster_cloud.yaml"),
        base: Some(c2.clone()),
        include_dirty: Some(false),
        ..Default::default()
    };
    let common = plan::plan(&req, &CiFacts::default(), &|_| None).unwrap();
    assert_eq!(common.location("a").unwrap().action, Action::Skip);
    let deployed = deployed_locations(&target).await.unwrap();
    assert_eq!(deployed["a"].as_deref(), Some(c1.as_str()));
    let own = plan::plan_with_bases(&req, &CiFacts::default(), &|_| None, Some(&deployed)).unwrap();
    let a = own.location("a").unwrap();
    assert_eq!(a.action, Action::Build, "{:?}", a.reason);
    assert_eq!(a.changed_paths, ["a/code.py"]);
    assert_eq!(own.location("b").unwrap().action, Action::Skip);
    // A base this clone does not have falls back to the common base.
    let unknown = BTreeMap::from([
        (
            "a".to_string(),
            Some("0123456789abcdef0123456789abcdef01234567".to_string()),
        ),
        ("b".to_string(), None),
    ]);
    let fallback =
        plan::plan_with_bases(&req, &CiFacts::default(), &|_| None, Some(&unknown)).unwrap();
    assert_eq!(fallback.location("a").unwrap().action, Action::Skip);
    assert_eq!(fallback.location("b").unwrap().action, Action::Skip);
    // A location the deployment does not hold is built, whatever git says.
    let only_a = BTreeMap::from([("a".to_string(), Some(c1.clone()))]);
    let partial =
        plan::plan_with_bases(&req, &CiFacts::default(), &|_| None, Some(&only_a)).unwrap();
    let b = partial.location("b").unwrap();
    assert_eq!(b.action, Action::Build);
    assert_eq!(b.reason.message, "not deployed yet");
}
