//! Where the GraphQL answers get each location's load status: the agent (code servers really
//! run, `serve`'s default), or the checks alone (images exist, Python-executable files were
//! uploaded: `serve --no-code-servers`; with `--no-image-checks` not even the images).

use std::sync::Arc;

use serde_json::Value;

use super::agent::Agent;
use super::load_status::{LoadChecker, LoadStatus};
use super::store::StoredLocation;

#[derive(Clone)]
pub(crate) enum StatusSource {
    Checks(Arc<LoadChecker>),
    Agent(Arc<Agent>),
}

impl StatusSource {
    pub(crate) fn status(&self, deployment: &str, location: &StoredLocation) -> LoadStatus {
        match self {
            StatusSource::Checks(checker) => checker.status(deployment, location),
            StatusSource::Agent(agent) => agent.status(deployment, location),
        }
    }

    /// A location document was registered.
    pub(crate) fn registered(&self, doc: &Value) {
        if let StatusSource::Checks(checker) = self {
            checker.registered(doc);
        }
    }

    /// Locations or deployments changed: the agent reconciles now rather than at its next tick.
    pub(crate) fn changed(&self) {
        if let StatusSource::Agent(agent) = self {
            agent.wake();
        }
    }
}
