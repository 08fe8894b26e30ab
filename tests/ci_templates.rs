//! The CI templates in `ci-templates/` and `.github/workflows/`: GitHub workflows pass actionlint
//! (with shellcheck on their scripts), GitLab templates hang together, every `dagster-deploy`
//! command line in any template names a real subcommand and real flags, and `install.sh`
//! installs a checked binary and nothing else.
//!
//! actionlint comes from `scripts/actionlint.sh` (`DAGSTER_DEPLOY_ACTIONLINT`); without it the
//! lint test skips with a notice, except under `CI`, where it fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_dagster-deploy");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

/// Files of `dir` (repo-relative) whose name ends with `suffix`, sorted.
fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no {suffix} file in {dir}");
    found
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not YAML: {e}"))
}

// ---- actionlint -------------------------------------------------------------------------------

/// The actionlint executable: `DAGSTER_DEPLOY_ACTIONLINT`, else where `scripts/actionlint.sh`
/// installs it, else `actionlint` on PATH.
fn actionlint() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DAGSTER_DEPLOY_ACTIONLINT") {
        return Some(path.into());
    }
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/dagster-deploy/actionlint-venv/bin/actionlint"));
    if let Some(venv) = venv.filter(|p| p.is_file()) {
        return Some(venv);
    }
    let on_path = Command::new("actionlint").arg("-version").output();
    on_path
        .is_ok_and(|o| o.status.success())
        .then(|| "actionlint".into())
}

