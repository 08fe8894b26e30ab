//! Build, tag, inspect and push through the real engine to the htpasswd-protected registry.
//!
//! Needs `scripts/services.sh start` (see tests/support).

mod support;

use std::sync::Mutex;

use dagster_deploy::build::{
    BuildContext, BuildError, BuildRequest, Builder, ContextError, ContextOptions, Engine,
    EngineError, ImageRef, ProgressEvent, RegistryCredentials, build_image,
};
use support::{Cleanup, Node, Services, registry_digest, services, unique, write_tree};

/// Builds a one-file image tagged `tag` from a Dockerfile body added after `FROM <base>`.
async fn build(
    s: &Services,
    tag: &str,
    steps: &str,
    request: BuildRequest,
) -> Result<String, BuildError> {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", &format!("FROM {}\n{steps}", s.base_image)),
            Node::File("hello.txt", "hello from the context\n"),
        ],
    );
    let ctx = BuildContext::prepare(&ContextOptions::new("pushy", tmp.path())).unwrap();
    let request = BuildRequest {
        tag: Some(tag.to_string()),
        network: Some("none".into()),
        ..request
    };
    build_image(&s.engine, ctx, &request, &|_| {})
        .await
        .map(|b| b.id)
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn build_tag_inspect_and_push_with_credentials() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let local = cleanup.image(&format!("{}:v1", unique("dagster-deploy-test/push")));
    let mut request = BuildRequest::default();
    request
        .build_args
        .insert("GREETING".into(), "hi-from-build-arg".into());
    request
        .labels
        .insert("io.dagster.location".into(), "pushy".into());
    let id = build(
        &s,
        &local,
        "ARG GREETING\nCOPY hello.txt /hello.txt\nRUN echo \"$GREETING\" > /greeting\n",
        request,
    )
    .await
    .unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        s.read_from_image(&local, "/greeting"),
        "hi-from-build-arg\n"
    );
    assert_eq!(
        s.read_from_image(&local, "/hello.txt"),
        "hello from the context\n"
    );

    let details = s.engine.inspect_image(&local).await.unwrap().unwrap();
    assert_eq!(details.id, id);
    assert_eq!(
        details
            .labels
            .get("io.dagster.location")
            .map(String::as_str),
        Some("pushy")
    );
    assert!(details.repo_tags.contains(&local));

    let path = unique("dagster-deploy-test/pushed");
    let remote = ImageRef::parse(&format!("{}/{path}:v1", s.registry)).unwrap();
    cleanup.image(&remote.to_string());
    s.engine.tag_image(&id, &remote).await.unwrap();
    assert!(s.engine.image_exists(&remote.to_string()).await.unwrap());

    let lines = Mutex::new(Vec::new());
    let progress = |e: ProgressEvent<'_>| lines.lock().unwrap().extend(e.line().map(String::from));
    let pushed = s
        .engine
        .push_image(&remote, Some(&s.credentials()), &progress)
        .await
        .unwrap();
    let digest = pushed.digest.expect("the engine reports the pushed digest");
    assert_eq!(
        registry_digest(&s, &path, "v1").as_deref(),
        Some(digest.as_str())
    );
    assert!(
        !lines.lock().unwrap().is_empty(),
        "push progress was reported"
    );

    // The pushed digest is recorded locally too.
    let details = s
        .engine
        .inspect_image(&remote.to_string())
        .await
        .unwrap()
        .unwrap();
    assert!(
        details.repo_digests.iter().any(|d| d.ends_with(&digest)),
        "{:?}",
        details.repo_digests
    );

    assert!(s.engine.remove_image(&remote.to_string()).await.unwrap());
    assert!(!s.engine.image_exists(&remote.to_string()).await.unwrap());
    assert!(!s.engine.remove_image(&remote.to_string()).await.unwrap());
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn push_with_wrong_or_missing_credentials_fails_clearly() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let path = unique("dagster-deploy-test/denied");
    let remote = cleanup.image(&format!("{}/{path}:v1", s.registry));
    build(
        &s,
        &remote,
        "COPY hello.txt /hello.txt\n",
        BuildRequest::default(),
    )
    .await
    .unwrap();
    let image = ImageRef::parse(&remote).unwrap();

    let wrong = RegistryCredentials {
        password: "not-the-password".into(),
        ..s.credentials()
    };
    for credentials in [Some(&wrong), None] {
        let err = s
            .engine
            .push_image(&image, credentials, &|_| {})
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, EngineError::Push { .. }), "{err:?}");
        assert!(
            text.starts_with(&format!("push of {remote} failed: ")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "hint: the registry {} refused the credentials",
                s.registry
            )),
            "{text}"
        );
        assert!(!text.contains(&s.password), "the password leaked: {text}");
    }
    assert_eq!(registry_digest(&s, &path, "v1"), None, "nothing was pushed");
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn failing_step_reports_the_tail_of_the_build_log() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let tag = cleanup.image(&format!("{}:broken", unique("dagster-deploy-test/broken")));
    let err = build(
        &s,
        &tag,
        "RUN echo marker-before-failure && exit 3\n",
        BuildRequest::default(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    match &err {
        BuildError::Engine {
            location,
            source: EngineError::Build { message, log },
        } => {
            assert_eq!(location, "pushy");
            assert!(message.contains("exit code: 3"), "{message}");
            assert!(
                log.iter().any(|l| l.contains("marker-before-failure")),
                "{log:?}"
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        text.starts_with("location `pushy`: image build failed: "),
        "{text}"
    );
    assert!(!s.engine.image_exists(&tag).await.unwrap());
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn context_error_during_upload_wins_over_the_engine_error() {
    let Some(s) = services().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File(
                "Dockerfile",
                &format!("FROM {}\nCOPY . /ctx\n", s.base_image),
            ),
            Node::File("grows.bin", "small"),
        ],
    );
    let mut options = ContextOptions::new("growing", tmp.path());
    options.size_limit = Some(1024 * 1024);
    let ctx = BuildContext::prepare(&options).unwrap();
    std::fs::write(tmp.path().join("grows.bin"), vec![7u8; 2 * 1024 * 1024]).unwrap();
    let mut cleanup = Cleanup::new(&s);
    let tag = cleanup.image(&format!("{}:never", unique("dagster-deploy-test/growing")));
    // The classic builder's tar stops at the limit and says so.
    let request = BuildRequest {
        builder: Builder::Classic,
        tag: Some(tag.clone()),
        ..Default::default()
    };
    let err = build_image(&s.engine, ctx.clone(), &request, &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, BuildError::Context(ContextError::TooLarge { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("location `growing`"), "{err}");
    assert!(!s.engine.image_exists(&tag).await.unwrap());
    // BuildKit's session refuses to send it, and the build fails naming the limit.
    let request = BuildRequest {
        builder: Builder::BuildKit,
        ..request
    };
    let err = build_image(&s.engine, ctx, &request, &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("location `growing`: image build failed: ")
            && err.contains("is larger than the limit of 1.0 MiB"),
        "{err}"
    );
    assert!(!s.engine.image_exists(&tag).await.unwrap());
}
