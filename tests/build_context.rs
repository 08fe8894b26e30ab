//! The build context without an engine: what goes into the tar, in which order, with which
//! metadata, and the errors a user can cause.

mod support;

use std::path::Path;
use std::sync::Mutex;

use dagster_deploy::build::{
    BuildContext, BuildError, BuildRequest, Builder, BuiltImage, ContextBody, ContextError,
    ContextOptions, Engine, EngineError, ImageDetails, ImageRef, Progress, ProgressEvent,
    PushedImage, RegistryCredentials, build_image,
};
use futures_util::StreamExt;
use support::{Node, tar_listing, write_tree};

fn prepare(dir: &Path) -> BuildContext {
    BuildContext::prepare(&ContextOptions::new("loc", dir)).unwrap()
}

fn tar_bytes(ctx: &BuildContext) -> Vec<u8> {
    let mut out = Vec::new();
    let written = ctx.write_tar(&mut out).unwrap();
    assert_eq!(written, out.len() as u64);
    out
}

#[test]
fn entries_sorted_with_modes_symlinks_and_directories() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", "FROM scratch\n"),
            Node::Mode("b/run.sh", "#!/bin/sh\n", 0o755),
            Node::Mode("a/secret", "x", 0o600),
            Node::Dir("c", 0o700),
            Node::Link("link", "a/secret"),
            Node::Link("dangling", "does/not/exist"),
            Node::File("B-upper", "sorted before lower case"),
        ],
    );
    let ctx = prepare(tmp.path());
    assert_eq!(ctx.dockerfile(), "Dockerfile");
    assert_eq!(
        tar_listing(&tar_bytes(&ctx)),
        [
            "B-upper f 644",
            "Dockerfile f 644",
            "a d 755",
            "a/secret f 600",
            "b d 755",
            "b/run.sh f 755",
            "c d 700",
            "dangling l does/not/exist",
            "link l a/secret",
        ]
    );
}

#[test]
fn identical_inputs_give_identical_tars_whatever_the_file_times() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", "FROM scratch\n"),
            Node::File("src/app.py", "print(1)\n"),
            Node::Link("latest", "src/app.py"),
        ],
    );
    let first = tar_bytes(&prepare(tmp.path()));
    // Touch a file: same content, new modification time.
    let file = std::fs::File::options()
        .write(true)
        .open(tmp.path().join("src/app.py"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
        .unwrap();
    drop(file);
    let second = tar_bytes(&prepare(tmp.path()));
    assert_eq!(first, second);

    let mut archive = tar::Archive::new(first.as_slice());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(
            header.mtime().unwrap(),
            dagster_deploy::build::context::DEFAULT_MTIME
        );
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
    }
}

#[test]
fn dockerignore_applied_but_build_files_always_sent() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", "FROM scratch\n"),
            Node::File(".dockerignore", "*\n!src\nsrc/**/*.tmp\n"),
            Node::File("notes.txt", ""),
            Node::File("src/a.py", ""),
            Node::File("src/x/b.tmp", ""),
        ],
    );
    let listing = tar_listing(&tar_bytes(&prepare(tmp.path())));
    assert_eq!(
        listing,
        [
            ".dockerignore f 644",
            "Dockerfile f 644",
            "src d 755",
            "src/a.py f 644",
            "src/x d 755"
        ]
    );
}

#[test]
fn dockerfile_in_an_ignored_subdirectory_is_sent_without_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File("docker/Dockerfile", "FROM scratch\n"),
            Node::File("docker/other", ""),
            Node::File(".dockerignore", "docker\n"),
            Node::File("app.py", ""),
        ],
    );
    let mut options = ContextOptions::new("loc", tmp.path());
    options.dockerfile = Some(tmp.path().join("docker/Dockerfile"));
    let ctx = BuildContext::prepare(&options).unwrap();
    assert_eq!(ctx.dockerfile(), "docker/Dockerfile");
    assert_eq!(
        tar_listing(&tar_bytes(&ctx)),
        [
            ".dockerignore f 644",
            "app.py f 644",
            "docker/Dockerfile f 644"
        ]
    );
}

