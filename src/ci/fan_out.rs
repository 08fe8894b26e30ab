//! `plan --github-matrix` and `plan --gitlab-child-pipeline`: the locations a `ci` build session
//! builds, as a GitHub Actions matrix or a complete GitLab child pipeline, so one CI job per
//! location can build in parallel and one final job registers them all.
//!
//! The list is every location `ci init` selects: action `build` and also `redeploy`, because
//! `ci deploy` refuses a selected location without an image and only `ci build` records one
//! (for a location whose inputs did not change it reuses the image from the registry by its
//! content key instead of building).

use serde_json::json;
use serde_yaml_ng::{Mapping, Value};

use crate::plan::{Action, Plan};

/// Where the child pipeline's jobs find dagster-deploy when the parent's plan job saved the
/// binary it ran in its artifacts (the templates do); otherwise the image's `PATH` is used.
pub const BIN_DIR: &str = ".dagster-deploy-bin";
/// Each build job's result: a copy of its state file, kept apart from the parent's state
/// folder so the deploy job never depends on the order in which artifacts are extracted.
const BUILT_DIR: &str = ".dagster-deploy-built";

/// GitLab's default `ci_max_needs`: a job may need at most 50 others. Past that the deploy job
/// needs `collect:N` jobs, each gathering the results of up to 50 build jobs.
const MAX_NEEDS: usize = 50;

/// A child pipeline that cannot be written, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct FanOutError {
    pub message: String,
    pub hint: String,
}

/// The names of the locations the session builds, in plan order.
pub fn session_builds(plan: &Plan) -> Vec<&str> {
    plan.locations
        .iter()
        .filter(|l| l.action != Action::Skip)
        .map(|l| l.name.as_str())
        .collect()
}

/// `{"include":[{"location":"a"},...]}` on one line (for `$GITHUB_OUTPUT`). An empty list is
/// printed as is: GitHub fails a matrix job with no entries, so the workflow guards that job
/// with `if: fromJSON(needs.plan.outputs.matrix).include[0]`.
pub fn github_matrix(names: &[&str]) -> String {
    let include: Vec<_> = names.iter().map(|n| json!({ "location": n })).collect();
    format!("{}\n", json!({ "include": include }))
}

/// What the child pipeline's jobs need besides the location names.
#[derive(Debug, Clone)]
pub struct GitlabChild {
    /// The build-session folder, relative to the project directory (GitLab artifacts are).
    pub statedir: String,
    /// The parent pipeline's job whose artifacts hold the state folder (and the binary).
    pub plan_job: String,
    /// The image every job runs in (dagster-deploy is a static binary: any image with `sh`).
    pub image: String,
    /// A Docker-in-Docker service for the build jobs; `None` when the runner has an engine.
    pub docker_service: Option<String>,
}

/// A complete child pipeline: one `build:<name>` job per location, then `deploy`. With nothing
/// to build it holds one job saying so, since GitLab rejects a pipeline without jobs.
pub fn gitlab_child_pipeline(names: &[&str], child: &GitlabChild) -> Result<String, FanOutError> {
    let mut root = Mapping::new();
    root.insert(
        "stages".into(),
        Value::Sequence(vec!["build".into(), "deploy".into()]),
    );
    root.insert(
        "variables".into(),
        map([("DAGSTER_BUILD_STATEDIR", child.statedir.as_str().into())]),
    );
    root.insert(
        "default".into(),
        map([
            ("image", child.image.as_str().into()),
            (
                "before_script",
                lines([format!("export PATH=\"$CI_PROJECT_DIR/{BIN_DIR}:$PATH\"")]),
            ),
        ]),
    );
    if names.is_empty() {
        root.insert(
            "nothing to deploy".into(),
            map([
                ("stage", "deploy".into()),
                (
                    "script",
                    lines([
                        "echo 'dagster-deploy: no location changed; nothing to build or deploy'"
                            .to_string(),
                    ]),
                ),
            ]),
        );
        return render(names, child, &root);
    }
    let from_parent = map([
        ("pipeline", "$PARENT_PIPELINE_ID".into()),
        ("job", child.plan_job.as_str().into()),
    ]);
    for name in names {
        root.insert(build_job(name).into(), build(name, child, &from_parent));
    }
    let builds: Vec<String> = names.iter().map(|n| build_job(n)).collect();
    // The deploy job needs the parent's plan job too, so only 49 build jobs fit beside it.
    let gathered = if builds.len() < MAX_NEEDS {
        builds
    } else {
        let collects: Vec<String> = builds
            .chunks(MAX_NEEDS)
            .enumerate()
            .map(|(i, group)| {
                let name = format!("collect:{}", i + 1);
                root.insert(name.as_str().into(), collect(group));
                name
            })
            .collect();
        if collects.len() >= MAX_NEEDS {
            return Err(FanOutError {
                message: format!(
                    "{} locations are too many for one GitLab child pipeline (at most {})",
                    names.len(),
                    (MAX_NEEDS - 1) * MAX_NEEDS
                ),
                hint: "split them across several pipelines, each starting its session with `ci init --location-name NAME ...`".into(),
            });
        }
        root.insert(
            "stages".into(),
            Value::Sequence(vec!["build".into(), "collect".into(), "deploy".into()]),
        );
        collects
    };
    let mut needs = vec![from_parent];
    needs.extend(gathered.iter().map(|j| map([("job", j.as_str().into())])));
    root.insert(
        "deploy".into(),
        map([
            ("stage", "deploy".into()),
            ("needs", Value::Sequence(needs)),
            (
                "script",
                lines([
                    format!("cp {BUILT_DIR}/location-*.json \"$DAGSTER_BUILD_STATEDIR\"/"),
                    "dagster-deploy ci deploy".to_string(),
                ]),
            ),
        ]),
    );
    render(names, child, &root)
}

