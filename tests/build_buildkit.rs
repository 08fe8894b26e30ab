//! BuildKit builds through the real engine and the htpasswd registry: every Dockerfile
//! construct the engine's frontend has, build secrets kept out of everything, bad input failing
//! only its location, a `context` other than `build.directory`, and locations sharing a build.
//!
//! Needs `scripts/services.sh start` (see tests/support).

mod support;

use std::path::Path;

use dagster_deploy::build::{Builder, DockerEngine, Engine, ImageRef};
use serde_json::Value;
use support::{
    Cleanup, Monorepo, Run, Services, clean_pushed, registry_digest, registry_tags, services,
    unique,
};

const LOCK_FIXTURE: &str = include_str!("fixtures/buildkit/locked/uv.lock");
const PYPROJECT_FIXTURE: &str = include_str!("fixtures/buildkit/locked/pyproject.toml");

fn result<'a>(json: &'a Value, location: &str) -> &'a Value {
    json["results"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["location"] == location))
        .unwrap_or_else(|| panic!("no result for {location}: {json:#}"))
}

/// A `dagster_cloud.yaml` with one location per `(name, directory)`, all pushing to `repo`.
fn yaml(repo: &str, locations: &[(&str, &str)]) -> String {
    let mut out = String::from("locations:\n");
    for (name, dir) in locations {
        out.push_str(&format!(
            "  - location_name: {name}\n    code_source: {{module_name: {name}}}\n    \
             build: {{directory: {dir}, registry: {repo}}}\n"
        ));
    }
    out
}

/// Removes the local tags of `image` and pulls it back from the registry.
async fn pull_fresh(s: &Services, image: &str) {
    s.docker(&["rmi", "-f", image]);
    let reference = ImageRef::parse(image).unwrap();
    let pulled = s
        .engine
        .pull_image(&reference, Some(&s.credentials()), &|_| {})
        .await
        .unwrap();
    assert!(pulled, "{image} is not in the registry");
}

