//! `build::run` with a test engine and a test registry (no Docker needed): how many builds run
//! at once, reuse of images the registry has, push order, and `--fail-fast`.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::head;
use dagster_deploy::build::{
    self, BuildOptions, BuildRequest, BuildStatus, BuildTarget, Builder, BuiltImage, ContextBody,
    ContextOptions, DockerfileSource, Engine, EngineError, ImageDetails, ImageRef, Progress,
    PushedImage, RegistryCredentials, Services,
};
use dagster_deploy::progress::Reporter;
use dagster_deploy::registry::{Keychain, RegistryClient};
use futures_util::StreamExt;
use support::{Node, write_tree};

/// A registry that has exactly the given `path:tag` manifests.
async fn fake_registry(present: &[&str]) -> String {
    let present: Arc<HashSet<String>> = Arc::new(present.iter().map(|s| s.to_string()).collect());
    let app = Router::new()
        .route(
            "/v2/{*rest}",
            head(
                |State(present): State<Arc<HashSet<String>>>, Path(rest): Path<String>| async move {
                    let found = rest
                        .rsplit_once("/manifests/")
                        .is_some_and(|(path, tag)| present.contains(&format!("{path}:{tag}")));
                    if found {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    }
                },
            ),
        )
        .with_state(present);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr.to_string()
}

#[derive(Default)]
struct FakeEngine {
    calls: Mutex<Vec<String>>,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    /// Builds of tags containing this fail at once.
    fail: Option<String>,
    /// How long a (non-failing) build takes.
    build_time: Duration,
}

impl FakeEngine {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Engine for FakeEngine {
    async fn build_image(
        &self,
        request: &BuildRequest,
        mut context: ContextBody,
        _: &Progress<'_>,
    ) -> Result<BuiltImage, EngineError> {
        let tag = request.tag.clone().unwrap_or_default();
        self.calls.lock().unwrap().push(format!("build {tag}"));
        while let Some(chunk) = context.next().await {
            chunk.unwrap();
        }
        if self.fail.as_ref().is_some_and(|f| tag.contains(f.as_str())) {
            return Err(EngineError::Build {
                message: "The command '/bin/sh -c exit 3' returned a non-zero code: 3".into(),
                log: vec!["Step 2/2 : RUN exit 3".into()],
            });
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.build_time).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(BuiltImage {
            id: format!("sha256:{tag}"),
            builder: Builder::Classic,
            steps: None,
        })
    }

    async fn tag_image(&self, source: &str, target: &ImageRef) -> Result<(), EngineError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("tag {source} {target}"));
        Ok(())
    }

    async fn push_image(
        &self,
        image: &ImageRef,
        credentials: Option<&RegistryCredentials>,
        _: &Progress<'_>,
    ) -> Result<PushedImage, EngineError> {
        let user = credentials.map_or("anonymous", |c| c.username.as_str());
        self.calls
            .lock()
            .unwrap()
            .push(format!("push {image} as {user}"));
        Ok(PushedImage {
            digest: Some("sha256:d".into()),
        })
    }

    async fn pull_image(
        &self,
        image: &ImageRef,
        _: Option<&RegistryCredentials>,
        _: &Progress<'_>,
    ) -> Result<bool, EngineError> {
        self.calls.lock().unwrap().push(format!("pull {image}"));
        Ok(false)
    }

    async fn inspect_image(&self, _: &str) -> Result<Option<ImageDetails>, EngineError> {
        Ok(None)
    }

    async fn remove_image(&self, _: &str) -> Result<bool, EngineError> {
        Ok(false)
    }
}

fn target(dir: &std::path::Path, registry: &str, name: &str, cache: bool) -> BuildTarget {
    let location_dir = dir.join(name);
    write_tree(
        &location_dir,
        &[Node::File("Dockerfile", "FROM scratch\nCOPY . /\n")],
    );
    let repository = ImageRef::repository(&format!("{registry}/team")).unwrap();
    BuildTarget {
        location: name.to_string(),
        content_key: format!("ck-{name}"),
        image: repository.with_tag(&format!("{name}-ck-{name}")).unwrap(),
        extra_tags: vec![repository.with_tag(&format!("{name}-abc1234")).unwrap()],
        cache_image: cache.then(|| repository.with_tag(&format!("{name}-latest")).unwrap()),
        dockerfile: DockerfileSource::File(location_dir.join("Dockerfile")),
        context: ContextOptions::new(name, &location_dir),
        push: true,
        secrets: Vec::new(),
        request: BuildRequest {
            build_args: BTreeMap::new(),
            ..Default::default()
        },
    }
}

async fn run(
    engine: &FakeEngine,
    registry: &str,
    targets: Vec<BuildTarget>,
    options: BuildOptions,
) -> build::BuildReport {
    let client = RegistryClient::default();
    let keychain = Keychain::with(vec![RegistryCredentials {
        registry: registry.to_string(),
        username: "ci-user".into(),
        password: "pw".into(),
    }]);
    let services = Services {
        engine,
        registry: &client,
        keychain: &keychain,
        env: &|_| None,
    };
    let targets = targets.into_iter().map(Ok).collect();
    build::run(&services, targets, &options, &Reporter::quiet()).await
}

