//! The composite action (`action.yml`) run for real: a small runner executes its steps the way
//! GitHub's runner does (inputs and `${{ }}` expressions, `env:`, bash with `-eo pipefail`, the
//! `GITHUB_OUTPUT`/`GITHUB_PATH`/`GITHUB_STEP_SUMMARY` files), with realistic event payloads for
//! a push and a pull request opened, updated and merged, plus a fork's pull request.
//!
//! Everything behind it is real: the install step downloads a release archive of this build
//! from a local release server and checks its SHA-256; the deploy builds in the Docker engine,
//! pushes to the htpasswd registry and registers with a `dagster-deploy serve` process. Only
//! GitHub's REST API is a recording server, which keeps the pull request's comments.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::ci::{CommentApi, Serve, file_server, release_folder};
use support::{Cleanup, Monorepo, Services, python_shim_image, services, unique};

const REPO: &str = "acme/mono";
const GITHUB_TOKEN: &str = "ghs_recorded_token";

/// What one run of the action gave.
struct ActionRun {
    /// Exit code of the first failing step, else 0.
    code: i32,
    /// stdout and stderr of every step, without the `::add-mask::` commands (the runner
    /// consumes them).
    log: String,
    /// Values the steps asked the runner to mask.
    masks: Vec<String>,
    outputs: BTreeMap<String, String>,
    summary: String,
}

impl std::fmt::Display for ActionRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n{}", self.code, self.log)
    }
}

/// Runs `action.yml`'s steps as GitHub's runner does, for one event.
struct Runner<'a> {
    s: &'a Services,
    workspace: &'a Path,
    /// `DAGSTER_DEPLOY_DOWNLOAD_URL`: the local release server.
    downloads: String,
    github_api: String,
    temp: tempfile::TempDir,
}