fn run_in(s: &Services, image: &str, script: &str) -> String {
    s.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        script,
    ])
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn every_construct_builds_and_secrets_stay_out_of_image_and_output() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let path = unique("dagster-deploy-test/kit");
    let repo = format!("{}/{path}", s.registry);
    let token = format!("tok-{}", unique("secret-value"));
    let netrc_value = format!("machine pypi login ci password {}", unique("netrc"));
    let m = Monorepo::new();
    m.write("dagster_cloud.yaml", &yaml(&repo, &[("kit", "kit")]));
    m.write(
        "dagster-deploy.toml",
        "[locations.kit]\ntarget = \"final\"\nsecrets = [\"id=token,env=KIT_TOKEN\"]\n",
    );
    let base = &s.base_image;
    // Secrets are no part of a step's cache key: a marker of this run keeps earlier runs'
    // layers (with their secrets' lengths) out.
    let marker = unique("kit-run");
    m.write(
        "kit/Dockerfile",
        &format!(
            "ARG BASE={base}\n\
             FROM ${{BASE}} AS deps\n\
             RUN echo {marker} > /marker\n\
             RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /secret-length\n\
             RUN --mount=type=secret,id=netrc,target=/root/.netrc wc -c < /root/.netrc > /netrc-length\n\
             RUN --mount=type=bind,source=uv.lock,target=/lock/uv.lock \\\n    \
                 --mount=type=bind,source=pyproject.toml,target=/lock/pyproject.toml \\\n    \
                 grep -h '^name\\|^version' /lock/uv.lock /lock/pyproject.toml > /locked\n\
             RUN --mount=type=cache,target=/var/cache/kit echo kept > /var/cache/kit/m && cat /var/cache/kit/m > /cache-marker\n\
             RUN --mount=type=tmpfs,target=/scratch touch /scratch/gone && ls /scratch > /tmpfs-listing\n\
             FROM ${{BASE}} AS unused\n\
             RUN echo this stage is not needed && exit 1\n\
             FROM ${{BASE}} AS final\n\
             COPY --chmod=750 tool.sh /usr/local/bin/tool.sh\n\
             COPY --from=deps /secret-length /netrc-length /locked /cache-marker /tmpfs-listing /results/\n\
             COPY --from={base} /bin/busybox /from-image/busybox\n\
             COPY . /ctx/\n\
             RUN test ! -e /scratch/gone && test ! -e /run/secrets/token\n\
             FROM final AS after-target\n\
             RUN exit 1\n"
        ),
    );
    m.write("kit/uv.lock", LOCK_FIXTURE);
    m.write("kit/pyproject.toml", PYPROJECT_FIXTURE);
    m.write("kit/tool.sh", "#!/bin/sh\necho tool\n");
    m.write("kit/.dockerignore", "ignored.txt\n");
    m.write("kit/ignored.txt", "must not reach the engine\n");
    m.commit("kit");
    let netrc = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(netrc.path(), &netrc_value).unwrap();

    let netrc_flag = format!("id=netrc,src={}", netrc.path().display());
    let run = Run::of(
        m.command(&s, &["build", "--all", "--json", "--secret", &netrc_flag])
            .env("KIT_TOKEN", &token),
    );
    let json = run.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let kit = result(&json, "kit");
    assert_eq!(kit["status"], "built", "{json:#}");
    assert_eq!(kit["builder"], "buildkit", "{json:#}");
    assert!(kit["steps"].as_u64().unwrap() >= 8, "{json:#}");
    assert!(
        run.stderr.contains("#1 "),
        "BuildKit's steps are logged:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("this stage is not needed"),
        "{}",
        run.stderr
    );

    let image = kit["image"].as_str().unwrap().to_string();
    cleanup.image(&image);
    pull_fresh(&s, &image).await;
    let results = run_in(
        &s,
        &image,
        "cat /results/secret-length /results/netrc-length /results/cache-marker /results/tmpfs-listing; \
         stat -c %a /usr/local/bin/tool.sh; /from-image/busybox true && echo from-image; \
         ls /ctx; cat /results/locked",
    );
    let lines: Vec<&str> = results.lines().map(str::trim).collect();
    assert_eq!(lines[0], token.len().to_string(), "{results}");
    assert_eq!(lines[1], netrc_value.len().to_string(), "{results}");
    assert_eq!(
        &lines[2..6],
        ["kept", "gone", "750", "from-image"],
        "{results}"
    );
    assert!(!results.contains("ignored.txt"), ".dockerignore: {results}");
    assert!(
        results.contains("Dockerfile") && results.contains("tool.sh"),
        "{results}"
    );
    assert!(results.contains("name = \"six\"") && results.contains("version = \"1.16.0\""));
    assert!(results.contains("name = \"locked-project\""), "{results}");

    // The image (layers, config, history, labels) holds neither secret.
    let save = std::process::Command::new("docker")
        .args(["save", &image])
        .env("DOCKER_HOST", &s.docker_host)
        .output()
        .unwrap();
    assert!(save.status.success());
    let saved = String::from_utf8_lossy(&save.stdout);
    assert!(
        saved.len() > 10_000,
        "docker save produced {} bytes",
        saved.len()
    );
    for secret in [&token, &netrc_value] {
        assert!(!saved.contains(secret.as_str()), "the image holds a secret");
        assert!(!run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()));
    }
    // The secret is no input of the image's identity.
    let again = Run::of(
        m.command(&s, &["build", "--all", "--json", "--secret", &netrc_flag])
            .env("KIT_TOKEN", "another-value"),
    );
    assert_eq!(
        result(&again.json(), "kit")["status"],
        "reused",
        "{}",
        again.stderr
    );
}

