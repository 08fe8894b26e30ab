//! `ci ...`: the build-session commands, on the reference client's state files
//! (`ci::state`), so each step may be run by either tool. One file per concern.

mod branch;
mod build;
mod check;
mod deploy;
mod init;
mod notify;
mod session;

use crate::ci::state::{LocationState, StateDir};
use crate::cli::ci::{CiCommand, StatedirArgs};
use crate::error::Error;

pub async fn run(command: &CiCommand) -> Result<u8, Error> {
    match command {
        CiCommand::Init(a) => init::run(a).await,
        CiCommand::Check(a) => check::run(a).await,
        CiCommand::Status(a) => session::status(a),
        CiCommand::Build(a) => build::run(a).await,
        CiCommand::SetBuildOutput(a) => session::set_build_output(a),
        CiCommand::Deploy(a) => deploy::run(a).await,
        CiCommand::LocationsList(a) => session::list(a),
        CiCommand::LocationsSelect(a) => session::select(a, true),
        CiCommand::LocationsDeselect(a) => session::select(a, false),
        CiCommand::BranchDeployment(a) => branch::run(a).await,
        CiCommand::Notify(a) => notify::run(a).await,
    }
}

/// The session folder every command after `init` needs: given and existing.
fn statedir(args: &StatedirArgs) -> Result<StateDir, Error> {
    Ok(StateDir::existing(
        args.statedir.as_deref(),
        &super::process_env,
    )?)
}

fn names(states: &[LocationState]) -> String {
    states
        .iter()
        .map(|s| s.location_name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