fn build(name: &str, child: &GitlabChild, from_parent: &Value) -> Value {
    let mut job = Mapping::new();
    job.insert("stage".into(), "build".into());
    job.insert("needs".into(), Value::Sequence(vec![from_parent.clone()]));
    if let Some(service) = &child.docker_service {
        job.insert(
            "services".into(),
            Value::Sequence(vec![map([
                ("name", service.as_str().into()),
                ("alias", "docker".into()),
            ])]),
        );
        // dagster-deploy speaks to the engine over plain TCP: no TLS certificates to share.
        job.insert(
            "variables".into(),
            map([
                ("DOCKER_HOST", "tcp://docker:2375".into()),
                ("DOCKER_TLS_CERTDIR", "".into()),
            ]),
        );
    }
    let file = sh_quote(&format!("location-{name}.json"));
    job.insert(
        "script".into(),
        lines([
            format!("dagster-deploy ci build --location-name {}", sh_quote(name)),
            format!("mkdir -p {BUILT_DIR}"),
            format!("cp \"$DAGSTER_BUILD_STATEDIR\"/{file} {BUILT_DIR}/"),
        ]),
    );
    job.insert(
        "artifacts".into(),
        map([
            ("paths", lines([format!("{BUILT_DIR}/")])),
            ("expire_in", "1 day".into()),
        ]),
    );
    Value::Mapping(job)
}

/// Passes on the results of up to MAX_NEEDS build jobs: their artifacts are extracted into
/// BUILT_DIR before the script runs, and kept as this job's own artifacts.
fn collect(builds: &[String]) -> Value {
    let needs = builds
        .iter()
        .map(|j| map([("job", j.as_str().into())]))
        .collect();
    map([
        ("stage", "collect".into()),
        ("needs", Value::Sequence(needs)),
        ("script", lines([format!("ls {BUILT_DIR}")])),
        (
            "artifacts",
            map([
                ("paths", lines([format!("{BUILT_DIR}/")])),
                ("expire_in", "1 day".into()),
            ]),
        ),
    ])
}

fn build_job(name: &str) -> String {
    format!("build:{name}")
}

fn render(names: &[&str], child: &GitlabChild, root: &Mapping) -> Result<String, FanOutError> {
    let yaml = serde_yaml_ng::to_string(root).map_err(|e| FanOutError {
        message: format!("cannot write the child pipeline as YAML: {e}"),
        hint: "this is a bug in dagster-deploy; please report it with the command you ran".into(),
    })?;
    let header = format!(
        "# Generated by `dagster-deploy plan --gitlab-child-pipeline`: {} location(s) to build,\n\
         # then one job registering them. Jobs take the state folder (and dagster-deploy from\n\
         # {BIN_DIR}/) from the artifacts of the parent pipeline's job {:?}, whose trigger job\n\
         # must pass PARENT_PIPELINE_ID: $CI_PIPELINE_ID.\n",
        names.len(),
        child.plan_job
    );
    Ok(header + &yaml)
}

fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn lines<const N: usize>(items: [String; N]) -> Value {
    Value::Sequence(items.into_iter().map(Value::String).collect())
}

