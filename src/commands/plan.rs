//! `plan`: what would be built, redeployed or skipped, and why.

use crate::ci::context::CiContext;
use crate::cli::PlanArgs;
use crate::error::Error;
use crate::output;
use crate::plan::{self, PlanRequest};

pub fn run(args: &PlanArgs) -> Result<u8, Error> {
    let req = PlanRequest {
        config: super::locate_config(&args.config)?,
        base: args.base.clone(),
        head: args.head.clone(),
        include_dirty: args.include_dirty,
        force: args.locations.clone(),
        all: args.all,
    };
    let ci = CiContext::detect(&super::process_env);
    let repo = plan::open_repo(&req)?;
    let plan = plan::plan_in(&repo, &req, &ci, &super::process_env, &Default::default());
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