impl Runner<'_> {
    fn run(&self, event_name: &str, event: &Value, with: &[(&str, &str)]) -> ActionRun {
        let action_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let action: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(action_dir.join("action.yml")).unwrap(),
        )
        .unwrap();
        assert_eq!(action["runs"]["using"].as_str(), Some("composite"));

        let run_dir = tempfile::tempdir_in(self.temp.path()).unwrap();
        let event_path = run_dir.path().join("event.json");
        std::fs::write(&event_path, event.to_string()).unwrap();
        let summary_path = run_dir.path().join("summary.md");
        let path_file = run_dir.path().join("path");
        std::fs::write(&path_file, "").unwrap();
        let sha = self.git(&["rev-parse", "HEAD"]);

        // Inputs: the defaults, then `with:` (an unknown input is a mistake in the test).
        let mut inputs = BTreeMap::new();
        for (name, spec) in action["inputs"].as_mapping().unwrap() {
            let default = spec["default"].as_str().unwrap_or("").to_string();
            let default = default.replace("${{ github.token }}", GITHUB_TOKEN);
            inputs.insert(name.as_str().unwrap().to_string(), default);
        }
        for (name, value) in with {
            assert!(inputs.contains_key(*name), "action.yml has no input {name}");
            inputs.insert(name.to_string(), value.to_string());
        }

        let mut base: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in [
            ("CI", "true".to_string()),
            ("GITHUB_ACTIONS", "true".to_string()),
            ("GITHUB_EVENT_NAME", event_name.to_string()),
            ("GITHUB_EVENT_PATH", event_path.display().to_string()),
            ("GITHUB_WORKSPACE", self.workspace.display().to_string()),
            ("GITHUB_REPOSITORY", REPO.to_string()),
            ("GITHUB_SHA", sha),
            ("GITHUB_SERVER_URL", "https://github.com".to_string()),
            ("GITHUB_API_URL", self.github_api.clone()),
            ("GITHUB_RUN_ID", "4242".to_string()),
            ("GITHUB_ACTION_PATH", action_dir.display().to_string()),
            ("GITHUB_STEP_SUMMARY", summary_path.display().to_string()),
            ("GITHUB_PATH", path_file.display().to_string()),
            ("RUNNER_OS", "Linux".to_string()),
            ("RUNNER_TEMP", run_dir.path().display().to_string()),
            ("HOME", run_dir.path().display().to_string()),
            ("DOCKER_HOST", self.s.docker_host.clone()),
            (
                "DOCKER_CONFIG",
                run_dir.path().join("docker").display().to_string(),
            ),
            (
                "DAGSTER_CLOUD_CLI_CONFIG",
                run_dir.path().join("no-config").display().to_string(),
            ),
            ("DAGSTER_DEPLOY_DOWNLOAD_URL", self.downloads.clone()),
        ] {
            base.insert(k.to_string(), v);
        }

        let mut log = String::new();
        let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut code = 0;
        let mut masks = Vec::new();
        for step in action["runs"]["steps"].as_sequence().unwrap() {
            assert!(step.get("if").is_none(), "the runner has no `if:` support");
            assert_eq!(step["shell"].as_str(), Some("bash"));
            let eval = |text: &str| evaluate(text, &inputs, &step_outputs, action_dir);
            let output_file = run_dir.path().join("output");
            std::fs::write(&output_file, "").unwrap();
            let script = run_dir.path().join("step.sh");
            std::fs::write(&script, step["run"].as_str().unwrap()).unwrap();

            let extra_path = std::fs::read_to_string(&path_file).unwrap();
            let mut path: Vec<&str> = extra_path.lines().rev().collect();
            path.push("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
            let mut cmd = Command::new("bash");
            cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
                .arg(&script)
                .env_clear()
                .envs(&base)
                .env("PATH", path.join(":"))
                .env("GITHUB_OUTPUT", &output_file);
            if let Some(env) = step["env"].as_mapping() {
                for (k, v) in env {
                    cmd.env(k.as_str().unwrap(), eval(v.as_str().unwrap()));
                }
            }
            let dir = step["working-directory"]
                .as_str()
                .map(|d| self.workspace.join(eval(d)))
                .unwrap_or_else(|| self.workspace.to_path_buf());
            let out = cmd.current_dir(dir).output().unwrap();
            log.push_str(&format!("== {}\n", step["name"].as_str().unwrap_or("step")));
            for stream in [&out.stdout, &out.stderr] {
                for line in String::from_utf8_lossy(stream).lines() {
                    match line.strip_prefix("::add-mask::") {
                        Some(secret) => masks.push(secret.to_string()),
                        None => log.push_str(&format!("{line}\n")),
                    }
                }
            }
            if let Some(id) = step["id"].as_str() {
                let text = std::fs::read_to_string(&output_file).unwrap();
                step_outputs.insert(id.to_string(), parse_outputs(&text));
            }
            code = out.status.code().unwrap_or(-1);
            if code != 0 {
                break;
            }
        }
        let mut outputs = BTreeMap::new();
        if code == 0 {
            for (name, spec) in action["outputs"].as_mapping().unwrap() {
                let value = spec["value"].as_str().unwrap();
                outputs.insert(
                    name.as_str().unwrap().to_string(),
                    evaluate(value, &inputs, &step_outputs, action_dir),
                );
            }
        }
        ActionRun {
            code,
            log,
            masks,
            outputs,
            summary: std::fs::read_to_string(&summary_path).unwrap_or_default(),
        }
    }

    fn git(&self, args: &[&str]) -> String {
        support::git_in(self.workspace, args)
    }
}

/// `${{ inputs.X }}`, `${{ github.action_path | action_repository | token }}` and
/// `${{ steps.ID.outputs.NAME }}`: the expressions action.yml may use. Anything else fails the
/// test, so the action cannot rely on what this runner does not check.
fn evaluate(
    text: &str,
    inputs: &BTreeMap<String, String>,
    steps: &BTreeMap<String, BTreeMap<String, String>>,
    action_dir: &Path,
) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("unclosed ${{") + start;
        let expr = rest[start + 3..end].trim();
        let parts: Vec<&str> = expr.split('.').collect();
        let value = match parts.as_slice() {
            ["inputs", name] => inputs[*name].clone(),
            ["github", "action_path"] => action_dir.display().to_string(),
            ["github", "action_repository"] => "acme/dagster-deploy".to_string(),
            ["github", "token"] => GITHUB_TOKEN.to_string(),
            ["steps", id, "outputs", name] => steps
                .get(*id)
                .and_then(|o| o.get(*name))
                .cloned()
                .unwrap_or_default(),
            _ => panic!("unsupported expression in action.yml: {expr}"),
        };
        out.push_str(&value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// `name=value` and `name<<DELIM ... DELIM` entries of a `GITHUB_OUTPUT` file.
fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delimiter {
                    break;
                }
                value.push(l);
            }
            outputs.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            outputs.insert(name.to_string(), value.to_string());
        }
    }
    outputs
}

fn push_event(before: &str, after: &str) -> Value {
    json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "repository": {"full_name": REPO, "default_branch": "main"},
    })
}

