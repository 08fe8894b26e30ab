//! `ci ...`: the build-session commands, on the reference client's state files
//! (`ci::state`), so each step may be run by either tool. One file per concern.

mod branch;
mod build;
mod check;
mod deploy;
mod init;
mod notify;
mod session;

use std::collections::BTreeMap;
use std::path::Path;

use crate::ci::state::{LocationState, StateDir};
use crate::cli::ci::{CiCommand, StatedirArgs};
use crate::config::{self, Location};
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

/// Each state's dagster_cloud.yaml entry (templates rendered, `defaults` merged, as every
/// command reads it), loading each file once.
fn entries<'a>(
    states: impl IntoIterator<Item = &'a LocationState>,
) -> Result<BTreeMap<String, Location>, Error> {
    let mut files: BTreeMap<String, config::Workspace> = BTreeMap::new();
    let mut found = BTreeMap::new();
    for state in states {
        if !files.contains_key(&state.location_file) {
            let ws = config::load(Path::new(&state.location_file), &super::process_env)?;
            files.insert(state.location_file.clone(), ws);
        }
        let location = files
            .get(&state.location_file)
            .and_then(|ws| ws.locations.iter().find(|l| l.name == state.location_name))
            .ok_or_else(|| Error::Failed {
                message: format!(
                    "location `{}` is not in {} (the session's location_file)",
                    state.location_name, state.location_file
                ),
                hint: "the file changed since `ci init`: run `ci init` again, or \
                       `ci locations-deselect NAME` to leave the location out"
                    .into(),
            })?;
        found.insert(state.location_name.clone(), location.clone());
    }
    Ok(found)
}

fn names(states: &[LocationState]) -> String {
    states
        .iter()
        .map(|s| s.location_name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