/// Heredocs and `COPY --link` need Docker 23's frontend (an older engine's failure and its
/// hint are pinned by the unit tests of `build::diagnose`); the test engine has it.
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn heredocs_and_copy_link_build() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let repo = format!("{}/{}", s.registry, unique("dagster-deploy-test/heredoc"));
    let m = Monorepo::new();
    m.write("dagster_cloud.yaml", &yaml(&repo, &[("doc", "doc")]));
    m.write(
        "doc/Dockerfile",
        &format!(
            "FROM {}\n\
             RUN <<EOF\n\
             echo from-heredoc > /h\n\
             echo second-line >> /h\n\
             EOF\n\
             COPY <<EOF /etc/greeting\n\
             hello from COPY\n\
             EOF\n\
             COPY --link f.txt /f.txt\n",
            s.base_image
        ),
    );
    m.write("doc/f.txt", "linked\n");
    m.commit("heredoc");
    let run = Run::of(&mut m.command(&s, &["build", "--all", "--json"]));
    let json = run.json();
    clean_pushed(&mut cleanup, &json);
    let doc = result(&json, "doc");
    assert_eq!(doc["status"], "built", "{json:#}\n{}", run.stderr);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let image = doc["image"].as_str().unwrap().to_string();
    cleanup.image(&image);
    pull_fresh(&s, &image).await;
    assert_eq!(
        run_in(&s, &image, "cat /h /etc/greeting /f.txt"),
        "from-heredoc\nsecond-line\nhello from COPY\nlinked\n"
    );
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn bad_input_fails_only_its_location_naming_step_and_fix() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let path = unique("dagster-deploy-test/bad");
    let repo = format!("{}/{path}", s.registry);
    let base = &s.base_image;
    let m = Monorepo::new();
    let names = [
        "good",
        "nosecret",
        "notarget",
        "nobind",
        "syntax",
        "nofrom",
        "parse",
        "secretfile",
        "platform",
    ];
    let dirs: Vec<(&str, &str)> = names.iter().map(|n| (*n, *n)).collect();
    m.write("dagster_cloud.yaml", &yaml(&repo, &dirs));
    m.write(
        "dagster-deploy.toml",
        "[locations.notarget]\ntarget = \"nope\"\n\
         [locations.secretfile]\nsecrets = [\"id=pip,src=/nonexistent/pip.conf\"]\n\
         [locations.platform]\nplatform = \"linux/s390x\"\n",
    );
    let dockerfiles = [
        ("good", format!("FROM {base}\nRUN echo ok > /ok\n")),
        (
            "nosecret",
            format!(
                "FROM {base}\nRUN --mount=type=secret,id=pypi,required=true cat /run/secrets/pypi\n"
            ),
        ),
        (
            "notarget",
            format!("FROM {base} AS build\nFROM {base} AS runtime\n"),
        ),
        (
            "nobind",
            format!(
                "FROM {base}\nRUN --mount=type=bind,source=uv.lock,target=/uv.lock cat /uv.lock\n"
            ),
        ),
        (
            "syntax",
            format!("# syntax=docker/dockerfile:1.7\nFROM {base}\nRUN true\n"),
        ),
        (
            "nofrom",
            format!("FROM {}/no-such-image:1\nRUN true\n", s.registry),
        ),
        ("parse", format!("FROM {base}\nRUN true\nRUNN false\n")),
        (
            "secretfile",
            format!("FROM {base}\nRUN --mount=type=secret,id=pip true\n"),
        ),
        ("platform", format!("FROM {base}\nRUN true\n")),
    ];
    for (name, text) in &dockerfiles {
        m.write(&format!("{name}/Dockerfile"), text);
    }
    m.commit("bad input");
    let run = Run::of(&mut m.command(&s, &["build", "--all", "--json"]));
    let json = run.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(result(&json, "good")["status"], "built", "{json:#}");
    let failure = |name: &str| {
        let r = result(&json, name);
        assert_eq!(r["status"], "failed", "{name}: {r:#}");
        assert!(r["pushed_tags"].as_array().unwrap().is_empty());
        let f = &r["failure"];
        (
            f["step"].as_str().unwrap().to_string(),
            format!(
                "{} | {}",
                f["message"].as_str().unwrap(),
                f["hint"].as_str().unwrap()
            ),
        )
    };
    let expect = [
        ("nosecret", "build", "--secret id=pypi,env=VAR"),
        ("notarget", "build", "(its stages: build, runtime)"),
        ("nobind", "build", "not in the build context"),
        ("syntax", "build", "`# syntax=docker/dockerfile:1.7`"),
        ("nofrom", "build", "FROM image cannot be pulled"),
        ("parse", "build", "fix line 3 of the Dockerfile"),
        (
            "secretfile",
            "secrets",
            "build secret `pip`: cannot read /nonexistent/pip.conf",
        ),
        ("platform", "build", "needs emulation on the engine's host"),
    ];
    for (name, step, text) in expect {
        let (got_step, got) = failure(name);
        assert_eq!(got_step, step, "{name}: {got}");
        assert!(got.contains(text), "{name}: {got}");
    }
    // Only the good location's tags reached the registry.
    let tags = registry_tags(&s, &path);
    assert!(!tags.is_empty());
    assert!(tags.iter().all(|t| t.starts_with("good-")), "{tags:?}");
}

