//! `plan`: what would be built, redeployed or skipped, and why: what `deploy` would do.

use std::path::{Component, Path};

use crate::ci::context::CiContext;
use crate::ci::fan_out::{self, GitlabChild};
use crate::ci::state::StateDir;
use crate::cli::{FanOutArgs, PlanArgs};
use crate::deploy::select::{self, Against};
use crate::deploy::target;
use crate::error::Error;
use crate::output;
use crate::plan::{self, Plan};

pub async fn run(args: &PlanArgs) -> Result<u8, Error> {
    let env = &super::process_env;
    let req = super::build::request(&args.selection)?;
    let ci = CiContext::detect(env);
    let repo = plan::open_repo(&req)?;
    let child = match args.fan_out.gitlab_child_pipeline {
        true => Some(gitlab_child(&args.fan_out)?),
        false => None,
    };
    // As `deploy` plans (deploy::select): each location against what the deployment runs,
    // when one is configured or something was deployed from here.
    let existing = match args.git_only {
        true => None,
        false => {
            let settings = super::compat::settings(&args.connection, None)?;
            target::existing(&settings, &repo.workdir, false, "plan")?
        }
    };
    let against = existing
        .as_deref()
        .map_or(Against::Git, Against::Deployment);
    let deployed = select::deployed(&against, &req).await?;
    let facts = select::ci_facts(&ci, &req)?;
    let plan = plan::plan_in(&repo, &req, &facts, env, deployed.as_ref());
    // The process ends right after: leave unmapping git's pack files and freeing its caches to
    // the OS (on a large repository that is a measurable share of the whole run).
    std::mem::forget(repo);
    let plan = plan?;
    if args.json {
        output::result(&output::json(&plan)?);
    } else if args.fan_out.github_matrix {
        output::result(&fan_out::github_matrix(&fan_out_names(&plan, args)?));
    } else if let Some(child) = child {
        let names = fan_out_names(&plan, args)?;
        output::result(&fan_out::gitlab_child_pipeline(&names, &child)?);
    } else {
        let compared = select::compared(&against, &req)
            .then(|| against.describe())
            .flatten();
        output::result(&output::plan_table(&plan, compared.as_deref()));
    }
    Ok(0)
}

/// The locations the fan-out builds: those the build session (`ci init`) selected, when one
/// exists, so the matrix and the session always agree; else those the plan builds.
fn fan_out_names<'a>(plan: &'a Plan, args: &PlanArgs) -> Result<Vec<&'a str>, Error> {
    let names = fan_out::session_builds(plan);
    let session = StateDir::choose(args.fan_out.statedir.as_deref(), &super::process_env)
        .filter(|dir| dir.path.is_dir());
    let Some(dir) = session else {
        return Ok(names);
    };
    let states = dir.list()?;
    if states.is_empty() {
        return Ok(names);
    }
    Ok(plan
        .locations
        .iter()
        .filter(|l| {
            states
                .iter()
                .any(|s| s.location_name == l.name && s.selected)
        })
        .map(|l| l.name.as_str())
        .collect())
}

/// The child pipeline's settings, checked before planning.
fn gitlab_child(args: &FanOutArgs) -> Result<GitlabChild, Error> {
    let statedir = args.statedir.as_deref().ok_or_else(|| Error::Usage {
        message: "--gitlab-child-pipeline needs the build-session folder".into(),
        hint: "pass --statedir DIR (or set DAGSTER_BUILD_STATEDIR), the folder `ci init` wrote"
            .into(),
    })?;
    Ok(GitlabChild {
        statedir: project_relative(statedir)?,
        plan_job: args.gitlab_plan_job.clone(),
        image: args.gitlab_image.clone(),
        docker_service: match args.gitlab_docker_service.as_str() {
            "" | "none" => None,
            image => Some(image.to_string()),
        },
    })
}

/// GitLab only keeps artifacts inside the project directory (the job's working directory), so
/// the folder must be relative to it, or absolute inside it.
fn project_relative(dir: &Path) -> Result<String, Error> {
    let outside = || Error::Usage {
        message: format!(
            "--statedir {}: must be a folder inside the project directory, where GitLab keeps artifacts from",
            dir.display()
        ),
        hint: "use a folder relative to the project directory, e.g. .dagster-deploy-state".into(),
    };
    let relative = match dir.is_absolute() {
        true => {
            let cwd = std::env::current_dir().map_err(|_| outside())?;
            dir.strip_prefix(&cwd).map_err(|_| outside())?.to_path_buf()
        }
        false => dir.to_path_buf(),
    };
    let climbs = relative
        .components()
        .any(|c| matches!(c, Component::ParentDir));
    let text = relative.to_str().ok_or_else(outside)?;
    match (climbs, text.trim_start_matches("./")) {
        (true, _) | (false, "" | ".") => Err(outside()),
        (false, text) => Ok(text.trim_end_matches('/').to_string()),
    }
}
