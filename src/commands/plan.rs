//! `plan`: what would be built, redeployed or skipped, and why: what `deploy` would do.

use std::path::{Component, Path};

use crate::ci::context::CiContext;
use crate::ci::fan_out::{self, GitlabChild};
use crate::cli::{FanOutArgs, PlanArgs};
use crate::error::Error;
use crate::output;
use crate::plan;

pub fn run(args: &PlanArgs) -> Result<u8, Error> {
    let req = super::build::request(&args.selection)?;
    let ci = CiContext::detect(&super::process_env);
    let repo = plan::open_repo(&req)?;
    // As `deploy` plans: each location against its deployed commit, when something is deployed.
    // The fan-out outputs describe a `ci` session, which `ci init` plans from git alone: read
    // nothing deployed, or a location could be listed that the session did not select.
    let fan_out = args.fan_out.github_matrix || args.fan_out.gitlab_child_pipeline;
    let child = match args.fan_out.gitlab_child_pipeline {
        true => Some(gitlab_child(&args.fan_out)?),
        false => None,
    };
    let target = match args.git_only || fan_out {
        true => None,
        false => {
            let settings = super::compat::settings(&args.connection, None)?;
            super::deployed::existing_target(&settings, &repo.workdir)?
        }
    };
    let deployed = match &target {
        Some(target) => super::deployed::deployed(&super::runtime()?, Some(target), &req)?,
        None => None,
    };
    let plan = plan::plan_in(&repo, &req, &ci, &super::process_env, deployed.as_ref());
    // The process ends right after: leave unmapping git's pack files and freeing its caches to
    // the OS (on a large repository that is a measurable share of the whole run).
    std::mem::forget(repo);
    let plan = plan?;
    if args.json {
        print!("{}", output::json(&plan)?);
    } else if args.fan_out.github_matrix {
        print!(
            "{}",
            fan_out::github_matrix(&fan_out::session_builds(&plan))
        );
    } else if let Some(child) = child {
        let names = fan_out::session_builds(&plan);
        print!("{}", fan_out::gitlab_child_pipeline(&names, &child)?);
    } else {
        print!("{}", output::plan_table(&plan));
    }
    Ok(0)
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