#[test]
fn dockerfile_outside_the_context_gets_a_generated_name_the_engine_will_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx_dir = tmp.path().join("ctx");
    write_tree(
        tmp.path(),
        &[
            Node::File("ctx/app.py", ""),
            Node::File("ctx/.dockerignore", "*.log"),
            Node::File("ctx/x.log", ""),
            Node::File("elsewhere/Dockerfile.custom", "FROM scratch\nCOPY . /\n"),
        ],
    );
    let mut options = ContextOptions::new("loc", &ctx_dir);
    options.dockerfile = Some(tmp.path().join("elsewhere/Dockerfile.custom"));
    let ctx = BuildContext::prepare(&options).unwrap();
    let name = ctx.dockerfile().to_string();
    assert!(name.starts_with(".dockerfile."), "{name}");
    // Same content, same name: the tar stays reproducible.
    assert_eq!(BuildContext::prepare(&options).unwrap().dockerfile(), name);

    let bytes = tar_bytes(&ctx);
    assert_eq!(
        tar_listing(&bytes),
        [
            ".dockerignore f 644",
            "app.py f 644",
            &format!("{name} f 600")
        ]
    );
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut contents = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
        contents.insert(path, text);
    }
    assert_eq!(contents[&name], "FROM scratch\nCOPY . /\n");
    assert_eq!(contents[".dockerignore"], format!("*.log\n{name}\n"));

    // Without a .dockerignore, one is generated that also drops itself.
    std::fs::remove_file(ctx_dir.join(".dockerignore")).unwrap();
    let ctx = BuildContext::prepare(&options).unwrap();
    let listing = tar_listing(&tar_bytes(&ctx));
    assert_eq!(
        listing,
        [
            "app.py f 644",
            "x.log f 644",
            ".dockerignore f 600",
            &format!("{name} f 600")
        ]
    );
}

#[test]
fn size_limit_names_location_and_limit() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", "FROM scratch\n"),
            Node::File("big.bin", &"x".repeat(3000)),
            Node::File("ignored.bin", &"x".repeat(10_000)),
            Node::File(".dockerignore", "ignored.bin\n"),
        ],
    );
    let mut options = ContextOptions::new("etl", tmp.path());
    options.size_limit = Some(2048);
    let err = BuildContext::prepare(&options).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ContextError::TooLarge { limit: 2048, .. }),
        "{err:?}"
    );
    assert!(
        text.starts_with("location `etl`: the build context in "),
        "{text}"
    );
    assert!(text.contains("larger than the limit of 2.0 KiB"), "{text}");

    // Ignored files do not count.
    options.size_limit = Some(4096);
    let ctx = BuildContext::prepare(&options).unwrap();
    assert!(ctx.content_size() < 4096);

    // A file that grows after preparing is caught while writing.
    std::fs::write(tmp.path().join("big.bin"), "x".repeat(5000)).unwrap();
    let err = ctx.write_tar(std::io::sink()).unwrap_err();
    assert!(matches!(err, ContextError::TooLarge { .. }), "{err:?}");
}

#[test]
fn user_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let err =
        BuildContext::prepare(&ContextOptions::new("a", tmp.path().join("nope"))).unwrap_err();
    assert!(err.to_string().contains("build directory"), "{err}");
    assert!(
        err.to_string().contains("is missing or not a directory"),
        "{err}"
    );

    let err = BuildContext::prepare(&ContextOptions::new("a", tmp.path())).unwrap_err();
    assert!(
        matches!(err, ContextError::MissingDockerfile { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("location `a`: Dockerfile "),
        "{err}"
    );

    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", "FROM scratch\n"),
            Node::File(".dockerignore", "# ok\nfine\n!\n"),
        ],
    );
    let err = BuildContext::prepare(&ContextOptions::new("a", tmp.path())).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(".dockerignore: line 3: invalid pattern `!`"),
        "{text}"
    );
}