#[tokio::test]
async fn at_most_jobs_builds_run_at_once_and_results_keep_plan_order() {
    let registry = fake_registry(&[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let names = ["a", "b", "c", "d", "e"];
    let targets = names
        .iter()
        .map(|n| target(tmp.path(), &registry, n, false))
        .collect();
    let engine = FakeEngine {
        build_time: Duration::from_millis(100),
        ..Default::default()
    };
    let options = BuildOptions {
        jobs: 2,
        ..Default::default()
    };
    let report = run(&engine, &registry, targets, options).await;
    assert_eq!(engine.most_at_once.load(Ordering::SeqCst), 2);
    let order: Vec<&str> = report.results.iter().map(|r| r.location.as_str()).collect();
    assert_eq!(order, names);
    assert_eq!(report.summary.built, 5);
    assert!(report.success());
}

#[tokio::test]
async fn existing_images_are_reused_and_new_ones_pushed_key_tag_first() {
    // The human tag exists too (a re-run of the same commit); adding a missing one is tested
    // against the real registry (build_cli).
    let registry = fake_registry(&["team:old-ck-old", "team:old-abc1234"]).await;
    let tmp = tempfile::tempdir().unwrap();
    let targets = vec![
        target(tmp.path(), &registry, "old", true),
        target(tmp.path(), &registry, "new", true),
    ];
    let engine = FakeEngine::default();
    let report = run(&engine, &registry, targets, BuildOptions::default()).await;
    let old = &report.results[0];
    assert_eq!(old.status, BuildStatus::Reused);
    assert_eq!(
        old.image.as_deref(),
        Some(format!("{registry}/team:old-ck-old").as_str())
    );
    assert!(old.pushed_tags.is_empty());
    let r = |t: &str| format!("{registry}/team:{t}");
    assert_eq!(
        engine.calls(),
        [
            format!("pull {}", r("new-latest")),
            format!("build {}", r("new-ck-new")),
            format!("push {} as ci-user", r("new-ck-new")),
            format!("tag sha256:{} {}", r("new-ck-new"), r("new-abc1234")),
            format!("push {} as ci-user", r("new-abc1234")),
            format!("tag sha256:{} {}", r("new-ck-new"), r("new-latest")),
            format!("push {} as ci-user", r("new-latest")),
        ]
    );
    let new = &report.results[1];
    assert_eq!(new.status, BuildStatus::Built);
    assert_eq!(new.pushed_tags.len(), 3);
    assert_eq!(new.digest.as_deref(), Some("sha256:d"));
}

#[tokio::test]
async fn without_push_images_are_built_and_the_registry_is_never_asked() {
    // The registry has the image, yet a build without push does not look: a fork's pull
    // request has no credentials to ask with.
    let registry = fake_registry(&["team:old-ck-old"]).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut old = target(tmp.path(), &registry, "old", false);
    old.push = false;
    old.extra_tags.clear();
    let engine = FakeEngine::default();
    let report = run(&engine, &registry, vec![old], BuildOptions::default()).await;
    let result = &report.results[0];
    assert_eq!(result.status, BuildStatus::Built);
    assert!(result.pushed_tags.is_empty());
    assert_eq!(
        engine.calls(),
        [format!("build {registry}/team:old-ck-old")]
    );
}

#[tokio::test]
async fn one_failure_leaves_the_others_unless_fail_fast() {
    let registry = fake_registry(&[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let make = || {
        vec![
            target(tmp.path(), &registry, "broken", false),
            target(tmp.path(), &registry, "fine", false),
        ]
    };
    let engine = FakeEngine {
        fail: Some("broken".into()),
        build_time: Duration::from_millis(50),
        ..Default::default()
    };
    let report = run(&engine, &registry, make(), BuildOptions::default()).await;
    assert_eq!(report.results[0].status, BuildStatus::Failed);
    assert_eq!(report.results[1].status, BuildStatus::Built);
    let failure = report.results[0].failure.as_ref().unwrap();
    assert_eq!(failure.step, build::Step::Build);
    assert_eq!(failure.log_tail, ["Step 2/2 : RUN exit 3"]);
    assert!(!report.success());

    // With --fail-fast the slow build is abandoned as soon as the other fails.
    let engine = FakeEngine {
        fail: Some("broken".into()),
        build_time: Duration::from_secs(600),
        ..Default::default()
    };
    let options = BuildOptions {
        fail_fast: true,
        ..Default::default()
    };
    let report = run(&engine, &registry, make(), options).await;
    assert_eq!(report.results[0].status, BuildStatus::Failed);
    assert_eq!(report.results[1].status, BuildStatus::Cancelled);
    assert_eq!(report.summary.cancelled, 1);
    assert!(!engine.calls().iter().any(|c| c.starts_with("push")));
}
