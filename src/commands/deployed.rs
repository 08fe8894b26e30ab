//! What is deployed where `deploy` registers: the target (Dagster+ or `dagster-deploy serve`
//! when any setting names one, else the local store) and each location's deployed commit,
//! which is that location's plan base, so a failed or skipped pipeline never loses a change.

use std::path::Path;

use crate::api::{self, ClientOptions, Settings, Target};
use crate::error::Error;
use crate::plan::{Deployed, PlanRequest};
use crate::server::{DEFAULT_DEPLOYMENT, RegistryAccess};

/// The target if there is anything deployed to read, changing nothing: a local store that
/// does not exist yet is `None` (planning and dry runs must not create one).
pub(super) fn existing_target(
    settings: &Settings,
    repo_root: &Path,
) -> Result<Option<Target>, Error> {
    if settings.has_remote() {
        return Ok(Some(Target::from_settings(
            settings,
            repo_root,
            ClientOptions::default(),
            None,
        )?));
    }
    let deployment = settings.deployment.as_deref().unwrap_or(DEFAULT_DEPLOYMENT);
    Ok(Target::existing_local(repo_root, deployment)?)
}

/// Where to register: the remote target already open, else the local store (created on
/// first use), checking images with `registry`.
pub(super) fn registration_target(
    read: Option<Target>,
    settings: &Settings,
    repo_root: &Path,
    registry: RegistryAccess,
) -> Result<Target, Error> {
    match read {
        Some(remote @ Target::Remote { .. }) => Ok(remote),
        _ => Ok(Target::from_settings(
            settings,
            repo_root,
            ClientOptions::default(),
            Some(registry),
        )?),
    }
}

/// What the target holds, to plan against; `None` (git only) without a target or when `--base`
/// names the base for all. `runtime` must be the one later requests of a remote target use
/// (its connections live there).
pub(super) fn deployed(
    runtime: &tokio::runtime::Runtime,
    target: Option<&Target>,
    req: &PlanRequest,
) -> Result<Option<Deployed>, Error> {
    match target {
        Some(target) if req.base.is_none() => {
            Ok(Some(runtime.block_on(api::deployed_locations(target))?))
        }
        _ => Ok(None),
    }
}
