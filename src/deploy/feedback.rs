//! What a deploy tells people where they look in CI: the GitHub job summary, step outputs and
//! pull request comment; the GitLab merge request note and dotenv report. One markdown table
//! (location, action, image, status, time, link) serves every place.
//!
//! Feedback never fails a deploy that succeeded: a comment or note that cannot be written is
//! a warning (the deployment has already changed, and the table is in the log too).

use std::fmt::Write as _;

use super::flow::Deployed;
use super::register::{RegisterReport, RegisterStatus};
use crate::build::{BuildReport, BuildStatus};
use crate::ci::github::{self, PullRequest};
use crate::ci::gitlab::{self, MergeRequest};
use crate::ci::pull_request;
use crate::config::Env;
use crate::printer;

/// Hidden in the rendered comment; finds the comment or note to edit on the next run.
pub const MARKER: &str = "<!-- dagster-deploy -->";

/// Everything one `deploy` did, as the summaries show it.
pub struct DeploySummary<'a> {
    pub deployment: &'a str,
    pub commit: &'a str,
    pub build: &'a BuildReport,
    pub registration: &'a RegisterReport,
    /// The branch deployment's pull request, when this deploy went to one.
    pub pull_request: Option<String>,
}

impl DeploySummary<'_> {
    /// The markdown shown in the job summary, the PR comment and the MR note.
    pub fn markdown(&self) -> String {
        let mut out = format!("{MARKER}\n### dagster-deploy: `{}`", self.deployment);
        if let Some(pr) = &self.pull_request {
            let _ = write!(out, " (branch deployment of {pr})");
        }
        let _ = writeln!(
            out,
            " at `{}`\n",
            self.commit.get(..7).unwrap_or(self.commit)
        );
        if self.registration.locations.is_empty() && self.build.results.is_empty() {
            out.push_str("Nothing to deploy: every location is up to date.\n");
            return out;
        }
        out.push_str("| Location | Action | Image | Status | Time | Link |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- |\n");
        let link = if self.registration.target.starts_with("http") {
            format!("[view]({}/locations)", self.registration.target)
        } else {
            "-".into()
        };
        for row in self.rows() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {link} |",
                row.location,
                row.action,
                row.image.map(|i| format!("`{i}`")).unwrap_or("-".into()),
                row.status,
                row.seconds
                    .map(|s| format!("{s:.1} s"))
                    .unwrap_or("-".into()),
            );
        }
        out
    }

    /// One row per registered or built location, in registration order, then builds that
    /// were never registered.
    fn rows(&self) -> Vec<Row<'_>> {
        let build_of = |name: &str| self.build.results.iter().find(|r| r.location == name);
        let mut rows: Vec<Row> = self
            .registration
            .locations
            .iter()
            .map(|l| {
                let built = build_of(&l.location);
                Row {
                    location: &l.location,
                    action: match built.map(|b| b.status) {
                        Some(BuildStatus::Built) => "built",
                        Some(BuildStatus::Reused) => "reused",
                        _ => l.action.as_str(),
                    },
                    image: l.image.as_deref(),
                    status: match l.status {
                        RegisterStatus::Loaded => "✅ loaded",
                        RegisterStatus::LoadFailed => "❌ load failed",
                        RegisterStatus::SkippedBackwards => "⏭️ skipped (newer deployed)",
                        RegisterStatus::NotRegistered => "❌ not registered",
                        RegisterStatus::Unconfirmed => "⚠️ registered, load not confirmed",
                    },
                    seconds: built.map(|b| b.seconds),
                }
            })
            .collect();
        for b in &self.build.results {
            if rows.iter().any(|r| r.location == b.location) {
                continue;
            }
            rows.push(Row {
                location: &b.location,
                action: b.status.as_str(),
                image: b.image.as_deref(),
                status: match b.status {
                    BuildStatus::Failed => "❌ build failed",
                    BuildStatus::Cancelled => "❌ cancelled",
                    _ => "not registered",
                },
                seconds: Some(b.seconds),
            });
        }
        rows
    }
}

struct Row<'a> {
    location: &'a str,
    action: &'a str,
    image: Option<&'a str>,
    status: &'static str,
    seconds: Option<f64>,
}

