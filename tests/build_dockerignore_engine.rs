//! `.dockerignore` checked against the real engine and the real Docker CLI, with a Dockerfile
//! that lists what `COPY .` put in the image: our classic build (the tar we stream) against
//! `docker build` without BuildKit, and our BuildKit build (the session's file sync) against
//! `docker buildx build`. Each pair must be equal; the classic listing must match the
//! hand-written expectation and agree with the entries of our tar. The two builders differ
//! where Docker's do: BuildKit enters an excluded folder for a glob exception (`!**/*.py`) and
//! never puts an ignored Dockerfile or `.dockerignore` (or their folder) in the context.
//!
//! Needs `scripts/services.sh start` (see tests/support).

mod support;

use std::path::{Path, PathBuf};

use dagster_deploy::build::{
    BuildContext, BuildRequest, Builder, ContextOptions, EntryKind, build_image,
};
use support::{Cleanup, Node, Services, services, unique, write_tree};

/// Lists `/ctx` as `./path <type> <mode or link target>`, one line per path.
fn listing_dockerfile(base: &str) -> String {
    format!(
        "FROM {base}\n\
         COPY . /ctx\n\
         RUN cd /ctx && find . -mindepth 1 | while read -r p; do \
           if [ -L \"$p\" ]; then echo \"$p l $(readlink \"$p\")\"; \
           elif [ -d \"$p\" ]; then echo \"$p d $(stat -c %a \"$p\")\"; \
           else echo \"$p f $(stat -c %a \"$p\")\"; fi; done > /listing\n"
    )
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn path_of(line: &str) -> &str {
    line.split(' ').next().unwrap_or(line)
}

/// Builds `dir` with both builders, ours and the CLI's, and checks the listings against
/// `expected` (and `buildkit_expected` where BuildKit's differ).
async fn compare_with_docker(
    s: &Services,
    dir: &Path,
    dockerfile: Option<PathBuf>,
    expected: &[&str],
    buildkit_expected: Option<&[&str]>,
) {
    let mut cleanup = Cleanup::new(s);
    let ours_tag = cleanup.image(&format!("{}:ours", unique("dagster-deploy-test/ignore")));
    let cli_tag = cleanup.image(&format!("{}:cli", unique("dagster-deploy-test/ignore")));

    let mut options = ContextOptions::new("fixture", dir);
    options.dockerfile = dockerfile.clone();
    let ctx = BuildContext::prepare(&options).unwrap();
    let entries = ctx.entries().to_vec();
    // The classic builder, as `docker build` without BuildKit: it drops ignored build files.
    let request = BuildRequest {
        builder: Builder::Classic,
        tag: Some(ours_tag.clone()),
        network: Some("none".into()),
        ..Default::default()
    };
    build_image(&s.engine, ctx, &request, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("our build failed: {e}"));
    let ours = sorted_lines(&s.read_from_image(&ours_tag, "/listing"));

    // BuildKit reads the context through our session, filtered as for `docker buildx build`.
    let buildkit_tag = cleanup.image(&format!("{}:bk", unique("dagster-deploy-test/ignore")));
    let request = BuildRequest {
        builder: Builder::BuildKit,
        tag: Some(buildkit_tag.clone()),
        ..request
    };
    let ctx = BuildContext::prepare(&options).unwrap();
    build_image(&s.engine, ctx, &request, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("our BuildKit build failed: {e}"));
    let buildkit = sorted_lines(&s.read_from_image(&buildkit_tag, "/listing"));

    let dockerfile_arg = dockerfile
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let dir_arg = dir.to_string_lossy().into_owned();
    let cli_build = |command: &[&str], tag: &str| {
        let mut args = command.to_vec();
        args.extend(["-q", "--network", "none", "-t", tag]);
        if let Some(path) = &dockerfile_arg {
            args.extend(["-f", path.as_str()]);
        }
        args.push(&dir_arg);
        s.docker(&args);
        sorted_lines(&s.read_from_image(tag, "/listing"))
    };
    let cli = cli_build(&["build"], &cli_tag);
    let buildx_tag = cleanup.image(&format!("{}:buildx", unique("dagster-deploy-test/ignore")));
    let buildx = cli_build(&["buildx", "build"], &buildx_tag);
    let buildkit_paths: Vec<&str> = buildkit.iter().map(|l| path_of(l)).collect();
    assert_eq!(
        buildkit_paths,
        buildkit_expected.unwrap_or(expected),
        "image built by BuildKit from our session:\n{buildkit:#?}"
    );
    assert_eq!(
        buildkit, buildx,
        "our BuildKit session and `docker buildx build` put different files in the image"
    );

    let paths: Vec<&str> = ours.iter().map(|l| path_of(l)).collect();
    assert_eq!(paths, expected, "image built from our context:\n{ours:#?}");
    assert_eq!(
        ours, cli,
        "our context and `docker build` put different files in the image"
    );

    // Every entry we sent that the engine kept is in the image, with its type and mode.
    for entry in &entries {
        let path = format!("./{}", entry.path.display());
        let Some(line) = ours.iter().find(|l| path_of(l) == path) else {
            continue;
        };
        let want = match &entry.kind {
            EntryKind::Directory => format!("{path} d {:o}", entry.mode),
            EntryKind::File | EntryKind::Generated { .. } => format!("{path} f {:o}", entry.mode),
            EntryKind::Symlink { target } => format!("{path} l {}", target.display()),
            EntryKind::Fifo => continue,
        };
        assert_eq!(line, &want);
    }
    // And nothing is in the image that we did not send (parents of sent paths aside).
    for path in &paths {
        let rel = path.trim_start_matches("./");
        let sent = entries.iter().any(|e| {
            let p = e.path.to_string_lossy();
            p == rel || p.starts_with(&format!("{rel}/"))
        });
        assert!(sent, "{path} is in the image but not in our context");
    }
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn patterns_exceptions_slashes_comments_modes_and_links() {
    let Some(s) = services().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dockerfile = listing_dockerfile(&s.base_image);
    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", &dockerfile),
            Node::File(
                ".dockerignore",
                "# a comment line\n\
                 **/*.pyc\n\
                 **/__pycache__\n\
                 *.md\n\
                 !README.md\n\
                 \n\
                 docs\n\
                 !docs/keep.txt\n\
                 /build\n\
                 logs/\n\
                 secret.txt\n \
                 # spaced\n\
                 temp?\n\
                 data/file[0-2].csv\n\
                 dangling\n",
            ),
            Node::File("README.md", "r"),
            Node::File("CHANGES.md", "c"),
            Node::File("docs/guide.md", ""),
            Node::File("docs/keep.txt", ""),
            Node::File("docs/other.txt", ""),
            Node::File("src/app.py", ""),
            Node::File("src/app.pyc", ""),
            Node::File("src/__pycache__/app.cpython-311.pyc", ""),
            Node::File("src/pkg/mod.py", ""),
            Node::File("src/pkg/mod.pyc", ""),
            Node::File("build/out.bin", ""),
            Node::File("sub/build/keep.bin", ""),
            Node::File("logs/a.log", ""),
            Node::File("logs/nested/b.log", ""),
            Node::File("secret.txt", ""),
            Node::File("# spaced", ""),
            Node::File("temp1", ""),
            Node::File("tempab", ""),
            Node::File("data/file1.csv", ""),
            Node::File("data/file2.csv", ""),
            Node::File("data/filex.csv", ""),
            Node::Mode("bin/run.sh", "#!/bin/sh\n", 0o755),
            Node::Mode("private.key", "k", 0o600),
            Node::Dir("restricted", 0o700),
            Node::File("restricted/x.txt", ""),
            Node::Link("link-to-readme", "README.md"),
            Node::Link("link-to-dir", "src"),
            Node::Link("dangling", "nowhere"),
        ],
    );
    compare_with_docker(
        &s,
        tmp.path(),
        None,
        &[
            "./.dockerignore",
            "./Dockerfile",
            "./README.md",
            "./bin",
            "./bin/run.sh",
            "./data",
            "./data/filex.csv",
            "./docs",
            "./docs/keep.txt",
            "./link-to-dir",
            "./link-to-readme",
            "./private.key",
            "./restricted",
            "./restricted/x.txt",
            "./src",
            "./src/app.py",
            "./src/pkg",
            "./src/pkg/mod.py",
            "./sub",
            "./sub/build",
            "./sub/build/keep.bin",
            "./tempab",
        ],
        None,
    )
    .await;
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn whitelist_and_ignored_build_files() {
    let Some(s) = services().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dockerfile = listing_dockerfile(&s.base_image);
    write_tree(
        tmp.path(),
        &[
            Node::File("Dockerfile", &dockerfile),
            // `*` also ignores Dockerfile and .dockerignore: the classic engine gets them and
            // leaves them out of the image; BuildKit reads them and never puts them in the
            // context. `!**/*.py` does not reach into `vendor` for the classic builder (it
            // only enters an excluded directory for exceptions that start with it); BuildKit
            // enters it for any glob exception.
            Node::File(".dockerignore", "*\n!src\n!**/*.py\nsrc/**/*.tmp\n"),
            Node::File("top.py", ""),
            Node::File("other.txt", ""),
            Node::File("src/a.py", ""),
            Node::File("src/b.tmp", ""),
            Node::File("src/deep/c.tmp", ""),
            Node::File("src/deep/d.txt", ""),
            Node::File("vendor/v.py", ""),
            Node::File("vendor/v.txt", ""),
        ],
    );
    compare_with_docker(
        &s,
        tmp.path(),
        None,
        &[
            "./src",
            "./src/a.py",
            "./src/deep",
            "./src/deep/d.txt",
            "./top.py",
        ],
        Some(&[
            "./src",
            "./src/a.py",
            "./src/deep",
            "./src/deep/d.txt",
            "./top.py",
            "./vendor",
            "./vendor/v.py",
        ]),
    )
    .await;
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn dockerfile_in_an_ignored_subdirectory() {
    let Some(s) = services().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dockerfile = listing_dockerfile(&s.base_image);
    write_tree(
        tmp.path(),
        &[
            Node::File("docker/Dockerfile", &dockerfile),
            Node::File("docker/notes.txt", ""),
            Node::File(".dockerignore", "docker\n*.log\n"),
            Node::File("app.py", ""),
            Node::File("x.log", ""),
        ],
    );
    compare_with_docker(
        &s,
        tmp.path(),
        Some(tmp.path().join("docker/Dockerfile")),
        &["./.dockerignore", "./app.py", "./docker"],
        // BuildKit reads the Dockerfile from the ignored folder, which stays out.
        Some(&["./.dockerignore", "./app.py"]),
    )
    .await;
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn dockerfile_outside_the_context() {
    let Some(s) = services().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dockerfile = listing_dockerfile(&s.base_image);
    write_tree(
        tmp.path(),
        &[
            Node::File("other/Dockerfile.custom", &dockerfile),
            Node::File("ctx/.dockerignore", "*.log\n"),
            Node::File("ctx/app.py", ""),
            Node::File("ctx/x.log", ""),
            Node::File("ctx/sub/y.txt", ""),
            Node::File("bare/app.py", ""),
        ],
    );
    let outside = tmp.path().join("other/Dockerfile.custom");
    compare_with_docker(
        &s,
        &tmp.path().join("ctx"),
        Some(outside.clone()),
        &["./.dockerignore", "./app.py", "./sub", "./sub/y.txt"],
        None,
    )
    .await;
    // Without a .dockerignore, the generated one drops itself and the Dockerfile.
    compare_with_docker(
        &s,
        &tmp.path().join("bare"),
        Some(outside),
        &["./app.py"],
        None,
    )
    .await;
}
