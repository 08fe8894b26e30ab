//! A `FROM` image in a password-protected registry other than the one pushed to: the build gets
//! that registry's credentials from Docker's `config.json`, as `docker build` does, with both
//! builders; without them the pull is refused.
//!
//! Needs `scripts/services.sh start` (see tests/support).

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{Cleanup, Services, TestRepo, services, unique};

/// `docker --config DIR login` to the test registry: DIR/config.json then holds its `auths`.
fn docker_login(s: &Services, config: &std::path::Path) {
    let mut login = Command::new("docker")
        .args([
            "--config",
            &config.to_string_lossy(),
            "login",
            "-u",
            &s.user,
        ])
        .args(["--password-stdin", &s.registry])
        .env("DOCKER_HOST", &s.docker_host)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker login");
    login
        .stdin
        .take()
        .expect("stdin")
        .write_all(s.password.as_bytes())
        .expect("password");
    let out = login.wait_with_output().expect("docker login");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_image_in_another_private_registry_is_pulled_with_its_docker_login() {
    let Some(s) = services().await else { return };
    let mut cleanup = Cleanup::new(&s);
    // The base image, only in the registry: the engine has to pull it.
    let base = cleanup.image(&format!(
        "{}/{}:1",
        s.registry,
        unique("dagster-deploy-test/private-base")
    ));
    let config = tempfile::tempdir().expect("tempdir");
    docker_login(&s, config.path());
    let config_dir = config.path().to_string_lossy().into_owned();
    s.docker(&["tag", &s.base_image, &base]);
    s.docker(&["--config", &config_dir, "push", "-q", &base]);
    s.docker(&["rmi", &base]);

    let repo = TestRepo::new();
    repo.write(
        "dagster_cloud.yaml",
        "locations:\n  - location_name: app\n    code_source:\n      package_name: app\n    \
         build:\n      directory: app\n      registry: registry.invalid/pushed-elsewhere\n",
    );
    repo.write(
        "app/Dockerfile",
        "ARG BASE\nFROM ${BASE}\nRUN echo built > /built\n",
    );
    repo.commit("app");
    let build = |builder: &str, docker_config: &str| {
        let base_arg = format!("BASE={base}");
        let out = repo
            .command(&s, &["build", "--all", "--no-push", "--builder", builder])
            .args(["--build-arg", &base_arg])
            // No push, no DAGSTER_DEPLOY_REGISTRY_* variables: only Docker's config speaks.
            .env_remove("DAGSTER_DEPLOY_REGISTRY_USERNAME")
            .env_remove("DAGSTER_DEPLOY_REGISTRY_PASSWORD")
            .env("DOCKER_CONFIG", docker_config)
            .output()
            .expect("build");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };

    let nowhere = repo.abs(".no-docker-config").to_string_lossy().into_owned();
    let (code, text) = build("buildkit", &nowhere);
    assert_eq!(
        code,
        Some(1),
        "without a login the pull is refused:\n{text}"
    );
    assert!(!text.contains(&s.password), "{text}");

    for builder in ["buildkit", "classic"] {
        let (code, text) = build(builder, &config_dir);
        assert_eq!(code, Some(0), "{builder}:\n{text}");
        assert!(
            text.contains(&format!("with {builder}")),
            "{builder}:\n{text}"
        );
        assert!(!text.contains(&s.password), "{text}");
        // Pulled again by the next builder.
        let _ = Command::new("docker")
            .args(["rmi", &base])
            .env("DOCKER_HOST", &s.docker_host)
            .output();
    }
    let built = s.docker(&["images", "-q", "registry.invalid/pushed-elsewhere"]);
    for id in built.split_whitespace() {
        let _ = Command::new("docker")
            .args(["rmi", "-f", id])
            .env("DOCKER_HOST", &s.docker_host)
            .output();
    }
}
