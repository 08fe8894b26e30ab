//! What the CI templates run: every `dagster-deploy` command line in any template names a real
//! subcommand and real flags, and the GitLab templates hang together (stages, `extends`,
//! `rules`, dotenv reports, the fan-out's child pipeline, branch deployments that close
//! without racing a deploy).

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;
use support::templates::{files, root, yaml};

const BIN: &str = env!("CARGO_BIN_EXE_dagster-deploy");

// ---- dagster-deploy command lines in every template ------------------------------------------

/// Keys whose values are shell scripts, in the CI systems we have templates for.
const SCRIPT_KEYS: [&str; 6] = [
    "run",
    "script",
    "before_script",
    "after_script",
    "command",
    "commands",
];

/// Every script (a string, or a list of strings, under a script key) anywhere in the document.
/// A mapping under a script key is searched afresh: CircleCI's `run: {name, command}` names a
/// step in `name`, which is no script.
fn scripts(value: &Value, is_script: bool, out: &mut Vec<String>) {
    match value {
        Value::String(s) if is_script => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|v| scripts(v, is_script, out)),
        Value::Mapping(map) => {
            for (k, v) in map {
                let key = k.as_str().unwrap_or_default();
                scripts(v, SCRIPT_KEYS.contains(&key), out);
            }
        }
        _ => {}
    }
}

/// The arguments after each `dagster-deploy` in a script, up to the next shell operator.
fn command_lines(script: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            if *word != "dagster-deploy" && !word.ends_with("$(dagster-deploy") {
                continue;
            }
            let args = words[i + 1..]
                .iter()
                .take_while(|w| !matches!(**w, "|" | "||" | "&&" | ";" | ">" | ">>"))
                .map(|w| w.trim_matches(['"', '\'', ')']).to_string())
                .collect();
            found.push(args);
        }
    }
    found
}