#[test]
fn lower_case_dockerfile_is_found_like_docker_does() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[Node::File("dockerfile", "FROM scratch\n")]);
    assert_eq!(prepare(tmp.path()).dockerfile(), "dockerfile");
}

#[tokio::test]
async fn stream_gives_the_same_bytes_as_write_tar() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", "FROM scratch\n"),
            Node::File("data.bin", &"0123456789".repeat(50_000)),
        ],
    );
    let ctx = prepare(tmp.path());
    let expected = tar_bytes(&ctx);
    let (mut body, producer) = ctx.stream();
    let mut got = Vec::new();
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(producer.finish().await.unwrap(), expected.len() as u64);
    assert_eq!(got, expected);
}

/// An engine that reads the context tar and records what it got.
struct FakeEngine {
    /// Stop reading after this many chunks and fail, like an engine rejecting the upload.
    fail_after_chunks: Option<usize>,
    received: Mutex<Vec<u8>>,
    request: Mutex<Option<BuildRequest>>,
}

impl FakeEngine {
    fn new(fail_after_chunks: Option<usize>) -> FakeEngine {
        FakeEngine {
            fail_after_chunks,
            received: Mutex::new(Vec::new()),
            request: Mutex::new(None),
        }
    }
}

impl Engine for FakeEngine {
    async fn build_image(
        &self,
        request: &BuildRequest,
        mut context: ContextBody,
        progress: &Progress<'_>,
    ) -> Result<BuiltImage, EngineError> {
        *self.request.lock().unwrap() = Some(request.clone());
        let mut chunks = 0;
        while let Some(chunk) = context.next().await {
            let chunk = chunk.map_err(|e| EngineError::Build {
                message: format!("body: {e}"),
                log: vec![],
            })?;
            self.received.lock().unwrap().extend_from_slice(&chunk);
            chunks += 1;
            if self.fail_after_chunks == Some(chunks) {
                return Err(EngineError::Build {
                    message: "no space left on device".into(),
                    log: vec!["Step 1/1".into()],
                });
            }
        }
        progress(ProgressEvent::Line("Successfully built fake"));
        Ok(BuiltImage {
            id: "sha256:fake".into(),
            builder: Builder::Classic,
            steps: None,
        })
    }

    async fn tag_image(&self, _: &str, _: &ImageRef) -> Result<(), EngineError> {
        Ok(())
    }

    async fn push_image(
        &self,
        _: &ImageRef,
        _: Option<&RegistryCredentials>,
        _: &Progress<'_>,
    ) -> Result<PushedImage, EngineError> {
        Ok(PushedImage { digest: None })
    }

    async fn pull_image(
        &self,
        _: &ImageRef,
        _: Option<&RegistryCredentials>,
        _: &Progress<'_>,
    ) -> Result<bool, EngineError> {
        Ok(false)
    }

    async fn inspect_image(&self, _: &str) -> Result<Option<ImageDetails>, EngineError> {
        Ok(None)
    }

    async fn remove_image(&self, _: &str) -> Result<bool, EngineError> {
        Ok(false)
    }
}

#[tokio::test]
async fn build_image_streams_the_context_and_sets_the_dockerfile() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File("sub/Dockerfile", "FROM scratch\n"),
            Node::File("a", "1"),
        ],
    );
    let mut options = ContextOptions::new("loc", tmp.path());
    options.dockerfile = Some(tmp.path().join("sub/Dockerfile"));
    let ctx = BuildContext::prepare(&options).unwrap();
    let expected = tar_bytes(&ctx);
    let engine = FakeEngine::new(None);
    let lines = Mutex::new(Vec::new());
    let progress = |e: ProgressEvent<'_>| lines.lock().unwrap().extend(e.line().map(String::from));
    let built = build_image(&engine, ctx, &BuildRequest::default(), &progress)
        .await
        .unwrap();
    assert_eq!(built.id, "sha256:fake");
    assert_eq!(*engine.received.lock().unwrap(), expected);
    let request = engine.request.lock().unwrap().clone().unwrap();
    assert_eq!(request.dockerfile, "sub/Dockerfile");
    assert_eq!(*lines.lock().unwrap(), ["Successfully built fake"]);
}

