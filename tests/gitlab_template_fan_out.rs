//! The GitLab template `fan-out.gitlab-ci.yml` runs for real in a merge request pipeline, with the
//! child pipeline its plan job writes: the child's builds and deploy use the real Docker engine,
//! the htpasswd registry and a `dagster-deploy serve` process, and the stop job closes the branch
//! deployment. The install lines download this build from a local release server (checked SHA-256);
//! GitLab's notes API is a recording server. support::gitlab is the runner (it resolves `extends`,
//! `default` and `rules` and runs the scripts with `sh -e` as GitLab's shell executor does);
//! tests/gitlab_pipelines.rs checks the same files against GitLab's schema in an emulator.

mod support;

use support::ci::{Serve, release_folder};
use support::gitlab::{
    IMAGE_PATH, Runner, clean_results, docker_vars, dotenv, predefined, project_vars, template,
};
use support::{Cleanup, Monorepo, python_shim_image, services, unique};

/// The fan-out template in a merge request pipeline: the plan job starts the session (creating
/// the branch deployment, reported in its dotenv) and writes the child pipeline; the child's
/// build jobs and its deploy job run with the plan job's artifacts; the stop job closes it.
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_fan_out_builds_in_a_child_pipeline_and_closes_the_branch_deployment() {
    let Some(s) = services().await else { return };
    let shim = python_shim_image(&s);
    let registry = format!("{}/{}", s.registry, unique("dagster-deploy-test/fanout"));
    let m = Monorepo::example(&registry);
    std::fs::write(
        m.path().join(".gitignore"),
        "dagster-deploy.env\ndagster-deploy-child.yml\n.dagster-deploy-*/\n",
    )
    .unwrap();
    m.commit("ignore the pipeline's files");
    let server = Serve::start(&s);
    let mut cleanup = Cleanup::new(&s);
    let releases = release_folder(env!("CARGO_PKG_VERSION"));
    let mut project = project_vars(&server, &releases).await;
    project.extend(docker_vars(&s, &shim));
    let parent = Runner {
        m: &m,
        doc: template("fan-out.gitlab-ci.yml"),
        path: IMAGE_PATH.into(),
        project: project.clone(),
        temp: tempfile::tempdir().unwrap(),
    };

    let base = m.git(&["rev-parse", "HEAD"]);
    m.git(&["checkout", "-q", "-b", "faster-ingest"]);
    m.write("ingest/ingest/extra.py", "FAST = True\n");
    m.commit("faster ingest");
    let pipeline = predefined(
        &m,
        &[
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_PIPELINE_ID", "4242"),
            ("CI_COMMIT_REF_NAME", "faster-ingest"),
            ("CI_MERGE_REQUEST_IID", "9"),
            ("CI_MERGE_REQUEST_PROJECT_ID", "7"),
            ("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "7"),
            ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "faster-ingest"),
            ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
            ("CI_MERGE_REQUEST_DIFF_BASE_SHA", &base),
        ],
    );
    let jobs = parent.jobs(&pipeline);
    assert_eq!(
        jobs.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "dagster-deploy-branch-close",
            "dagster-deploy-plan-branch",
            "dagster-deploy-run-branch"
        ]
    );
    let planned = parent.run("dagster-deploy-plan-branch", &pipeline);
    assert_eq!(planned.code, 0, "{planned}");
    let branch = dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"].clone();
    assert_ne!(branch, "prod", "{planned}");
    assert_eq!(dotenv(&m)["DAGSTER_DEPLOY_IS_BRANCH_DEPLOYMENT"], "true");
    assert_eq!(server.pull_request_status(&branch).as_deref(), Some("OPEN"));

    // The trigger job runs the child pipeline the plan job wrote, as GitLab would.
    let child_text = std::fs::read_to_string(m.path().join("dagster-deploy-child.yml")).unwrap();
    assert!(
        child_text.contains("job: dagster-deploy-plan-branch"),
        "{child_text}"
    );
    let child = Runner {
        m: &m,
        doc: serde_yaml_ng::from_str(&child_text).unwrap(),
        path: IMAGE_PATH.into(),
        project,
        temp: tempfile::tempdir().unwrap(),
    };
    let mut child_pipeline = pipeline.clone();
    child_pipeline.insert("PARENT_PIPELINE_ID".into(), "4242".into());
    let child_jobs = child.jobs(&child_pipeline);
    assert!(child_jobs.contains_key("build:ingest"), "{child_text}");
    for job in child_jobs.keys().filter(|j| j.starts_with("build:")) {
        let built = child.run(job, &child_pipeline);
        clean_results(&mut cleanup, &s, &registry);
        assert_eq!(built.code, 0, "{job}: {built}");
        assert!(!built.log.contains(&s.password), "{built}");
    }
    let deployed = child.run("deploy", &child_pipeline);
    assert_eq!(deployed.code, 0, "{deployed}");
    assert!(!deployed.log.contains(&server.token), "{deployed}");
    let images = server.images(&branch);
    assert!(images.contains_key("ingest"), "{images:?}\n{deployed}");
    assert!(server.images("prod").is_empty());

    // Closing the merge request: the stop job runs without a checkout.
    let closed = parent.run("dagster-deploy-branch-close", &pipeline);
    assert_eq!(closed.code, 0, "{closed}");
    assert_eq!(
        server.pull_request_status(&branch).as_deref(),
        Some("CLOSED")
    );
}
