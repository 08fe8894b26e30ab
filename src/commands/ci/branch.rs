//! `ci branch-deployment`: the pull request's branch deployment, created or updated from the
//! CI context (`--mark-closed` reports the request closed), or only looked up
//! (`--read-only`); its name goes to stdout.

use crate::api::SettingsFlags;
use crate::ci::context::{CiContext, CiError};
use crate::ci::pull_request::{self, Source};
use crate::cli::ci::BranchDeploymentArgs;
use crate::deploy::route;
use crate::error::Error;
use crate::output;

pub async fn run(args: &BranchDeploymentArgs) -> Result<u8, Error> {
    let env = &super::super::process_env;
    let settings = super::super::resolve_settings(&SettingsFlags {
        organization: args.organization.clone(),
        ..Default::default()
    })?;
    let what = "ci branch-deployment";
    let ci = CiContext::detect(env);
    let source = Source::of(ci.provider)?;
    let mark_closed = args.mark_closed && !args.no_mark_closed;
    let facts = pull_request::branch_facts(source, env, &args.project_dir, mark_closed)?;
    if args.read_only && !args.no_read_only {
        let Some(facts) = facts else {
            return Ok(0);
        };
        if let Some(name) = route::existing_branch(&settings, what, &facts.branch).await? {
            output::result_line(&name);
        }
        return Ok(0);
    }
    let facts = facts.ok_or_else(|| CiError::NoPullRequest {
        reason: "this run builds no pull request".into(),
    })?;
    let name = route::create_or_update_branch(
        &settings,
        what,
        &facts.branch,
        &facts.commit,
        args.base_deployment_name.as_deref(),
        super::super::compat::snapshot_base(args.snapshot_base_condition),
    )
    .await?;
    output::result_line(&name);
    Ok(0)
}