#[tokio::test]
async fn engine_failure_is_reported_with_the_location() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", "FROM scratch\n"),
            Node::File("big", &"y".repeat(1_000_000)),
        ],
    );
    let engine = FakeEngine::new(Some(1));
    let err = build_image(
        &engine,
        prepare(tmp.path()),
        &BuildRequest::default(),
        &|_| {},
    )
    .await
    .unwrap_err();
    // The writer saw the engine stop reading, but the engine's own error is what matters.
    assert!(matches!(err, BuildError::Engine { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "location `loc`: image build failed: no space left on device\nlast lines of output:\n  Step 1/1"
    );
}

#[tokio::test]
async fn context_error_wins_over_the_engine_error_it_causes() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", "FROM scratch\n"),
            Node::File("grows", "small"),
        ],
    );
    let mut options = ContextOptions::new("loc", tmp.path());
    options.size_limit = Some(100_000);
    let ctx = BuildContext::prepare(&options).unwrap();
    std::fs::write(tmp.path().join("grows"), "z".repeat(200_000)).unwrap();
    let engine = FakeEngine::new(None);
    let err = build_image(&engine, ctx, &BuildRequest::default(), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, BuildError::Context(ContextError::TooLarge { .. })),
        "{err:?}"
    );
}

/// The ignore file is chosen as the plan chooses it: `<Dockerfile>.dockerignore` beside the
/// Dockerfile wins over `.dockerignore` at the root, and both build files are always sent.
#[test]
fn dockerfile_specific_ignore_file_wins_over_the_root_one() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            Node::File(".dockerignore", "a.txt\n"),
            Node::File("sub/Dockerfile", "FROM scratch\n"),
            Node::File("sub/Dockerfile.dockerignore", "*\n!b.txt\n"),
            Node::File("a.txt", ""),
            Node::File("b.txt", ""),
            Node::File("c.txt", ""),
        ],
    );
    let mut options = ContextOptions::new("loc", tmp.path());
    options.dockerfile = Some(tmp.path().join("sub/Dockerfile"));
    let ctx = BuildContext::prepare(&options).unwrap();
    assert_eq!(
        tar_listing(&tar_bytes(&ctx)),
        [
            "b.txt f 644",
            "sub/Dockerfile f 644",
            "sub/Dockerfile.dockerignore f 644"
        ]
    );
    // Without it, the root file applies.
    std::fs::remove_file(tmp.path().join("sub/Dockerfile.dockerignore")).unwrap();
    let listing = tar_listing(&tar_bytes(&BuildContext::prepare(&options).unwrap()));
    assert_eq!(
        listing,
        [
            ".dockerignore f 644",
            "b.txt f 644",
            "c.txt f 644",
            "sub d 755",
            "sub/Dockerfile f 644"
        ]
    );
}

/// A generated Dockerfile travels under a content-hash name the engine then drops.
#[test]
fn generated_dockerfile_is_sent_and_hidden_from_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[Node::File("app.py", "print(1)\n")]);
    let mut options = ContextOptions::new("loc", tmp.path());
    options.generated_dockerfile = Some("FROM scratch\nCOPY . /\n".into());
    let ctx = BuildContext::prepare(&options).unwrap();
    assert!(
        ctx.dockerfile().starts_with(".dockerfile."),
        "{}",
        ctx.dockerfile()
    );
    let bytes = tar_bytes(&ctx);
    let listing = tar_listing(&bytes);
    assert_eq!(listing[0], "app.py f 644");
    assert_eq!(listing[1], ".dockerignore f 600");
    assert_eq!(listing[2], format!("{} f 600", ctx.dockerfile()));
    let mut archive = tar::Archive::new(bytes.as_slice());
    let ignore = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy() == ".dockerignore")
        .map(|mut e| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            text
        })
        .unwrap();
    assert_eq!(ignore, format!(".dockerignore\n{}\n", ctx.dockerfile()));
}
