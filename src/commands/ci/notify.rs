//! `ci notify`: on GitHub Actions, the pull request comment showing the session's status —
//! the comment an earlier run posted is edited, else a new one is posted, as the reference
//! does. Like the reference, a comment that cannot be written is a warning, not a failure:
//! it must not fail a deploy. Outside a pull request, or without `GITHUB_TOKEN`, nothing is
//! posted.

use crate::ci::context::{CiContext, CiProvider};
use crate::ci::github::PullRequest;
use crate::ci::pull_request::{self, Source};
use crate::ci::report;
use crate::cli::ci::NotifyArgs;
use crate::error::Error;
use crate::output;

pub async fn run(args: &NotifyArgs) -> Result<u8, Error> {
    let env = &super::super::process_env;
    let dir = super::statedir(&args.statedir)?;
    let states = dir.list()?;
    if CiContext::detect(env).provider != Some(CiProvider::Github) {
        return Err(Error::Usage {
            message: "'ci notify' is only available within GitHub Actions".into(),
            hint: "on other CIs, post `ci status --output-format markdown` yourself".into(),
        });
    }
    let Some(facts) = pull_request::branch_facts(Source::Github, env, &args.project_dir, false)?
    else {
        output::progress("Not within a pull request: no comment posted.");
        return Ok(0);
    };
    let (Some(number), Some(token)) = (
        facts.branch.pull_request_number.clone(),
        env("GITHUB_TOKEN").filter(|t| !t.is_empty()),
    ) else {
        output::progress("GITHUB_TOKEN is not set: no comment posted.");
        return Ok(0);
    };
    let label = states
        .first()
        .map(|s| format!(" (`{}`)", s.deployment_name))
        .unwrap_or_default();
    let body = format!(
        "Your pull request at commit `{}` is automatically being deployed to Dagster Cloud{label}.\n\n{}",
        facts.commit.commit_hash,
        report::markdown(&states)
    );
    let pr = PullRequest {
        api: env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
        repo: facts.branch.repo_name.clone(),
        number,
    };
    let marker = format!("Dagster Cloud{label}");
    match pr.upsert_comment(&token, &body, &marker).await {
        Ok(action) => output::progress(&format!(
            "{action} the status comment on pull request #{}.",
            pr.number
        )),
        Err(why) => output::warn(&format!("could not update the pull request comment: {why}")),
    }
    Ok(0)
}