/// Writes the summary wherever the CI shows it. Returns the warnings to print.
pub async fn publish(
    env: Env<'_>,
    summary: &DeploySummary<'_>,
    dotenv: Option<&str>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let markdown = summary.markdown();
    if github::active(env) {
        if let Err(e) = github::append_summary(env, &markdown) {
            warnings.push(e);
        }
        if let Some(warning) = comment_on_pull_request(env, &markdown).await {
            warnings.push(warning);
        }
    }
    if let Some(warning) = note_on_merge_request(env, &markdown).await {
        warnings.push(warning);
    }
    if let Some(path) = dotenv {
        let is_branch = summary.pull_request.is_some();
        if let Err(e) = write_dotenv(path, summary.deployment, is_branch, summary.commit) {
            warnings.push(e);
        }
    }
    warnings
}

/// The dotenv report later CI jobs read (GitLab `artifacts: reports: dotenv`): the deployment
/// this run targets, whether it is a branch deployment, and the commit.
pub fn write_dotenv(
    path: &str,
    deployment: &str,
    is_branch_deployment: bool,
    commit: &str,
) -> Result<(), String> {
    let text = gitlab::dotenv(&[
        ("DAGSTER_CLOUD_DEPLOYMENT", deployment.to_string()),
        (
            "DAGSTER_DEPLOY_IS_BRANCH_DEPLOYMENT",
            is_branch_deployment.to_string(),
        ),
        ("DAGSTER_DEPLOY_COMMIT", commit.to_string()),
    ]);
    std::fs::write(path, text).map_err(|e| format!("cannot write the dotenv report {path}: {e}"))
}

/// On a pull request event with `GITHUB_TOKEN`, the comment is posted once and edited after.
async fn comment_on_pull_request(env: Env<'_>, markdown: &str) -> Option<String> {
    let token = env("GITHUB_TOKEN").filter(|t| !t.trim().is_empty())?;
    let (repo, number) = pull_request::github_pull_request(env)?;
    let pr = PullRequest {
        api: env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
        repo,
        number,
    };
    match pr.upsert_comment(&token, markdown, MARKER).await {
        Ok(action) => {
            printer::progress(&format!(
                "{action} the deploy comment on pull request #{}.",
                pr.number
            ));
            None
        }
        Err(why) => Some(format!(
            "could not write the pull request comment (the deploy itself is done): {why}"
        )),
    }
}

/// In a merge request pipeline with `DAGSTER_DEPLOY_GITLAB_TOKEN`, the note is posted once and
/// edited after.
async fn note_on_merge_request(env: Env<'_>, markdown: &str) -> Option<String> {
    let token = env(gitlab::TOKEN_VAR).filter(|t| !t.trim().is_empty())?;
    let mr = MergeRequest::from_env(env)?;
    match mr.upsert_note(&token, markdown, MARKER).await {
        Ok(action) => {
            printer::progress(&format!(
                "{action} the deploy note on merge request !{}.",
                mr.iid
            ));
            None
        }
        Err(why) => Some(format!(
            "could not write the merge request note (the deploy itself is done): {why}"
        )),
    }
}

/// Everything a finished deploy tells CI, whatever the build strategy and also when there was
/// nothing to deploy: the job summary, pull request comment or merge request note, the dotenv
/// report, and the GitHub step outputs (`deployment`, `plan`, `results`). Returns warnings.
pub async fn after_deploy(env: Env<'_>, deployed: &Deployed, dotenv: Option<&str>) -> Vec<String> {
    let summary = DeploySummary {
        deployment: &deployed.registration.deployment,
        commit: &deployed.head,
        build: &deployed.report,
        registration: &deployed.registration,
        pull_request: deployed.pull_request.clone(),
    };
    let mut warnings = publish(env, &summary, dotenv).await;
    let outputs = serde_json::to_string(&deployed.plan).and_then(|plan| {
        let results = serde_json::to_string(deployed)?;
        Ok([
            ("deployment", deployed.registration.deployment.clone()),
            ("plan", plan),
            ("results", results),
        ])
    });
    let written = match outputs {
        Ok(outputs) => github::set_outputs(env, &outputs),
        Err(e) => Err(format!("cannot write the step outputs as JSON: {e}")),
    };
    if let Err(e) = written {
        warnings.push(e);
    }
    warnings
}
