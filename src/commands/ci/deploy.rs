//! `ci deploy`: the session's selected locations in one `deployLocations`, then wait
//! (`deploy::session_deploy`).

use crate::cli::api::ConnectionArgs;
use crate::cli::ci::DeployArgs;
use crate::deploy::session_deploy::deploy_session;
use crate::error::Error;

pub async fn run(args: &DeployArgs) -> Result<u8, Error> {
    let dir = super::statedir(&args.statedir)?;
    let states = dir.selected(&args.location_names)?;
    let settings = super::super::compat::settings(&ConnectionArgs::default(), Some(&args.wait))?;
    deploy_session(&dir, states, &settings, &super::super::process_env).await?;
    Ok(0)
}
