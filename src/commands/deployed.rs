//! What is deployed where `deploy` registers: the target (Dagster+ or `dagster-deploy serve`
//! when any setting names one, else the local store) and each location's deployed commit,
//! which is that location's plan base, so a failed or skipped pipeline never loses a change.

use std::path::Path;

use crate::api::register::LOCAL_STORE_DIR;
use crate::api::{self, ClientOptions, Settings, Target};
use crate::error::Error;
use crate::plan::{Deployed, PlanRequest};

/// The registration target (a local store is created on first use).
pub(super) fn target(settings: &Settings, repo_root: &Path) -> Result<Target, Error> {
    Ok(Target::from_settings(
        settings,
        repo_root,
        ClientOptions::default(),
        None,
    )?)
}

/// The target if there is anything deployed to read: for planning and dry runs, which must
/// not create a local store.
pub(super) fn existing_target(
    settings: &Settings,
    repo_root: &Path,
) -> Result<Option<Target>, Error> {
    if !settings.has_remote() && !repo_root.join(LOCAL_STORE_DIR).exists() {
        return Ok(None);
    }
    target(settings, repo_root).map(Some)
}

/// What the target holds, to plan against; `None` (git only) without a target or when `--base`
/// names the base for all.
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
