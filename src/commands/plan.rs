//! `plan`: what would be built, redeployed or skipped, and why: what `deploy` would do.

use crate::ci::context::CiContext;
use crate::cli::PlanArgs;
use crate::error::Error;
use crate::output;
use crate::plan;

pub fn run(args: &PlanArgs) -> Result<u8, Error> {
    let req = super::build::request(&args.selection)?;
    let ci = CiContext::detect(&super::process_env);
    let repo = plan::open_repo(&req)?;
    // As `deploy` plans: each location against its deployed commit, when something is deployed.
    let target = match args.git_only {
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
    } else {
        print!("{}", output::plan_table(&plan));
    }
    Ok(0)
}