fn pull_request_event(action: &str, head_sha: &str, base_sha: &str, merged: bool) -> Value {
    let closed = action == "closed";
    json!({
        "action": action,
        "number": 7,
        "repository": {"full_name": REPO},
        "pull_request": {
            "number": 7,
            "state": if closed { "closed" } else { "open" },
            "merged": merged,
            "html_url": format!("https://github.com/{REPO}/pull/7"),
            "head": {"ref": "feature/faster", "sha": head_sha, "repo": {"full_name": REPO, "fork": false}},
            "base": {"ref": "main", "sha": base_sha, "repo": {"full_name": REPO}},
        },
    })
}

// Multi-threaded: the test blocks on child processes while its servers answer them.
#[cfg_attr(
    not(ci),
    ignore = "needs Docker and the registry (scripts/services.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_deploys_pushes_and_pull_requests_and_closes_branch_deployments() {
    let Some(s) = services().await else { return };
    let shim = python_shim_image(&s);
    let registry = format!("{}/{}", s.registry, unique("dagster-deploy-test/action"));
    let m = Monorepo::example(&registry);
    let server = Serve::start(&s);
    let mut cleanup = Cleanup::new(&s);
    let releases = release_folder(env!("CARGO_PKG_VERSION"));
    let (api, api_url) =
        CommentApi::start(("authorization", &format!("Bearer {GITHUB_TOKEN}"))).await;
    let runner = Runner {
        s: &s,
        workspace: m.path(),
        downloads: file_server(releases.path().to_path_buf()).await,
        github_api: api_url,
        temp: tempfile::tempdir().unwrap(),
    };
    let base_arg = format!("BASE_IMAGE={shim}");
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        let mut w = vec![
            ("url", server.url.as_str()),
            ("api-token", server.token.as_str()),
            ("build-args", base_arg.as_str()),
            ("registry", s.registry.as_str()),
            ("registry-username", s.user.as_str()),
            ("registry-password", s.password.as_str()),
        ];
        w.extend_from_slice(extra);
        w
    };
    let all = ["analytics", "ingest", "ml", "reporting"];

    // A push to main: installed from the release archive, every location built and registered
    // in `prod`, the job summary and the outputs filled in.
    let main_before = m.git(&["rev-parse", "HEAD~0"]);
    m.commit("an unrelated commit on main");
    let main_head = m.git(&["rev-parse", "HEAD"]);
    let push = runner.run("push", &push_event(&main_before, &main_head), &with(&[]));
    assert_eq!(push.code, 0, "{push}");
    assert!(
        push.log
            .contains("installed dagster-deploy 0.1.0 from its release archive"),
        "{push}"
    );
    // Secrets never reach the log, and the runner is told to mask them anyway.
    assert!(!push.log.contains(&s.password), "{push}");
    assert!(!push.log.contains(&server.token), "{push}");
    assert!(push.masks.contains(&server.token), "{:?}", push.masks);
    assert!(push.masks.contains(&s.password), "{:?}", push.masks);
    assert_eq!(push.outputs["deployment"], "prod");
    let results: Value = serde_json::from_str(&push.outputs["results"]).unwrap();
    for r in results["results"].as_array().unwrap() {
        for tag in r["pushed_tags"].as_array().unwrap() {
            cleanup.image(tag.as_str().unwrap());
        }
    }
    assert_eq!(results["summary"]["built"], 4, "{push}");
    let plan: Value = serde_json::from_str(&push.outputs["plan"]).unwrap();
    assert_eq!(plan["head"]["commit"], main_head.as_str());
    let prod = server.images("prod");
    assert_eq!(prod.keys().collect::<Vec<_>>(), all);
    for location in all {
        assert!(
            push.summary
                .contains(&format!("| {location} | built | `{}", prod[location])),
            "{}",
            push.summary
        );
    }
    assert!(push.summary.contains("✅ loaded"), "{}", push.summary);
    assert!(
        api.requests.lock().unwrap().is_empty(),
        "no comment on a push"
    );

    // A pull request changing `ingest`: its branch deployment is created with every location
    // (the unchanged ones reuse their images), and one comment is posted.
    m.git(&["checkout", "-q", "-b", "feature/faster"]);
    m.write("ingest/ingest/extra.py", "FAST = True\n");
    let pr_head = m.commit("faster ingest");
    let opened = runner.run(
        "pull_request",
        &pull_request_event("opened", &pr_head, &main_head, false),
        &with(&[]),
    );
    assert_eq!(opened.code, 0, "{opened}");
    let branch = opened.outputs["deployment"].clone();
    assert_ne!(branch, "prod", "{opened}");
    let record = server.deployments().deployment(&branch).unwrap();
    let facts = record.branch.expect("a branch deployment");
    assert_eq!(facts.pull_request_number.as_deref(), Some("7"));
    assert_eq!(facts.pull_request_status.as_deref(), Some("OPEN"));
    assert_eq!(facts.commit.commit_hash, pr_head);
    let branch_images = server.images(&branch);
    assert_eq!(branch_images.keys().collect::<Vec<_>>(), all);
    assert_ne!(branch_images["ingest"], prod["ingest"]);
    assert_eq!(branch_images["ml"], prod["ml"], "unchanged: reused");
    let results: Value = serde_json::from_str(&opened.outputs["results"]).unwrap();
    assert_eq!(results["summary"]["built"], 1, "{opened}");
    assert_eq!(results["summary"]["reused"], 3, "{opened}");
    for r in results["results"].as_array().unwrap() {
        for tag in r["pushed_tags"].as_array().unwrap() {
            cleanup.image(tag.as_str().unwrap());
        }
    }
    let bodies = api.bodies();
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0].contains(&format!("`{branch}`")), "{bodies:?}");
    assert!(bodies[0].contains("| ingest | built |"), "{bodies:?}");

    // A new commit on the pull request: the same branch deployment, the comment edited.
    m.write("ingest/ingest/extra.py", "FAST = 'yes'\n");
    let pr_head2 = m.commit("even faster ingest");
    let synced = runner.run(
        "pull_request",
        &pull_request_event("synchronize", &pr_head2, &main_head, false),
        &with(&[]),
    );
    assert_eq!(synced.code, 0, "{synced}");
    assert_eq!(synced.outputs["deployment"], branch);
    {
        let comments = api.comments.lock().unwrap();
        assert_eq!(comments.len(), 1, "edited, not posted again");
        assert!(
            comments[0]["body"]
                .as_str()
                .unwrap()
                .contains(&pr_head2[..7])
        );
        let requests = api.requests.lock().unwrap();
        assert_eq!(requests.iter().filter(|r| r.starts_with("POST")).count(), 1);
        assert_eq!(
            requests.iter().filter(|r| r.starts_with("PATCH")).count(),
            1
        );
    }
    let results: Value = serde_json::from_str(&synced.outputs["results"]).unwrap();
    for r in results["results"].as_array().unwrap() {
        for tag in r["pushed_tags"].as_array().unwrap() {
            cleanup.image(tag.as_str().unwrap());
        }
    }

    // Merged: the branch deployment is marked MERGED and nothing is built.
    let merged = runner.run(
        "pull_request",
        &pull_request_event("closed", &pr_head2, &main_head, true),
        &with(&[]),
    );
    assert_eq!(merged.code, 0, "{merged}");
    assert!(merged.log.contains("marked MERGED"), "{merged}");
    assert_eq!(
        server.pull_request_status(&branch).as_deref(),
        Some("MERGED")
    );
    assert_eq!(server.images("prod"), prod, "prod untouched");

    // A fork's pull request gets no secrets: planned and built, nothing pushed or registered.
    let mut fork = pull_request_event("opened", &pr_head2, &main_head, false);
    fork["number"] = json!(8);
    fork["pull_request"]["number"] = json!(8);
    fork["pull_request"]["head"]["repo"] = json!({"full_name": "stranger/mono", "fork": true});
    let deployments_before = server.deployments().deployments().unwrap().len();
    let forked = runner.run(
        "pull_request",
        &fork,
        &[
            ("url", server.url.as_str()),
            ("build-args", base_arg.as_str()),
        ],
    );
    assert_eq!(forked.code, 0, "{forked}");
    assert!(forked.log.contains("comes from a fork"), "{forked}");
    assert!(
        forked.summary.contains("comes from a fork"),
        "{}",
        forked.summary
    );
    assert_eq!(
        server.deployments().deployments().unwrap().len(),
        deployments_before
    );

    // The same push without a token: an error naming the input, before any work.
    let no_token = runner.run(
        "push",
        &push_event(&main_before, &main_head),
        &[("url", server.url.as_str())],
    );
    assert_ne!(no_token.code, 0, "{no_token}");
    assert!(no_token.log.contains("`api-token` input"), "{no_token}");
    assert!(!no_token.log.contains("building"), "{no_token}");
}