/// One shell word, whatever the text holds (location names are free-form strings).
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child() -> GitlabChild {
        GitlabChild {
            statedir: ".dagster-deploy-state".into(),
            plan_job: "plan".into(),
            image: "alpine:3.20".into(),
            docker_service: Some("docker:27-dind".into()),
        }
    }

    fn parse(text: &str) -> Value {
        serde_yaml_ng::from_str(text).expect("valid YAML")
    }

    #[test]
    fn the_matrix_is_one_compact_line_and_may_be_empty() {
        assert_eq!(
            github_matrix(&["a", "b"]),
            "{\"include\":[{\"location\":\"a\"},{\"location\":\"b\"}]}\n"
        );
        assert_eq!(github_matrix(&[]), "{\"include\":[]}\n");
        let odd = github_matrix(&["we\"ird"]);
        let back: serde_json::Value = serde_json::from_str(&odd).expect("JSON");
        assert_eq!(back["include"][0]["location"], "we\"ird");
    }

    #[test]
    fn one_build_job_per_location_then_one_deploy() {
        let text = gitlab_child_pipeline(&["ingest", "analytics"], &child()).expect("yaml");
        assert!(
            text.starts_with("# Generated by `dagster-deploy plan"),
            "{text}"
        );
        let y = parse(&text);
        assert_eq!(y["stages"], parse("[build, deploy]"));
        assert_eq!(
            y["variables"]["DAGSTER_BUILD_STATEDIR"],
            ".dagster-deploy-state"
        );
        let job = &y["build:ingest"];
        assert_eq!(job["stage"], "build");
        assert_eq!(
            job["needs"],
            parse("[{pipeline: $PARENT_PIPELINE_ID, job: plan}]")
        );
        assert_eq!(job["services"][0]["name"], "docker:27-dind");
        assert_eq!(job["variables"]["DOCKER_HOST"], "tcp://docker:2375");
        assert_eq!(
            job["script"][0],
            "dagster-deploy ci build --location-name 'ingest'"
        );
        assert_eq!(
            job["script"][2],
            "cp \"$DAGSTER_BUILD_STATEDIR\"/'location-ingest.json' .dagster-deploy-built/"
        );
        assert_eq!(job["artifacts"]["paths"][0], ".dagster-deploy-built/");
        let deploy = &y["deploy"];
        assert_eq!(deploy["stage"], "deploy");
        assert_eq!(
            deploy["needs"],
            parse(
                "[{pipeline: $PARENT_PIPELINE_ID, job: plan}, \
                 {job: 'build:ingest'}, {job: 'build:analytics'}]"
            )
        );
        assert_eq!(deploy["script"][1], "dagster-deploy ci deploy");
    }

    /// GitLab refuses a job with more than 50 `needs` by default: past 49 locations the deploy
    /// job needs collect jobs, each needing at most 50 build jobs.
    #[test]
    fn many_locations_stay_within_gitlabs_needs_limit() {
        let names: Vec<String> = (0..120).map(|i| format!("loc{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let y = parse(&gitlab_child_pipeline(&refs, &child()).expect("yaml"));
        assert_eq!(y["stages"], parse("[build, collect, deploy]"));
        let jobs = y.as_mapping().unwrap();
        let mut built = Vec::new();
        for (name, job) in jobs {
            if let Some(needs) = job.get("needs").and_then(Value::as_sequence) {
                assert!(needs.len() <= MAX_NEEDS, "{name:?} needs {}", needs.len());
            }
            if name.as_str().is_some_and(|n| n.starts_with("collect:")) {
                assert_eq!(job["stage"], "collect");
                built.extend(job["needs"].as_sequence().unwrap().iter().cloned());
            }
        }
        // Every build job is gathered exactly once, and the deploy job needs every collect job.
        assert_eq!(built.len(), 120);
        assert_eq!(built[0]["job"], "build:loc0");
        assert_eq!(built[119]["job"], "build:loc119");
        assert_eq!(
            y["deploy"]["needs"],
            parse(
                "[{pipeline: $PARENT_PIPELINE_ID, job: plan}, \
                 {job: 'collect:1'}, {job: 'collect:2'}, {job: 'collect:3'}]"
            )
        );
        // 49 locations still fit beside the plan job.
        let few: Vec<&str> = refs[..49].to_vec();
        let y = parse(&gitlab_child_pipeline(&few, &child()).expect("yaml"));
        assert_eq!(y["deploy"]["needs"].as_sequence().unwrap().len(), 50);
        assert!(y.get("collect:1").is_none());
    }

    #[test]
    fn names_that_mean_something_to_yaml_or_the_shell_stay_literal() {
        let name = "it's: #1 $HOME";
        let text = gitlab_child_pipeline(&[name], &child()).expect("yaml");
        let y = parse(&text);
        let job = &y[format!("build:{name}").as_str()];
        assert_eq!(
            job["script"][0],
            "dagster-deploy ci build --location-name 'it'\\''s: #1 $HOME'"
        );
    }

    #[test]
    fn nothing_to_build_is_still_a_pipeline_with_a_job() {
        let y = parse(&gitlab_child_pipeline(&[], &child()).expect("yaml"));
        let jobs: Vec<&Value> = y
            .as_mapping()
            .expect("mapping")
            .keys()
            .filter(|k| !matches!(k.as_str(), Some("stages" | "variables" | "default")))
            .collect();
        assert_eq!(jobs, [&Value::from("nothing to deploy")]);
        let script = &y["nothing to deploy"]["script"][0];
        assert!(script.as_str().is_some_and(|s| s.starts_with("echo ")));
    }

    #[test]
    fn without_a_docker_service_build_jobs_use_the_runner_engine() {
        let mut c = child();
        c.docker_service = None;
        let y = parse(&gitlab_child_pipeline(&["a"], &c).expect("yaml"));
        assert!(y["build:a"].get("services").is_none());
        assert!(y["build:a"].get("variables").is_none());
    }
}
