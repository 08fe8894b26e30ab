//! The GitLab template `docker.gitlab-ci.yml` runs for real, in a default-branch pipeline and in
//! merge request pipelines (opened, updated, closed): the deploys use the real Docker engine, the
//! htpasswd registry and a `dagster-deploy serve` process. The install lines download this build
//! from a local release server (checked SHA-256); GitLab's notes API is a recording server.
//! support::gitlab is the runner (it resolves `extends`, `default` and `rules` and runs the scripts
//! with `sh -e` as GitLab's shell executor does); tests/gitlab_pipelines.rs checks the same files
//! against GitLab's schema in an emulator.

mod support;

use std::collections::BTreeMap;

use support::ci::{CommentApi, Serve, release_folder};
use support::gitlab::{
    GITLAB_TOKEN, IMAGE_PATH, Runner, clean_results, docker_vars, dotenv, predefined, project_vars,
    template,
};
use support::{Cleanup, Monorepo, python_shim_image, services, unique};

// Multi-threaded: the test blocks on child processes while its servers answer them.
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_template_deploys_the_default_branch_and_merge_requests() {
    let Some(s) = services().await else { return };
    let shim = python_shim_image(&s);
    let registry = format!("{}/{}", s.registry, unique("dagster-deploy-test/gitlab"));
    let m = Monorepo::example(&registry);
    std::fs::write(m.path().join(".gitignore"), "dagster-deploy.env\n").unwrap();
    m.commit("ignore the dotenv report");
    let server = Serve::start(&s);
    let mut cleanup = Cleanup::new(&s);
    let releases = release_folder(env!("CARGO_PKG_VERSION"));
    let (api, api_url) = CommentApi::start(("private-token", GITLAB_TOKEN)).await;
    let mut project = project_vars(&server, &releases).await;
    project.extend(docker_vars(&s, &shim));
    project.insert("DAGSTER_DEPLOY_GITLAB_TOKEN".into(), GITLAB_TOKEN.into());
    let runner = Runner {
        m: &m,
        doc: template("docker.gitlab-ci.yml"),
        path: IMAGE_PATH.into(),
        project,
        temp: tempfile::tempdir().unwrap(),
    };
    let all = ["analytics", "ingest", "ml", "reporting"];

    // A pipeline on main runs only the deploy job: every location lands in prod.
    let before = m.git(&["rev-parse", "HEAD"]);
    m.commit("an unrelated commit on main");
    let main = predefined(
        &m,
        &[
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_BRANCH", "main"),
            ("CI_COMMIT_REF_NAME", "main"),
            ("CI_COMMIT_BEFORE_SHA", &before),
        ],
    );
    assert_eq!(
        runner.jobs(&main),
        BTreeMap::from([("dagster-deploy".to_string(), "on_success".to_string())])
    );
    let deployed = runner.run("dagster-deploy", &main);
    clean_results(&mut cleanup, &s, &registry);
    assert_eq!(deployed.code, 0, "{deployed}");
    assert!(
        deployed.log.contains("section_start:"),
        "collapsible sections: {deployed}"
    );
    assert!(!deployed.log.contains(&s.password), "{deployed}");
    assert!(!deployed.log.contains(&server.token), "{deployed}");
    let prod = server.images("prod");
    assert_eq!(prod.keys().collect::<Vec<_>>(), all);
    assert_eq!(dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"], "prod");
    assert_eq!(dotenv(&m)["DAGSTER_DEPLOY_IS_BRANCH_DEPLOYMENT"], "false");
    assert_eq!(
        api.count("GET") + api.count("POST"),
        0,
        "no note outside a merge request"
    );

    // A merge request pipeline: its branch deployment gets every location, one note is
    // posted, and the stop job is offered as a manual job.
    let base = m.git(&["rev-parse", "HEAD"]);
    m.git(&["checkout", "-q", "-b", "faster-ingest"]);
    m.write("ingest/ingest/extra.py", "FAST = True\n");
    m.commit("faster ingest");
    let mr = |m: &Monorepo| {
        predefined(
            m,
            &[
                ("CI_PIPELINE_SOURCE", "merge_request_event"),
                ("CI_COMMIT_REF_NAME", "faster-ingest"),
                ("CI_MERGE_REQUEST_IID", "5"),
                ("CI_MERGE_REQUEST_PROJECT_ID", "7"),
                ("CI_MERGE_REQUEST_SOURCE_PROJECT_ID", "7"),
                ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "faster-ingest"),
                ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
                ("CI_MERGE_REQUEST_DIFF_BASE_SHA", &base),
                ("CI_API_V4_URL", &api_url),
            ],
        )
    };
    let pipeline = mr(&m);
    assert_eq!(
        runner.jobs(&pipeline),
        BTreeMap::from([
            (
                "dagster-deploy-branch".to_string(),
                "on_success".to_string()
            ),
            (
                "dagster-deploy-branch-close".to_string(),
                "manual".to_string()
            ),
        ])
    );
    let opened = runner.run("dagster-deploy-branch", &pipeline);
    clean_results(&mut cleanup, &s, &registry);
    assert_eq!(opened.code, 0, "{opened}");
    let branch = dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"].clone();
    assert_ne!(branch, "prod");
    assert_eq!(dotenv(&m)["DAGSTER_DEPLOY_IS_BRANCH_DEPLOYMENT"], "true");
    let images = server.images(&branch);
    assert_eq!(images.keys().collect::<Vec<_>>(), all);
    assert_ne!(images["ingest"], prod["ingest"]);
    assert_eq!(images["ml"], prod["ml"]);
    assert_eq!(server.pull_request_status(&branch).as_deref(), Some("OPEN"));
    let notes = api.bodies();
    assert_eq!(notes.len(), 1, "{opened}");
    assert!(notes[0].contains("branch deployment of !5"), "{notes:?}");
    assert!(notes[0].contains("| ingest | built |"), "{notes:?}");

    // Another push to the merge request: the same branch deployment, the note edited.
    m.write("ingest/ingest/extra.py", "FAST = 'yes'\n");
    m.commit("even faster ingest");
    let updated = runner.run("dagster-deploy-branch", &mr(&m));
    clean_results(&mut cleanup, &s, &registry);
    assert_eq!(updated.code, 0, "{updated}");
    assert_eq!(dotenv(&m)["DAGSTER_CLOUD_DEPLOYMENT"], branch);
    assert_eq!(api.bodies().len(), 1);
    assert_eq!((api.count("POST"), api.count("PUT")), (1, 1));

    // The environment's stop action closes the branch deployment, without a checkout (the
    // branch may be gone); prod is untouched.
    let closed = runner.run("dagster-deploy-branch-close", &mr(&m));
    assert!(
        !closed.log.contains("not inside a git repository"),
        "{closed}"
    );
    assert_eq!(closed.code, 0, "{closed}");
    assert_eq!(
        server.pull_request_status(&branch).as_deref(),
        Some("CLOSED")
    );
    assert_eq!(server.images("prod"), prod);
}
