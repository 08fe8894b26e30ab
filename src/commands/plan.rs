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
    let plan = plan::plan(&req, &ci, &super::process_env)?;
    if args.json {
        print!("{}", output::json(&plan)?);
    } else {
        print!("{}", output::plan_table(&plan));
    }
    Ok(0)
}
