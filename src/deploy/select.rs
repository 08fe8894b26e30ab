//! The planning policy: what each location is compared with, one rule for every command that
//! selects locations (`deploy`, `plan`, `ci init`, `plan --github-matrix` and
//! `--gitlab-child-pipeline`), so none ever does less than the reference client, which
//! deploys every location it is given:
//!
//! - `--base REV` given: every location against that commit (git alone decides);
//! - else, when a deployment is configured: each location against the commit its deployed
//!   document records, so a location the deployment lacks is always built, and a failed or
//!   skipped pipeline never loses a change (a deployed document without a commit, or with one
//!   this clone lacks, falls back to the common base);
//! - else (no settings, nothing deployed from here): against the common base.
//!
//! Locations named on the command line (`--location`, `--location-name`) are always acted
//! on; change-based selection only decides for the others. `--all` acts on every one.

use super::target::Deployment;
use crate::api::document;
use crate::ci::context::CiContext;
use crate::error::Error;
use crate::plan::{CiFacts, Deployed, PlanRequest};

/// What the CI run tells the plan: whether this is CI, and the event's base (asked for, and
/// its errors reported, only when `--base` does not name one).
pub fn ci_facts(ci: &CiContext, req: &PlanRequest) -> Result<CiFacts, Error> {
    let event_base = match req.base {
        Some(_) => None,
        None => ci.base.clone()?,
    };
    Ok(CiFacts {
        in_ci: ci.is_ci(),
        event_base,
    })
}

/// What the plan compares with.
pub enum Against<'a> {
    /// Git alone: the common base (or `--base`).
    Git,
    /// What this deployment runs.
    Deployment(&'a dyn Deployment),
    /// A deployment that holds nothing yet (a local store or branch deployment this run will
    /// create): every location is new.
    Empty,
}

impl Against<'_> {
    /// For people, when locations are compared with a deployment: which one.
    pub fn describe(&self) -> Option<String> {
        match self {
            Against::Git => None,
            Against::Deployment(d) => Some(format!("deployment {} ({})", d.name(), d.describe())),
            Against::Empty => Some("a deployment that holds nothing yet".into()),
        }
    }
}

/// Each location's deployed commit to plan against (see the module's rules); `None`: git
/// alone decides.
pub async fn deployed(against: &Against<'_>, req: &PlanRequest) -> Result<Option<Deployed>, Error> {
    if req.base.is_some() || req.all {
        return Ok(None);
    }
    match against {
        Against::Git => Ok(None),
        Against::Empty => Ok(Some(Deployed::new())),
        Against::Deployment(d) => Ok(Some(
            d.current_documents()
                .await?
                .iter()
                .map(|(name, doc)| (name.clone(), document::commit_hash(doc).map(str::to_string)))
                .collect(),
        )),
    }
}

/// Whether `deployed` from [`deployed`] means the plan really compared with a deployment.
pub fn compared(against: &Against<'_>, req: &PlanRequest) -> bool {
    !matches!(against, Against::Git) && req.base.is_none() && !req.all
}
