//! Everything that can go wrong talking to a deployment API (Dagster+ or ours), each with a
//! stable code and a hint. Messages never contain the API token.

use std::path::PathBuf;
use std::time::Duration;

/// One location that loaded with an error, as the agent reported it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadFailure {
    pub location: String,
    pub message: String,
    /// The Python stack, joined.
    pub stack: String,
    /// Earlier errors: `(explicit cause?, message, stack)`.
    pub chain: Vec<ChainLink>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainLink {
    /// `true`: "caused by" (`raise ... from`); `false`: "during handling of".
    pub explicit: bool,
    pub message: String,
    pub stack: String,
}

impl LoadFailure {
    /// The error as the reference CLI prints it: message, stack, then each link of the chain.
    pub fn render(&self) -> String {
        let mut parts = vec![self.message.clone(), self.stack.clone()];
        for link in &self.chain {
            parts.push(if link.explicit {
                "The above exception was caused by the following exception:".into()
            } else {
                "The above exception occurred during handling of the following exception:".into()
            });
            parts.push(link.message.clone());
            parts.push(link.stack.clone());
        }
        parts.join("\n")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // ---- settings ---------------------------------------------------------------------
    #[error("no API token: {what} needs one")]
    MissingToken { what: String },
    #[error("no organization or URL: {what} needs to know where to send requests")]
    MissingOrganization { what: String },
    #[error("no deployment: {what} needs to know which deployment to change")]
    MissingDeployment { what: String },
    #[error("{name}={value:?} is not a whole number of seconds")]
    InvalidTimeout { name: String, value: String },
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot read the dagster-cloud CLI config {}: {message}", path.display())]
    ConfigFile { path: PathBuf, message: String },
    #[error("{message}")]
    InvalidInput { message: String, hint: String },

    // ---- transport ----------------------------------------------------------------------
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("gave up on {url} after {attempts} attempts: {last}")]
    RetriesExhausted {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error(
        "{operation} sent to {url} got no answer within {} s; it was not sent again because it \
         changes data and may already have been applied",
        timeout.as_secs()
    )]
    MutationTimedOut {
        url: String,
        operation: String,
        timeout: Duration,
    },
    #[error("{url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the deployment API is under maintenance: {message}")]
    Maintenance { message: String },

    // ---- answers ------------------------------------------------------------------------
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// The deployment the request names does not exist there.
    #[error("{operation}: {message}")]
    UnknownDeployment { operation: String, message: String },
    #[error("the server rejected {operation}: {}", messages.join("; "))]
    GraphQl {
        operation: String,
        messages: Vec<String>,
    },
    #[error("{operation} failed on the server: {message}")]
    Python {
        operation: String,
        message: String,
        stack: String,
    },
    #[error("invalid location document:\n{}", errors.join("\n"))]
    InvalidLocation { errors: Vec<String> },
    #[error("unexpected answer to {operation}: {detail}")]
    Unexpected { operation: String, detail: String },

    // ---- waiting for load ---------------------------------------------------------------
    #[error(
        "no agent is heartbeating after {} s: make sure an agent is running for this deployment",
        timeout.as_secs()
    )]
    NoAgent { timeout: Duration },
    #[error(
        "timed out after {} s waiting for {} to load",
        timeout.as_secs(),
        locations.join(", ")
    )]
    LoadTimeout {
        timeout: Duration,
        locations: Vec<String>,
    },
    #[error(
        "some locations failed to load after being synced by the agent:\n{}",
        failures.iter().map(|f| format!("Error loading {}:\n{}", f.location, f.render()))
            .collect::<Vec<_>>().join("\n")
    )]
    LoadFailed { failures: Vec<LoadFailure> },

    // ---- our own extensions ----------------------------------------------------------
    #[error("{message}")]
    Git { message: String },
}

impl ApiError {
    /// An error answer saying the request's deployment does not exist (our server's
    /// `deployment 'x' does not exist ...`, Dagster+'s `DeploymentNotFoundError`) is that,
    /// not a protocol mismatch.
    pub fn from_graphql(operation: &str, messages: Vec<String>) -> ApiError {
        let missing = |m: &String| {
            let m = m.to_ascii_lowercase();
            m.contains("deployment") && (m.contains("does not exist") || m.contains("not found"))
        };
        match messages.iter().find(|m| missing(m)) {
            Some(message) => ApiError::UnknownDeployment {
                operation: operation.to_string(),
                message: message.clone(),
            },
            None => ApiError::GraphQl {
                operation: operation.to_string(),
                messages,
            },
        }
    }

