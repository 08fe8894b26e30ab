//! GraphQL object, enum and union types, named as the reference client's fragments expect.

use async_graphql::{Enum, InputObject, Object, SimpleObject, Union};

use super::GenericScalar;
use crate::server::document;
use crate::server::error::DeployError;
use crate::server::load_status::{LoadStatus, PythonTrace};
use crate::server::status::StatusSource;
use crate::server::store::{
    BranchDeployment, CommitInfo, DeploymentKind, DeploymentRecord, Revision, RevisionAction,
    StoredLocation,
};

// ---- errors -----------------------------------------------------------------------------

#[derive(SimpleObject, Clone, Debug)]
pub struct PythonError {
    pub message: String,
    pub stack: Vec<String>,
    pub error_chain: Vec<ErrorChainLink>,
    pub class_name: Option<String>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct ErrorChainLink {
    pub is_explicit_link: bool,
    pub error: PythonError,
}

impl PythonError {
    pub fn new(message: impl Into<String>) -> Self {
        PythonError {
            message: message.into(),
            stack: Vec::new(),
            error_chain: Vec::new(),
            class_name: None,
        }
    }
}

impl From<PythonTrace> for PythonError {
    /// A load error with its real stack and chain (Dagster's `errorChain` is flat).
    fn from(t: PythonTrace) -> Self {
        PythonError {
            message: t.message,
            stack: t.stack,
            error_chain: t
                .chain
                .into_iter()
                .map(|link| ErrorChainLink {
                    is_explicit_link: link.explicit,
                    error: PythonError {
                        message: link.message,
                        stack: link.stack,
                        error_chain: Vec::new(),
                        class_name: None,
                    },
                })
                .collect(),
            class_name: None,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct InvalidLocationError {
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct UnauthorizedError {
    pub message: String,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct DeploymentNotFoundError {
    pub message: String,
}

/// `From<DeployError>` for a result union: unauthorised → `UnauthorizedError`, invalid
/// documents → `InvalidLocationError` (where the union has it), anything else → `PythonError`.
macro_rules! error_union {
    ($union:ident) => {
        impl From<DeployError> for $union {
            fn from(e: DeployError) -> Self {
                match e {
                    DeployError::Unauthorized(message) => {
                        $union::UnauthorizedError(UnauthorizedError { message })
                    }
                    e => $union::PythonError(PythonError::new(e.to_string())),
                }
            }
        }
    };
    ($union:ident, invalid) => {
        impl From<DeployError> for $union {
            fn from(e: DeployError) -> Self {
                match e {
                    DeployError::Unauthorized(message) => {
                        $union::UnauthorizedError(UnauthorizedError { message })
                    }
                    DeployError::InvalidLocation(errors) => {
                        $union::InvalidLocationError(InvalidLocationError { errors })
                    }
                    e => $union::PythonError(PythonError::new(e.to_string())),
                }
            }
        }
    };
}

// ---- locations --------------------------------------------------------------------------

/// A registered location (Dagster+ `WorkspaceEntry`).
pub struct WorkspaceEntry {
    pub name: String,
    pub document: serde_json::Value,
    pub revision_id: i64,
    pub updated_at_ms: i64,
}

impl From<StoredLocation> for WorkspaceEntry {
    fn from(l: StoredLocation) -> Self {
        WorkspaceEntry {
            name: l.name,
            document: l.document,
            revision_id: l.revision_id,
            updated_at_ms: l.updated_at_ms,
        }
    }
}

impl WorkspaceEntry {
    /// The entry a registration produced (revisions of registrations carry their document).
    pub fn from_revision(r: Revision) -> Self {
        WorkspaceEntry {
            name: r.location,
            document: r.document.unwrap_or(serde_json::Value::Null),
            revision_id: r.id,
            updated_at_ms: r.created_at_ms,
        }
    }
}

#[Object]
impl WorkspaceEntry {
    async fn location_name(&self) -> &str {
        &self.name
    }

    /// The document as Dagster's serialized `CodeLocationDeployData`.
    async fn serialized_deployment_metadata(&self) -> String {
        document::serialized_deployment_metadata(&self.document)
    }

    /// The location document as registered.
    async fn document(&self) -> GenericScalar {
        GenericScalar(self.document.clone())
    }

    async fn revision_id(&self) -> i64 {
        self.revision_id
    }

    /// Seconds since the epoch.
    async fn metadata_timestamp(&self) -> f64 {
        self.updated_at_ms as f64 / 1000.0
    }
}

#[derive(SimpleObject)]
pub struct DeployLocationsSuccess {
    pub locations: Vec<WorkspaceEntry>,
}

#[derive(SimpleObject)]
pub struct ReconcileLocationsSuccess {
    pub locations: Vec<WorkspaceEntry>,
}

#[derive(SimpleObject)]
pub struct DeleteLocationSuccess {
    pub location_name: String,
}

#[derive(SimpleObject)]
pub struct LocationsAsDocument {
    pub document: GenericScalar,
}

#[derive(Union)]
pub enum AddOrUpdateLocationResult {
    WorkspaceEntry(WorkspaceEntry),
    PythonError(PythonError),
    InvalidLocationError(InvalidLocationError),
    UnauthorizedError(UnauthorizedError),
}
error_union!(AddOrUpdateLocationResult, invalid);

#[derive(Union)]
pub enum DeployLocationsResult {
    DeployLocationsSuccess(DeployLocationsSuccess),
    PythonError(PythonError),
    InvalidLocationError(InvalidLocationError),
    UnauthorizedError(UnauthorizedError),
}
error_union!(DeployLocationsResult, invalid);

#[derive(Union)]
pub enum ReconcileLocationsResult {
    ReconcileLocationsSuccess(ReconcileLocationsSuccess),
    PythonError(PythonError),
    InvalidLocationError(InvalidLocationError),
    UnauthorizedError(UnauthorizedError),
}
error_union!(ReconcileLocationsResult, invalid);

#[derive(Union)]
pub enum DeleteLocationResult {
    DeleteLocationSuccess(DeleteLocationSuccess),
    PythonError(PythonError),
    UnauthorizedError(UnauthorizedError),
}
error_union!(DeleteLocationResult);

// ---- load status ------------------------------------------------------------------------

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "RepositoryLocationLoadStatus")]
pub enum LoadStatusValue {
    #[graphql(name = "LOADING")]
    Loading,
    #[graphql(name = "LOADED")]
    Loaded,
}

#[derive(SimpleObject)]
pub struct RepositoryLocation {
    pub id: String,
    pub name: String,
}

#[derive(Union)]
pub enum RepositoryLocationOrLoadError {
    RepositoryLocation(RepositoryLocation),
    PythonError(PythonError),
}

#[derive(SimpleObject)]
pub struct WorkspaceLocationEntry {
    pub id: String,
    pub name: String,
    pub load_status: LoadStatusValue,
    /// Null while loading.
    pub location_or_load_error: Option<RepositoryLocationOrLoadError>,
    pub updated_timestamp: f64,
}

/// The locations of one deployment (Dagster+ `Workspace`), for both `workspace` and
/// `workspaceOrError`.
pub struct Workspace {
    pub deployment: String,
    pub locations: Vec<StoredLocation>,
    pub status: StatusSource,
}

#[Object]
impl Workspace {
    async fn workspace_entries(&self) -> Vec<WorkspaceEntry> {
        self.locations.iter().cloned().map(Into::into).collect()
    }

    async fn location_entries(&self) -> Vec<WorkspaceLocationEntry> {
        self.locations
            .iter()
            .map(|l| {
                let (load_status, location_or_load_error) =
                    match self.status.status(&self.deployment, l) {
                        LoadStatus::Loading => (LoadStatusValue::Loading, None),
                        LoadStatus::Loaded => (
                            LoadStatusValue::Loaded,
                            Some(RepositoryLocationOrLoadError::RepositoryLocation(
                                RepositoryLocation {
                                    id: l.name.clone(),
                                    name: l.name.clone(),
                                },
                            )),
                        ),
                        LoadStatus::Failed(trace) => (
                            LoadStatusValue::Loaded,
                            Some(RepositoryLocationOrLoadError::PythonError(trace.into())),
                        ),
                    };
                WorkspaceLocationEntry {
                    id: l.name.clone(),
                    name: l.name.clone(),
                    load_status,
                    location_or_load_error,
                    updated_timestamp: l.updated_at_ms as f64 / 1000.0,
                }
            })
            .collect()
    }
}

#[derive(Union)]
pub enum WorkspaceOrError {
    Workspace(Workspace),
    PythonError(PythonError),
    UnauthorizedError(UnauthorizedError),
}
error_union!(WorkspaceOrError);

// ---- agents -----------------------------------------------------------------------------

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum AgentStatus {
    NotRunning,
    Running,
    Unhealthy,
    Unknown,
}

#[derive(SimpleObject)]
pub struct TimestampedError {
    pub timestamp: Option<f64>,
    pub error: PythonError,
}

#[derive(SimpleObject)]
pub struct Agent {
    pub id: String,
    pub agent_label: String,
    pub status: AgentStatus,
    pub last_heartbeat_time: f64,
    pub errors: Vec<TimestampedError>,
}

// ---- deployments ------------------------------------------------------------------------

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "DagsterCloudDeploymentType",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum DeploymentTypeValue {
    Production,
    Dev,
    Branch,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "DagsterPlusDeploymentAgentType",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum AgentType {
    Serverless,
    Hybrid,
}

#[derive(SimpleObject)]
pub struct DeploymentCommit {
    pub commit_hash: String,
    pub timestamp: f64,
    pub commit_message: Option<String>,
    pub commit_url: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub author_avatar_url: Option<String>,
}

/// The pull request and commit facts of a branch deployment.
#[derive(SimpleObject)]
pub struct BranchDeploymentInfo {
    pub repo_name: String,
    pub branch_name: String,
    pub branch_url: Option<String>,
    pub pull_request_url: Option<String>,
    pub pull_request_status: Option<String>,
    pub pull_request_number: Option<String>,
    pub base_deployment_name: Option<String>,
    pub commit: DeploymentCommit,
}

#[derive(SimpleObject)]
pub struct DagsterCloudDeployment {
    pub deployment_id: i64,
    pub deployment_name: String,
    pub deployment_type: DeploymentTypeValue,
    pub agent_type: AgentType,
    pub is_branch_deployment: bool,
    pub branch_deployment: Option<Box<BranchDeploymentInfo>>,
}

impl From<DeploymentRecord> for DagsterCloudDeployment {
    fn from(d: DeploymentRecord) -> Self {
        DagsterCloudDeployment {
            deployment_id: d.id,
            deployment_name: d.name,
            deployment_type: match d.kind {
                DeploymentKind::Production => DeploymentTypeValue::Production,
                DeploymentKind::Branch => DeploymentTypeValue::Branch,
            },
            agent_type: AgentType::Hybrid,
            is_branch_deployment: d.kind == DeploymentKind::Branch,
            branch_deployment: d.branch.map(|b| {
                Box::new(BranchDeploymentInfo {
                    repo_name: b.repo_name,
                    branch_name: b.branch_name,
                    branch_url: b.branch_url,
                    pull_request_url: b.pull_request_url,
                    pull_request_status: b.pull_request_status,
                    pull_request_number: b.pull_request_number,
                    base_deployment_name: b.base_deployment_name,
                    commit: DeploymentCommit {
                        commit_hash: b.commit.commit_hash,
                        timestamp: b.commit.timestamp,
                        commit_message: b.commit.commit_message,
                        commit_url: b.commit.commit_url,
                        author_name: b.commit.author_name,
                        author_email: b.commit.author_email,
                        author_avatar_url: b.commit.author_avatar_url,
                    },
                })
            }),
        }
    }
}

#[derive(Union)]
pub enum DagsterCloudDeploymentOrError {
    DagsterCloudDeployment(DagsterCloudDeployment),
    DeploymentNotFoundError(DeploymentNotFoundError),
    PythonError(PythonError),
    UnauthorizedError(UnauthorizedError),
}

impl From<DeployError> for DagsterCloudDeploymentOrError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Unauthorized(message) => {
                DagsterCloudDeploymentOrError::UnauthorizedError(UnauthorizedError { message })
            }
            e @ (DeployError::UnknownDeployment { .. } | DeployError::UnknownDeploymentId(_)) => {
                DagsterCloudDeploymentOrError::DeploymentNotFoundError(DeploymentNotFoundError {
                    message: e.to_string(),
                })
            }
            e => DagsterCloudDeploymentOrError::PythonError(PythonError::new(e.to_string())),
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum SnapshotBaseDeploymentCondition {
    OnCreate,
    OnUpdate,
}

#[derive(InputObject)]
pub struct CreateOrUpdateBranchDeploymentInput {
    pub repo_name: String,
    pub branch_name: String,
    pub branch_url: Option<String>,
    pub pull_request_url: Option<String>,
    pub pull_request_status: Option<String>,
    pub pull_request_number: Option<String>,
}

#[derive(InputObject)]
pub struct DeploymentCommitInput {
    pub commit_hash: String,
    pub timestamp: f64,
    pub commit_message: Option<String>,
    pub commit_url: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub author_avatar_url: Option<String>,
}

impl CreateOrUpdateBranchDeploymentInput {
    pub fn into_branch(
        self,
        commit: DeploymentCommitInput,
        base_deployment_name: Option<String>,
        snapshot: Option<SnapshotBaseDeploymentCondition>,
    ) -> BranchDeployment {
        BranchDeployment {
            repo_name: self.repo_name,
            branch_name: self.branch_name,
            branch_url: self.branch_url,
            pull_request_url: self.pull_request_url,
            pull_request_status: self.pull_request_status,
            pull_request_number: self.pull_request_number,
            base_deployment_name,
            snapshot_base_condition: snapshot.map(|s| {
                match s {
                    SnapshotBaseDeploymentCondition::OnCreate => "ON_CREATE",
                    SnapshotBaseDeploymentCondition::OnUpdate => "ON_UPDATE",
                }
                .to_string()
            }),
            commit: CommitInfo {
                commit_hash: commit.commit_hash,
                timestamp: commit.timestamp,
                commit_message: commit.commit_message,
                commit_url: commit.commit_url,
                author_name: commit.author_name,
                author_email: commit.author_email,
                author_avatar_url: commit.author_avatar_url,
            },
        }
    }
}

// ---- settings ---------------------------------------------------------------------------

#[derive(SimpleObject)]
pub struct DeploymentSettings {
    pub settings: GenericScalar,
}

#[derive(SimpleObject)]
pub struct OrganizationSettings {
    pub settings: GenericScalar,
}

#[derive(InputObject)]
pub struct DeploymentSettingsInput {
    pub settings: GenericScalar,
}

#[derive(InputObject)]
pub struct OrganizationSettingsInput {
    pub settings: GenericScalar,
}

#[derive(Union)]
pub enum DeploymentSettingsResult {
    DeploymentSettings(DeploymentSettings),
    PythonError(PythonError),
    UnauthorizedError(UnauthorizedError),
}
error_union!(DeploymentSettingsResult);

#[derive(Union)]
pub enum OrganizationSettingsResult {
    OrganizationSettings(OrganizationSettings),
    PythonError(PythonError),
    UnauthorizedError(UnauthorizedError),
}
error_union!(OrganizationSettingsResult);

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum CliEventType {
    Deploy,
    Upload,
    Build,
}

// ---- history (an extension of the protocol) ---------------------------------------------

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum RevisionKind {
    Registered,
    Deleted,
    RolledBack,
}

#[derive(SimpleObject)]
pub struct LocationRevision {
    pub id: i64,
    pub location_name: String,
    pub kind: RevisionKind,
    /// For a rollback: the revision whose document was registered again.
    pub rolled_back_from: Option<i64>,
    /// Null for a deletion.
    pub document: Option<GenericScalar>,
    /// The token label that made the change.
    pub actor: String,
    pub commit_hash: Option<String>,
    /// Seconds since the epoch.
    pub timestamp: f64,
}

impl From<Revision> for LocationRevision {
    fn from(r: Revision) -> Self {
        let (kind, rolled_back_from) = match r.action {
            RevisionAction::Registered => (RevisionKind::Registered, None),
            RevisionAction::Deleted => (RevisionKind::Deleted, None),
            RevisionAction::RolledBack { from_revision } => {
                (RevisionKind::RolledBack, Some(from_revision))
            }
        };
        LocationRevision {
            id: r.id,
            location_name: r.location,
            kind,
            rolled_back_from,
            document: r.document.map(GenericScalar),
            actor: r.actor,
            commit_hash: r.commit_hash,
            timestamp: r.created_at_ms as f64 / 1000.0,
        }
    }
}

#[derive(SimpleObject)]
pub struct LocationHistory {
    pub revisions: Vec<LocationRevision>,
}

#[derive(Union)]
pub enum LocationHistoryResult {
    LocationHistory(LocationHistory),
    PythonError(PythonError),
    UnauthorizedError(UnauthorizedError),
}
error_union!(LocationHistoryResult);

/// The method a pre-signed URL of `generateServerlessPexUrl` grants.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(name = "S3Method", rename_items = "UPPERCASE")]
pub enum PexUrlMethod {
    Put,
    Get,
}

/// One pre-signed URL (in the order of the requested file names).
#[derive(SimpleObject)]
#[graphql(name = "PresignedUrl")]
pub struct PresignedUrl {
    pub url: String,
}

/// Serverless registry facts. This server hosts no Serverless registry: Python-executable
/// deploys need none, and `registryIsHarbor: false` tells the reference client to deploy a
/// Python executable rather than bake an image.
#[derive(SimpleObject)]
#[graphql(name = "ServerlessInfo")]
pub struct ServerlessInfo {
    pub aws_region: Option<String>,
    pub aws_auth_token: Option<String>,
    pub registry_allow_custom_base: bool,
    pub registry_is_harbor: bool,
    pub registry_url: Option<String>,
}
