//! The GitLab templates and the generated child pipeline, read by a GitLab pipeline emulator
//! (`gitlab-ci-local`, from npm, installed by `scripts/gitlab-ci-local.sh`): each file passes
//! GitLab's CI schema, `extends` and `include` merge as GitLab merges them, and the rules start
//! the right jobs in a default-branch pipeline and in a merge request pipeline.
//! tests/gitlab_template_*.rs run the jobs' scripts themselves against real services.
//!
//! The emulator comes from `DAGSTER_DEPLOY_GITLAB_CI_LOCAL` (else where the script installs
//! it); without it these tests say SKIPPED, except under `CI`, where they fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

use dagster_deploy::ci::fan_out::{GitlabChild, gitlab_child_pipeline};
use serde_json::Value;
use support::Monorepo;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The emulator's wrapper, or `None` (with a notice) outside CI when it is not installed.
fn emulator() -> Option<PathBuf> {
    let path = std::env::var_os("DAGSTER_DEPLOY_GITLAB_CI_LOCAL")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                PathBuf::from(h).join(".cache/dagster-deploy/gitlab-ci-local/gitlab-ci-local")
            })
        })
        .filter(|p| p.is_file());
    if path.is_none() {
        support::missing::<()>(
            "gitlab-ci-local is not installed",
            "run `scripts/gitlab-ci-local.sh` first",
        );
    }
    path
}

/// A git repository holding a `.gitlab-ci.yml` (and any other files), as the emulator wants.
struct Project {
    repo: Monorepo,
    emulator: PathBuf,
}

impl Project {
    fn new(emulator: &Path, files: &[(&str, &str)]) -> Project {
        let repo = Monorepo::new();
        for (name, text) in files {
            repo.write(name, text);
        }
        repo.commit("pipeline");
        Project {
            repo,
            emulator: emulator.to_path_buf(),
        }
    }

    fn template(emulator: &Path, name: &str) -> Project {
        let text = std::fs::read_to_string(root().join("ci-templates/gitlab").join(name))
            .expect("template");
        Project::new(emulator, &[(".gitlab-ci.yml", &text)])
    }

    /// Runs the emulator with GitLab's schema check on; panics with its output on failure.
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.emulator)
            .args(args)
            .arg("--json-schema-validation")
            .args(["--state-dir", ".gitlab-ci-local"])
            .current_dir(self.repo.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run gitlab-ci-local");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "gitlab-ci-local {args:?} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// Job name → `when` (`never` when no rule matched), for one kind of pipeline.
    fn jobs(&self, pipeline: Pipeline) -> BTreeMap<String, String> {
        let mut args = vec!["--list-json"];
        if pipeline == Pipeline::MergeRequest {
            args.extend([
                "--variable",
                "CI_PIPELINE_SOURCE=merge_request_event",
                "--variable",
                "CI_MERGE_REQUEST_IID=7",
                "--unset-variable",
                "CI_COMMIT_BRANCH",
                "--ignore-predefined-vars",
                "CI_PIPELINE_SOURCE,CI_MERGE_REQUEST_IID",
            ]);
        }
        let text = self.run(&args);
        let json: Value = serde_json::from_str(&text[text.find('[').expect("a JSON list")..])
            .unwrap_or_else(|e| panic!("{e}: {text}"));
        json.as_array()
            .expect("a list")
            .iter()
            .map(|j| {
                (
                    j["name"].as_str().expect("name").to_string(),
                    j["when"].as_str().expect("when").to_string(),
                )
            })
            .collect()
    }

    /// The configuration with includes and `extends` merged, as GitLab would run it.
    fn preview(&self) -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(&self.run(&["--preview"])).expect("YAML")
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pipeline {
    DefaultBranch,
    MergeRequest,
}

/// The jobs that run (`when` other than `never`).
fn running(jobs: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    jobs.iter()
        .filter(|(_, when)| when.as_str() != "never")
        .map(|(name, when)| (name.as_str(), when.as_str()))
        .collect()
}

#[cfg_attr(not(ci), ignore = "needs gitlab-ci-local (scripts/gitlab-ci-local.sh)")]
#[test]
fn every_gitlab_template_is_valid_and_starts_the_right_jobs() {
    let Some(gcl) = emulator() else { return };
    // Template, then the jobs (and their `when`) of a default-branch and a merge request pipeline.
    type Jobs<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, Jobs, Jobs); 3] = [
        (
            "docker.gitlab-ci.yml",
            &[("dagster-deploy", "on_success")],
            &[
                ("dagster-deploy-branch", "on_success"),
                ("dagster-deploy-branch-close", "manual"),
            ],
        ),
        (
            "python-executable.gitlab-ci.yml",
            &[("dagster-deploy", "on_success")],
            &[
                ("dagster-deploy-branch", "on_success"),
                ("dagster-deploy-branch-close", "manual"),
            ],
        ),
        (
            "fan-out.gitlab-ci.yml",
            &[
                ("dagster-deploy-plan", "on_success"),
                ("dagster-deploy-run", "on_success"),
            ],
            &[
                ("dagster-deploy-branch-close", "manual"),
                ("dagster-deploy-plan-branch", "on_success"),
                ("dagster-deploy-run-branch", "on_success"),
            ],
        ),
    ];
    for (template, push, merge_request) in cases {
        let p = Project::template(&gcl, template);
        let jobs = p.jobs(Pipeline::DefaultBranch);
        assert_eq!(running(&jobs), push.to_vec(), "{template}: default branch");
        let jobs = p.jobs(Pipeline::MergeRequest);
        assert_eq!(
            running(&jobs),
            merge_request.to_vec(),
            "{template}: merge request"
        );
    }
}