fn has_shellcheck() -> bool {
    Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg_attr(
    not(ci),
    ignore = "needs actionlint and shellcheck (scripts/actionlint.sh)"
)]
#[test]
fn github_workflows_and_templates_pass_actionlint_and_shellcheck() {
    let Some(actionlint) = actionlint() else {
        let why = "actionlint not found (DAGSTER_DEPLOY_ACTIONLINT, scripts/actionlint.sh)";
        assert!(!in_ci(), "{why}; CI is set, so this test must not skip");
        eprintln!("SKIPPED: {why}; run `scripts/actionlint.sh` to run this test");
        return;
    };
    // Without shellcheck actionlint silently leaves `run:` scripts unchecked.
    if !has_shellcheck() {
        assert!(
            !in_ci(),
            "shellcheck is missing: run `scripts/actionlint.sh`"
        );
        eprintln!("NOTE: shellcheck is missing: run: scripts are not checked");
    }
    let mut workflows = files(".github/workflows", ".yml");
    workflows.extend(files("ci-templates/github", ".yml"));
    let out = Command::new(&actionlint)
        .current_dir(root())
        .arg("-no-color")
        .args(&workflows)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {actionlint:?}: {e}"));
    assert!(
        out.status.success(),
        "actionlint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// actionlint checks a local action's inputs where a workflow uses it: with the templates'
/// `uses: dagster-deploy/dagster-deploy@v0` pointed at this checkout's action.yml, every `with:`
/// key must be an input of the action and every required input must be given. The action's
/// own `run:` scripts go through shellcheck (actionlint does not read action metadata).
#[cfg_attr(
    not(ci),
    ignore = "needs actionlint and shellcheck (scripts/actionlint.sh)"
)]
#[test]
fn the_action_and_the_workflows_using_it_agree() {
    let Some(actionlint) = actionlint() else {
        assert!(
            !in_ci(),
            "actionlint not found; CI is set, so this test must not skip"
        );
        eprintln!("SKIPPED: actionlint not found; run `scripts/actionlint.sh`");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("action.yml"), tmp.path().join("action.yml")).unwrap();
    let workflows = tmp.path().join(".github/workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    let mut using = 0;
    for template in files("ci-templates/github", ".yml") {
        let text = std::fs::read_to_string(&template).unwrap();
        let local = text.replace("dagster-deploy/dagster-deploy@v0", "./");
        using += usize::from(local != text);
        std::fs::write(workflows.join(template.file_name().unwrap()), local).unwrap();
    }
    assert!(using >= 2, "the templates no longer use the action");
    // actionlint finds its project through git.
    let init = Command::new("git")
        .args(["init", "-q"])
        .current_dir(tmp.path())
        .status()
        .unwrap();
    assert!(init.success());
    let out = Command::new(&actionlint)
        .current_dir(tmp.path())
        .arg("-no-color")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "actionlint found problems with action.yml's inputs:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    if !has_shellcheck() {
        assert!(
            !in_ci(),
            "shellcheck is missing: run `scripts/actionlint.sh`"
        );
        return;
    }
    let action = yaml(&root().join("action.yml"));
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    for (i, step) in steps.iter().enumerate() {
        let script = step["run"].as_str().unwrap();
        assert!(
            !script.contains("${{"),
            "step {i}: expressions belong in env:"
        );
        let file = tmp.path().join(format!("step{i}.sh"));
        std::fs::write(&file, script).unwrap();
        let out = Command::new("shellcheck")
            .args(["-s", "bash"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "action.yml step {i}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[cfg_attr(
    not(ci),
    ignore = "needs actionlint and shellcheck (scripts/actionlint.sh)"
)]
#[test]
fn shell_scripts_pass_shellcheck() {
    if !has_shellcheck() {
        assert!(
            !in_ci(),
            "shellcheck is missing: run `scripts/actionlint.sh`"
        );
        eprintln!("SKIPPED: shellcheck is missing; run `scripts/actionlint.sh`");
        return;
    }
    for (script, shell) in [
        ("ci-templates/install.sh", "sh"),
        ("scripts/actionlint.sh", "bash"),
    ] {
        let out = Command::new("shellcheck")
            .args(["-s", shell])
            .arg(root().join(script))
            .output()
            .expect("run shellcheck");
        assert!(
            out.status.success(),
            "{script}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

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

// ---- install.sh -------------------------------------------------------------------------------

/// A tiny HTTP server for the files of one folder (GET only), stopped when dropped.
struct FileServer {
    url: String,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    fn start(dir: PathBuf) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(&dir, stream);
                }
            }
        });
        FileServer {
            url: format!("http://{addr}"),
            stop,
            addr,
            thread: Some(thread),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(dir: &Path, mut stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let file = dir.join(path.trim_start_matches('/'));
    let (status, body) = match std::fs::read(&file) {
        Ok(body) if !path.contains("..") => ("200 OK", body),
        _ => ("404 Not Found", b"not found".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// The release target install.sh detects on this machine.
fn this_target() -> String {
    let os = match std::env::consts::OS {
        "linux" => "unknown-linux-musl",
        "macos" => "apple-darwin",
        other => panic!("no release target for {other}"),
    };
    format!("{}-{os}", std::env::consts::ARCH)
}

/// A release folder `v<version>/` holding the test binary as the archive for this machine.
fn release(dir: &Path, version: &str, sha256_override: Option<&str>) -> String {
    let target = this_target();
    let archive = format!("dagster-deploy-{target}.tar.gz");
    let release_dir = dir.join(format!("v{version}"));
    let staging = dir.join("staging");
    std::fs::create_dir_all(&release_dir).expect("mkdir");
    std::fs::create_dir_all(&staging).expect("mkdir");
    std::fs::copy(BIN, staging.join("dagster-deploy")).expect("copy the binary");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(release_dir.join(&archive))
        .arg("-C")
        .arg(&staging)
        .arg("dagster-deploy")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar failed");
    let bytes = std::fs::read(release_dir.join(&archive)).expect("archive");
    let digest = format!("{:x}", Sha256::digest(&bytes));
    let line = format!("{}  {archive}\n", sha256_override.unwrap_or(&digest));
    std::fs::write(release_dir.join(format!("{archive}.sha256")), line).expect("write");
    archive
}

/// Runs install.sh for `version` against `server`, installing into `bin_dir`.
fn install(server: &FileServer, version: &str, bin_dir: &Path) -> std::process::Output {
    Command::new("sh")
        .arg(root().join("ci-templates/install.sh"))
        .env("DAGSTER_DEPLOY_VERSION", version)
        .env("DAGSTER_DEPLOY_DOWNLOAD_URL", &server.url)
        .env("DAGSTER_DEPLOY_INSTALL_DIR", bin_dir)
        .env_remove("DAGSTER_DEPLOY_TARGET")
        .output()
        .expect("run install.sh")
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn install_sh_installs_the_checked_binary_of_the_version_asked_for() {
    let tmp = tempfile::tempdir().expect("tempdir");
    release(tmp.path(), VERSION, None);
    let server = FileServer::start(tmp.path().to_path_buf());
    let bin_dir = tmp.path().join("bin");
    let out = install(&server, &format!("v{VERSION}"), &bin_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let installed = bin_dir.join("dagster-deploy");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        installed.to_string_lossy()
    );
    let version = Command::new(&installed)
        .arg("--version")
        .output()
        .expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("dagster-deploy {VERSION}")
    );
}

#[test]
fn install_sh_refuses_a_bad_checksum_and_installs_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = release(tmp.path(), VERSION, Some(&"0".repeat(64)));
    let server = FileServer::start(tmp.path().to_path_buf());
    let bin_dir = tmp.path().join("bin");
    let out = install(&server, VERSION, &bin_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("checksum mismatch for {archive}")),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    assert!(!bin_dir.join("dagster-deploy").exists());
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}

#[test]
fn install_sh_refuses_an_archive_of_another_version_or_a_missing_release() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The test binary, published as if it were 9.9.9.
    release(tmp.path(), "9.9.9", None);
    let server = FileServer::start(tmp.path().to_path_buf());
    let bin_dir = tmp.path().join("bin");
    let out = install(&server, "9.9.9", &bin_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("asked for 9.9.9"), "{stderr}");
    assert!(!bin_dir.join("dagster-deploy").exists());

    let out = install(&server, "1.2.3", &bin_dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot download"), "{stderr}");
    assert!(!bin_dir.join("dagster-deploy").exists());
}