/// `dagster-deploy ARGS --help`, cached; `None` when it fails.
fn help(cache: &mut HashMap<Vec<String>, Option<String>>, path: &[String]) -> Option<String> {
    cache
        .entry(path.to_vec())
        .or_insert_with(|| {
            let out = Command::new(BIN)
                .args(path)
                .arg("--help")
                .output()
                .expect("run dagster-deploy");
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .clone()
}

#[test]
fn every_command_in_the_templates_is_a_real_subcommand_with_real_flags() {
    let mut templates = files("ci-templates/github", ".yml");
    templates.extend(files("ci-templates/gitlab", ".yml"));
    for name in ["bitbucket-pipelines.yml", "circleci.yml", "buildkite.yml"] {
        templates.push(root().join("ci-templates").join(name));
    }
    let mut cache = HashMap::new();
    for template in &templates {
        let mut texts = Vec::new();
        scripts(&yaml(template), false, &mut texts);
        let lines: Vec<Vec<String>> = texts.iter().flat_map(|s| command_lines(s)).collect();
        let uses_action =
            std::fs::read_to_string(template).is_ok_and(|t| t.contains("/dagster-deploy@"));
        assert!(
            !lines.is_empty() || uses_action,
            "{template:?} runs no dagster-deploy command (the extraction may be broken)"
        );
        for args in lines {
            let Some(first) = args.first() else {
                panic!("{template:?}: `dagster-deploy` without a subcommand");
            };
            let mut path = vec![first.clone()];
            let top = help(&mut cache, &path)
                .unwrap_or_else(|| panic!("{template:?}: `dagster-deploy {first}` does not exist"));
            if top.contains("\nCommands:\n") {
                let sub = args.get(1).cloned().unwrap_or_default();
                path.push(sub);
            }
            let text = help(&mut cache, &path).unwrap_or_else(|| {
                panic!(
                    "{template:?}: `dagster-deploy {}` does not exist",
                    path.join(" ")
                )
            });
            for flag in args.iter().filter(|a| a.starts_with("--")) {
                let flag = flag.split('=').next().unwrap_or_default();
                assert!(
                    listed(&text, flag),
                    "{template:?}: `dagster-deploy {}` has no {flag}",
                    path.join(" ")
                );
            }
        }
    }
}

/// Whether `--help` text lists `flag` (as a whole word).
fn listed(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let next = help[i + flag.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

// ---- GitLab templates -------------------------------------------------------------------------

const GITLAB_GLOBAL_KEYS: [&str; 10] = [
    "stages",
    "variables",
    "default",
    "include",
    "workflow",
    "image",
    "services",
    "before_script",
    "after_script",
    "cache",
];

/// GitLab's stages when a file declares none (an included template uses the project's).
const GITLAB_DEFAULT_STAGES: [&str; 5] = [".pre", "build", "test", "deploy", ".post"];

struct Gitlab {
    file: PathBuf,
    doc: Value,
}

impl Gitlab {
    fn load(path: &Path) -> Gitlab {
        Gitlab {
            file: path.to_path_buf(),
            doc: yaml(path),
        }
    }

    fn job_names(&self) -> Vec<&str> {
        self.doc
            .as_mapping()
            .expect("a mapping")
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| !GITLAB_GLOBAL_KEYS.contains(k))
            .collect()
    }

    /// A job's key, looked up through its `extends` chain (the first one that sets it).
    fn get(&self, job: &str, key: &str) -> Option<&Value> {
        let node = &self.doc[job];
        if let Some(v) = node.get(key) {
            return Some(v);
        }
        let parents: Vec<&str> = match node.get("extends") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Sequence(s)) => s.iter().filter_map(|v| v.as_str()).collect(),
            _ => vec![],
        };
        parents.into_iter().rev().find_map(|p| self.get(p, key))
    }

    fn script(&self, job: &str) -> String {
        let mut texts = Vec::new();
        if let Some(v) = self.get(job, "script") {
            scripts(v, true, &mut texts);
        }
        texts.join("\n")
    }
}

#[test]
fn gitlab_templates_hang_together() {
    for path in files("ci-templates/gitlab", ".gitlab-ci.yml") {
        let g = Gitlab::load(&path);
        let f = &g.file;
        let stages: Vec<String> = match g.doc.get("stages") {
            Some(s) => s
                .as_sequence()
                .expect("stages is a list")
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            None => GITLAB_DEFAULT_STAGES.map(String::from).to_vec(),
        };
        let jobs = g.job_names();
        for job in &jobs {
            for parent in g.doc[*job].get("extends").into_iter() {
                let parent = parent.as_str().expect("extends names one job");
                assert!(
                    jobs.contains(&parent),
                    "{f:?}: {job} extends unknown {parent}"
                );
            }
        }
        for job in jobs.iter().filter(|j| !j.starts_with('.')) {
            let stage = g
                .get(job, "stage")
                .and_then(|s| s.as_str())
                .unwrap_or("test");
            assert!(
                stages.iter().any(|s| s == stage),
                "{f:?}: {job}: stage {stage}"
            );
            let rules = g.get(job, "rules").and_then(|r| r.as_sequence());
            assert!(
                rules.is_some_and(|r| r.iter().all(|rule| rule.get("if").is_some())),
                "{f:?}: {job} must say when it runs (rules with `if`)"
            );
            let script = g.script(job);
            assert!(
                !script.is_empty() || g.get(job, "trigger").is_some(),
                "{f:?}: {job} has neither script nor trigger"
            );
            if let Some(dotenv) = g
                .get(job, "artifacts")
                .and_then(|a| a["reports"].get("dotenv"))
            {
                let file = dotenv.as_str().expect("one dotenv file");
                assert!(
                    script.contains(&format!("--dotenv {file}")),
                    "{f:?}: {job} reports {file} but does not write it"
                );
            }
            if let Some(stop) = g.get(job, "environment").and_then(|e| e.get("on_stop")) {
                let stop = stop.as_str().expect("on_stop names a job");
                let env = &g.doc[*job]["environment"]["name"];
                assert!(
                    jobs.contains(&stop),
                    "{f:?}: {job} on_stop {stop} is missing"
                );
                assert_eq!(
                    g.doc[stop]["environment"]["action"], "stop",
                    "{f:?}: {stop}"
                );
                assert_eq!(&g.doc[stop]["environment"]["name"], env, "{f:?}: {stop}");
                assert!(
                    g.script(stop)
                        .contains("dagster-deploy ci branch-deployment --mark-closed"),
                    "{f:?}: {stop} must mark the branch deployment closed"
                );
            }
        }
        let names: Vec<&str> = jobs
            .iter()
            .copied()
            .filter(|j| !j.starts_with('.'))
            .collect();
        assert!(!names.is_empty(), "{f:?} defines no job");
    }
}

#[test]
fn the_gitlab_fan_out_triggers_the_child_pipeline_its_plan_job_writes() {
    let g = Gitlab::load(&root().join("ci-templates/gitlab/fan-out.gitlab-ci.yml"));
    let triggers: Vec<&str> = g
        .job_names()
        .into_iter()
        .filter(|j| !j.starts_with('.') && g.get(j, "trigger").is_some())
        .collect();
    // One for the default branch, one for merge requests (their plan jobs differ).
    assert_eq!(triggers.len(), 2, "{triggers:?}");
    for trigger in triggers {
        let include = &g.doc[trigger]["trigger"]["include"][0];
        let (artifact, plan_job) = (
            include["artifact"].as_str().expect("include: artifact"),
            include["job"].as_str().expect("include: job"),
        );
        assert_eq!(g.doc[trigger]["trigger"]["strategy"], "depend");
        assert_eq!(g.doc[trigger]["needs"][0], plan_job);
        assert_eq!(
            g.doc[trigger]["rules"], g.doc[plan_job]["rules"],
            "{trigger}"
        );
        assert_eq!(
            g.get(trigger, "variables").expect("variables")["PARENT_PIPELINE_ID"],
            "$CI_PIPELINE_ID"
        );
        // The deploy (the child pipeline) holds the deployment's resource group.
        assert!(g.get(trigger, "resource_group").is_some(), "{trigger}");

        let script = g.script(plan_job);
        assert!(
            script.contains("dagster-deploy ci init --dotenv dagster-deploy.env"),
            "{script}"
        );
        // GitLab sets CI_JOB_NAME to the job's own name: the child pipeline names the job
        // whose artifacts it takes, which the trigger includes.
        assert!(
            script.contains(&format!(
                "dagster-deploy plan --gitlab-child-pipeline --gitlab-plan-job \"$CI_JOB_NAME\" > {artifact}"
            )),
            "{script}"
        );
        let artifacts = g.get(plan_job, "artifacts").expect("artifacts");
        let paths: Vec<&str> = artifacts["paths"]
            .as_sequence()
            .expect("artifact paths")
            .iter()
            .filter_map(|p| p.as_str())
            .collect();
        let statedir = g.doc["variables"]["DAGSTER_BUILD_STATEDIR"]
            .as_str()
            .expect("statedir");
        for needed in [
            artifact.to_string(),
            format!("{statedir}/"),
            ".dagster-deploy-bin/".into(),
        ] {
            assert!(
                paths.contains(&needed.as_str()),
                "{needed} not in {paths:?}"
            );
        }
        assert_eq!(
            g.get(plan_job, "variables").expect("variables")["DAGSTER_DEPLOY_INSTALL_DIR"],
            "$CI_PROJECT_DIR/.dagster-deploy-bin"
        );
    }
}

/// Every GitLab template closes merge request branch deployments the same way: the job that
/// deploys to one names it as an environment whose stop job marks it closed without a
/// checkout, in the deploy's resource group so a close never races a deploy.
#[test]
fn gitlab_branch_deployments_close_without_racing_a_deploy() {
    for path in files("ci-templates/gitlab", ".gitlab-ci.yml") {
        let g = Gitlab::load(&path);
        let f = &g.file;
        let envs: Vec<&str> = g
            .job_names()
            .into_iter()
            .filter(|j| !j.starts_with('.'))
            .filter(|j| g.doc[*j]["environment"].get("on_stop").is_some())
            .collect();
        assert_eq!(envs.len(), 1, "{f:?}: one job opens the branch environment");
        let job = envs[0];
        let stop = g.doc[job]["environment"]["on_stop"]
            .as_str()
            .expect("on_stop");
        assert_eq!(
            g.get(job, "resource_group"),
            g.get(stop, "resource_group"),
            "{f:?}: {stop} must share {job}'s resource_group"
        );
        assert!(
            g.get(job, "resource_group").is_some(),
            "{f:?}: {job} has no resource_group"
        );
        assert_eq!(
            g.get(stop, "variables").expect("variables")["GIT_STRATEGY"],
            "none",
            "{f:?}: {stop} runs after the branch is deleted, without a checkout"
        );
        assert!(
            g.script(job).contains("--dotenv dagster-deploy.env"),
            "{f:?}: {job} reports the branch deployment for later jobs"
        );
    }
}