/// The Docker template builds with a Docker-in-Docker service unless the project redefines
/// `.dagster-deploy-docker`, as its header comment says, to use the runner's own engine.
#[cfg_attr(not(ci), ignore = "needs gitlab-ci-local (scripts/gitlab-ci-local.sh)")]
#[test]
fn the_docker_template_uses_the_runners_engine_when_told() {
    let Some(gcl) = emulator() else { return };
    let template = std::fs::read_to_string(root().join("ci-templates/gitlab/docker.gitlab-ci.yml"))
        .expect("template");
    let dind = Project::new(
        &gcl,
        &[
            ("template.yml", &template),
            (".gitlab-ci.yml", "include:\n  - local: template.yml\n"),
        ],
    );
    let config = dind.preview();
    for job in ["dagster-deploy", "dagster-deploy-branch"] {
        assert_eq!(
            config[job]["services"][0]["name"], "docker:27-dind",
            "{job}"
        );
        assert_eq!(config[job]["variables"]["DOCKER_HOST"], "tcp://docker:2375");
    }

    // The override exactly as the template's comment gives it.
    let comment: String = template
        .lines()
        .skip_while(|l| !l.starts_with("#   .dagster-deploy-docker:"))
        .take_while(|l| l.starts_with("#   "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    assert!(comment.contains("services: []"), "{comment}");
    let own_engine = Project::new(
        &gcl,
        &[
            ("template.yml", &template),
            (
                ".gitlab-ci.yml",
                &format!("include:\n  - local: template.yml\n{comment}"),
            ),
        ],
    );
    let config = own_engine.preview();
    for job in ["dagster-deploy", "dagster-deploy-branch"] {
        assert_eq!(
            config[job]["services"].as_sequence().map(Vec::len),
            Some(0),
            "{job}"
        );
        assert_eq!(
            config[job]["variables"]["DOCKER_HOST"],
            "unix:///var/run/docker.sock"
        );
    }
}

/// The child pipeline `plan --gitlab-child-pipeline` writes for many locations is valid GitLab
/// CI, and no job needs more than GitLab's default limit of 50 jobs.
#[cfg_attr(not(ci), ignore = "needs gitlab-ci-local (scripts/gitlab-ci-local.sh)")]
#[test]
fn a_child_pipeline_for_many_locations_is_valid_gitlab_ci() {
    let Some(gcl) = emulator() else { return };
    let names: Vec<String> = (0..120).map(|i| format!("location-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let child = GitlabChild {
        statedir: ".dagster-deploy-state".into(),
        plan_job: "dagster-deploy-plan".into(),
        image: "alpine:3.20".into(),
        docker_service: Some("docker:27-dind".into()),
    };
    let yaml = gitlab_child_pipeline(&names, &child).expect("child pipeline");
    let p = Project::new(&gcl, &[(".gitlab-ci.yml", &yaml)]);
    let jobs = p.jobs(Pipeline::DefaultBranch);
    assert_eq!(jobs.len(), 120 + 3 + 1, "{jobs:?}");
    assert!(jobs.values().all(|when| when == "on_success"), "{jobs:?}");
    let config = p.preview();
    for (name, job) in config.as_mapping().expect("jobs") {
        let needs = job.get("needs").and_then(|n| n.as_sequence());
        assert!(
            needs.is_none_or(|n| n.len() <= 50),
            "{name:?} needs {} jobs",
            needs.map(Vec::len).unwrap_or(0)
        );
    }
}