/// An engine that speaks an API older than BuildKit sessions (a fake answering `/version`).
async fn old_engine() -> String {
    use axum::routing::get;
    let version = serde_json::json!({
        "Version": "18.06.0", "ApiVersion": "1.38", "MinAPIVersion": "1.12", "Os": "linux",
        "Arch": "amd64"
    });
    let app = axum::Router::new()
        .route(
            "/version",
            get(move || async move { axum::Json(version.clone()) }),
        )
        .route(
            "/{*rest}",
            get(|| async { axum::Json(serde_json::json!({})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("tcp://{addr}")
}

#[tokio::test]
async fn an_engine_without_buildkit_uses_the_classic_builder_unless_told_otherwise() {
    let host = old_engine().await;
    let engine = DockerEngine::connect_to(Some(&host)).await.unwrap();
    assert_eq!(engine.builder(Builder::Auto).unwrap(), Builder::Classic);
    assert_eq!(engine.builder(Builder::Classic).unwrap(), Builder::Classic);
    let err = engine.builder(Builder::BuildKit).unwrap_err().to_string();
    assert!(err.contains("cannot run BuildKit builds"), "{err}");
    assert!(
        err.contains("Engine API 1.38; BuildKit needs 1.39"),
        "{err}"
    );
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn classic_builder_on_request_and_secrets_need_buildkit() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let repo = format!("{}/{}", s.registry, unique("dagster-deploy-test/classic"));
    let m = Monorepo::new();
    m.write(
        "dagster_cloud.yaml",
        &yaml(&repo, &[("old", "old"), ("sec", "sec")]),
    );
    m.write(
        "old/Dockerfile",
        &format!("FROM {}\nRUN echo classic > /c\n", s.base_image),
    );
    m.write(
        "sec/Dockerfile",
        &format!("FROM {}\nRUN --mount=type=secret,id=t true\n", s.base_image),
    );
    m.write(
        "dagster-deploy.toml",
        "[locations.sec]\nsecrets = [\"id=t,env=HOME\"]\n",
    );
    m.commit("classic");
    let run = Run::of(&mut m.command(&s, &["build", "--all", "--json", "--builder", "classic"]));
    let json = run.json();
    clean_pushed(&mut cleanup, &json);
    let old = result(&json, "old");
    assert_eq!(old["builder"], "classic", "{json:#}");
    assert_eq!(old["status"], "built", "{json:#}");
    assert!(run.stderr.contains("with classic"), "{}", run.stderr);
    let sec = result(&json, "sec");
    assert_eq!(sec["status"], "failed");
    assert!(
        sec["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("build secret `t` needs BuildKit"),
        "{sec:#}"
    );
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn context_outside_build_directory_plans_builds_and_reuses() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let repo = format!("{}/{}", s.registry, unique("dagster-deploy-test/ctx"));
    let m = Monorepo::new();
    // The yaml names the package folder; the Dockerfile and project files sit one level up.
    m.write(
        "dagster_cloud.yaml",
        &yaml(&repo, &[("proj", "proj/src/proj")]),
    );
    m.write(
        "dagster-deploy.toml",
        "[locations.proj]\ncontext = \"proj\"\n",
    );
    m.write(
        "proj/Dockerfile",
        &format!("FROM {}\nCOPY . /app/\n", s.base_image),
    );
    m.write("proj/pyproject.toml", "[project]\nname = \"proj\"\n");
    m.write("proj/.dockerignore", "notes.md\n");
    m.write("proj/notes.md", "ignored\n");
    m.write("proj/src/proj/__init__.py", "");
    m.write("other/file.txt", "elsewhere\n");
    m.commit("context");

    let plan = Run::of(&mut m.command(&s, &["plan", "--all", "--json"]));
    let planned = &plan.json()["locations"][0];
    assert_eq!(planned["build_directory"], "proj", "{planned:#}");
    let first = Run::of(&mut m.command(&s, &["build", "--all", "--json"]));
    let json = first.json();
    clean_pushed(&mut cleanup, &json);
    let proj = result(&json, "proj");
    assert_eq!(proj["status"], "built", "{}", first.stderr);
    let image = proj["image"].as_str().unwrap();
    let listing = run_in(&s, image, "cd /app && find . -type f | sort");
    assert_eq!(
        listing,
        "./.dockerignore\n./Dockerfile\n./pyproject.toml\n./src/proj/__init__.py\n"
    );

    // A change beside the package (in the context, outside build.directory) rebuilds; a
    // change the .dockerignore drops, or outside the context, keeps the key.
    let key = proj["content_key"].as_str().unwrap().to_string();
    m.write("proj/notes.md", "still ignored\n");
    m.write("other/file.txt", "changed elsewhere\n");
    m.commit("unrelated");
    let same = Run::of(&mut m.command(&s, &["build", "--all", "--json"]));
    let same = result(&same.json(), "proj").clone();
    assert_eq!(same["status"], "reused", "{same:#}");
    assert_eq!(same["content_key"], key.as_str());
    m.write(
        "proj/pyproject.toml",
        "[project]\nname = \"proj\"\nversion = \"2\"\n",
    );
    m.commit("project change");
    let changed = Run::of(&mut m.command(&s, &["build", "--json"]));
    let json = changed.json();
    clean_pushed(&mut cleanup, &json);
    let proj = result(&json, "proj");
    assert_eq!(proj["status"], "built", "{json:#}");
    assert_ne!(proj["content_key"], key.as_str());

    // A context that is not a folder is a settings error with its position.
    m.write(
        "dagster-deploy.toml",
        "[locations.proj]\ncontext = \"nowhere\"\n",
    );
    let bad = Run::of(&mut m.command(&s, &["plan", "--all"]));
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("dagster-deploy.toml:2:11")
            && bad
                .stderr
                .contains("build context `nowhere` of location `proj` is not a folder"),
        "{}",
        bad.stderr
    );
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test]
async fn locations_sharing_one_build_build_once_and_push_one_digest() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    let path = unique("dagster-deploy-test/shared");
    let repo = format!("{}/{path}", s.registry);
    let m = Monorepo::new();
    // Two code locations of one project: same build directory, Dockerfile and settings.
    let marker = unique("shared-build");
    m.write(
        "dagster_cloud.yaml",
        &yaml(&repo, &[("first", "app"), ("second", "app")]),
    );
    m.write(
        "app/Dockerfile",
        &format!("FROM {}\nRUN echo {marker} > /m\n", s.base_image),
    );
    m.commit("shared");
    let run = Run::of(&mut m.command(&s, &["build", "--all", "--json"]));
    let json = run.json();
    clean_pushed(&mut cleanup, &json);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (first, second) = (result(&json, "first"), result(&json, "second"));
    assert_eq!(first["status"], "built");
    assert_eq!(second["status"], "built");
    assert_eq!(second["shared_build"], "first", "{json:#}");
    assert_eq!(first["content_key"], second["content_key"]);
    // One build in the engine: the RUN step ran once.
    assert_eq!(
        run.stderr.matches(&format!("RUN echo {marker}")).count(),
        1,
        "{}",
        run.stderr
    );
    let tag = |r: &Value| {
        r["image"]
            .as_str()
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .1
            .to_string()
    };
    let digest_first = registry_digest(&s, &path, &tag(first)).unwrap();
    let digest_second = registry_digest(&s, &path, &tag(second)).unwrap();
    assert_eq!(digest_first, digest_second);
    let labels = s.docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"io.dagster.code-location\"}}",
        first["image"].as_str().unwrap(),
    ]);
    assert_eq!(labels.trim(), "first,second");
}

#[test]
fn fixture_lock_pins_old_versions() {
    // The tests above rely on the lock pinning versions older than PyPI's newest.
    assert!(LOCK_FIXTURE.contains("name = \"six\"\nversion = \"1.16.0\""));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/buildkit/realistic/uv.lock")
            .is_file()
    );
}