    /// A stable code for `--json` errors.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken { .. } => "api-token-missing",
            ApiError::MissingOrganization { .. } => "api-organization-missing",
            ApiError::MissingDeployment { .. } => "api-deployment-missing",
            ApiError::InvalidTimeout { .. } => "api-invalid-timeout",
            ApiError::InvalidUrl { .. } => "api-invalid-url",
            ApiError::ConfigFile { .. } => "api-config-file",
            ApiError::InvalidInput { .. } => "api-invalid-input",
            ApiError::Unreachable { .. } => "api-unreachable",
            ApiError::RetriesExhausted { .. } => "api-retries-exhausted",
            ApiError::MutationTimedOut { .. } => "api-mutation-timed-out",
            ApiError::Http { .. } => "api-http-error",
            ApiError::Maintenance { .. } => "api-maintenance",
            ApiError::Unauthorized { .. } => "api-unauthorized",
            ApiError::UnknownDeployment { .. } => "api-unknown-deployment",
            ApiError::GraphQl { .. } => "api-graphql-error",
            ApiError::Python { .. } => "api-server-error",
            ApiError::InvalidLocation { .. } => "api-invalid-location",
            ApiError::Unexpected { .. } => "api-unexpected-answer",
            ApiError::NoAgent { .. } => "api-no-agent",
            ApiError::LoadTimeout { .. } => "api-load-timeout",
            ApiError::LoadFailed { .. } => "api-load-failed",
            ApiError::Git { .. } => "git",
        }
    }

    /// Wrong or missing settings are usage errors (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ApiError::MissingToken { .. }
                | ApiError::MissingOrganization { .. }
                | ApiError::MissingDeployment { .. }
                | ApiError::InvalidTimeout { .. }
                | ApiError::InvalidUrl { .. }
                | ApiError::InvalidInput { .. }
        )
    }

    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            ApiError::MissingToken { .. } => {
                "pass --api-token, set DAGSTER_CLOUD_API_TOKEN, or put user_token in \
                 ~/.dagster_cloud_cli/config (for `dagster-deploy serve`: \
                 `dagster-deploy serve token create`)"
                    .into()
            }
            ApiError::MissingOrganization { .. } => {
                "pass --organization or --url, or set DAGSTER_CLOUD_ORGANIZATION or \
                 DAGSTER_CLOUD_URL"
                    .into()
            }
            ApiError::MissingDeployment { .. } => {
                "pass --deployment or set DAGSTER_CLOUD_DEPLOYMENT (or default_deployment in \
                 ~/.dagster_cloud_cli/config)"
                    .into()
            }
            ApiError::InvalidTimeout { .. } => "give the timeout in whole seconds, e.g. 600".into(),
            ApiError::InvalidUrl { .. } => {
                "use an http:// or https:// URL such as https://my-org.dagster.cloud/prod".into()
            }
            ApiError::ConfigFile { .. } => {
                "fix the YAML of that file, or point DAGSTER_CLOUD_CLI_CONFIG at another one".into()
            }
            ApiError::InvalidInput { hint, .. } => hint.clone(),
            ApiError::Unreachable { .. } | ApiError::RetriesExhausted { .. } => {
                "check the URL and your network; is the server running?".into()
            }
            ApiError::MutationTimedOut { .. } => {
                "check the deployment's current state (e.g. `dagster-deploy deployment \
                 list-locations`) before trying again"
                    .into()
            }
            ApiError::Http { status: 404, .. } => {
                "check the URL: deployment commands take the deployment URL \
                 (https://ORG.dagster.cloud/DEPLOYMENT)"
                    .into()
            }
            ApiError::Http { .. } => "check the URL and try again later".into(),
            ApiError::Maintenance { .. } => "try again once the maintenance is over".into(),
            ApiError::Unauthorized { .. } => {
                "check that the API token is valid and allowed to access this deployment".into()
            }
            ApiError::UnknownDeployment { .. } => {
                "check the deployment name (--deployment or DAGSTER_CLOUD_DEPLOYMENT; for `ci` \
                 steps the one `ci init` recorded): it must exist before locations are \
                 registered there (`dagster-deploy serve` creates its default deployment and \
                 branch deployments)"
                    .into()
            }
            ApiError::GraphQl { .. } | ApiError::Unexpected { .. } => {
                "the server does not speak the operations dagster-deploy sends; check the URL \
                 points at Dagster+ or `dagster-deploy serve`"
                    .into()
            }
            ApiError::Python { .. } => "read the server's message above".into(),
            ApiError::InvalidLocation { .. } => {
                "fix the location's entry in dagster_cloud.yaml (or the flags) and try again".into()
            }
            ApiError::NoAgent { .. } => {
                "start an agent for the deployment, or raise --agent-heartbeat-timeout \
                 (DAGSTER_CLOUD_AGENT_HEARTBEAT_TIMEOUT)"
                    .into()
            }
            ApiError::LoadTimeout { .. } => {
                "check the agent's logs, or raise --location-load-timeout \
                 (DAGSTER_CLOUD_LOCATION_LOAD_TIMEOUT)"
                    .into()
            }
            ApiError::LoadFailed { .. } => {
                "fix the code or image of the locations above and deploy again".into()
            }
            ApiError::Git { .. } => "check that the repository is not corrupt (`git fsck`)".into(),
        }
    }
}
