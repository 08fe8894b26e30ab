//! Persistence behind one trait, so a PostgreSQL store can follow the SQLite one. Every method
//! that changes several rows does so in one transaction: a failure changes nothing.

mod sqlite;

pub use sqlite::SqliteStore;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::error::StoreError;
use super::tokens::{Actor, TokenInfo, TokenScope};

/// A full deployment (like `prod`) or a branch deployment (one per pull request branch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentKind {
    Production,
    Branch,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRecord {
    pub id: i64,
    pub name: String,
    pub kind: DeploymentKind,
    /// `deploymentSettings` as last set (a JSON mapping).
    pub settings: Value,
    pub created_at_ms: i64,
    /// For branch deployments: repository, branch, pull request and latest commit facts.
    pub branch: Option<BranchDeployment>,
}

/// What `createOrUpdateBranchDeployment` sends, kept with the branch deployment.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct BranchDeployment {
    pub repo_name: String,
    pub branch_name: String,
    pub branch_url: Option<String>,
    pub pull_request_url: Option<String>,
    pub pull_request_status: Option<String>,
    pub pull_request_number: Option<String>,
    pub base_deployment_name: Option<String>,
    pub snapshot_base_condition: Option<String>,
    pub commit: CommitInfo,
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct CommitInfo {
    pub commit_hash: String,
    /// Seconds since the epoch, as the client sends it.
    pub timestamp: f64,
    pub commit_message: Option<String>,
    pub commit_url: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub author_avatar_url: Option<String>,
}

/// A location as it is now: its current document and the revision that set it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLocation {
    pub name: String,
    pub document: Value,
    pub revision_id: i64,
    pub updated_at_ms: i64,
    /// Why the stored document cannot be read (then `document` holds only `location_name`);
    /// the location reports it as its load error.
    pub damaged: Option<String>,
}

/// What a revision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionAction {
    /// A document was registered (added or updated).
    Registered,
    /// The location was deleted (the revision has no document).
    Deleted,
    /// An earlier revision's document was registered again.
    RolledBack { from_revision: i64 },
}

/// One entry of a location's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub id: i64,
    pub deployment: String,
    pub location: String,
    /// `None` for a deletion.
    pub document: Option<Value>,
    pub action: RevisionAction,
    /// The token label (or `local`) that made the change.
    pub actor: String,
    pub token_id: Option<i64>,
    /// `git.commit_hash` of the document, if it had one.
    pub commit_hash: Option<String>,
    pub created_at_ms: i64,
    /// Why the stored document cannot be read (then `document` is `None`; never rolled back to).
    pub damaged: Option<String>,
}

impl Revision {
    pub fn created_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.created_at_ms).unwrap_or(0))
    }
}

/// One change inside `Store::apply_locations`.
#[derive(Debug, Clone, PartialEq)]
pub enum LocationChange {
    Put {
        name: String,
        document: Value,
        action: RevisionAction,
    },
    Delete {
        name: String,
    },
}

/// How `apply_locations` treats locations the change list does not mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Leave them alone.
    Merge,
    /// Delete them (`reconcileLocationsFromDocument`).
    ReplaceAll,
}

/// Why `apply_locations` changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// An entry named a location that does not exist.
    MissingLocation(String),
    /// The deployment's current documents would total `bytes`, above `MAX_DEPLOYMENT_BYTES`.
    TooLarge { bytes: i64 },
}

/// Most bytes of current location documents in one deployment: every whole-deployment answer
/// (`locationsAsDocument`, `workspace`) then fits the answer limit.
pub const MAX_DEPLOYMENT_BYTES: i64 = 12 * 1024 * 1024;
/// Most bytes of documents in one page of history (`HistoryPage` with a limit); a page holds
/// at least one revision, and the client asks for the next with `before`.
pub const MAX_HISTORY_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Which revisions of a location to read: the newest `limit` (all when `None`) with an id
/// below `before` (any when `None`). A long-lived location has thousands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryPage {
    pub before: Option<i64>,
    pub limit: Option<usize>,
}

impl HistoryPage {
    pub const ALL: HistoryPage = HistoryPage {
        before: None,
        limit: None,
    };
}

pub trait Store: Send + Sync + 'static {
    fn deployment(&self, name: &str) -> Result<Option<DeploymentRecord>, StoreError>;
    fn deployment_by_id(&self, id: i64) -> Result<Option<DeploymentRecord>, StoreError>;
    fn deployments(&self) -> Result<Vec<DeploymentRecord>, StoreError>;
    /// Creates a full deployment; `Ok(None)` if the name is taken.
    fn create_deployment(&self, name: &str) -> Result<Option<DeploymentRecord>, StoreError>;
    /// Deletes a deployment with its locations and history and revokes tokens scoped to it.
    fn delete_deployment(&self, id: i64) -> Result<Option<DeploymentRecord>, StoreError>;
    /// Updates the branch deployment of `(repo, branch)`, or creates it under the first free
    /// name of `candidate_names`.
    fn upsert_branch_deployment(
        &self,
        branch: &BranchDeployment,
        candidate_names: &[String],
    ) -> Result<DeploymentRecord, StoreError>;
    fn branch_deployment_name(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<String>, StoreError>;
    fn set_deployment_settings(&self, id: i64, settings: &Value) -> Result<(), StoreError>;
    fn organization_settings(&self) -> Result<Value, StoreError>;
    fn set_organization_settings(&self, settings: &Value) -> Result<(), StoreError>;

    /// Current locations in registration order.
    fn locations(&self, deployment_id: i64) -> Result<Vec<StoredLocation>, StoreError>;
    /// Applies all changes in one transaction and returns one revision per change (plus one per
    /// location deleted by `ApplyMode::ReplaceAll`). Nothing is written if any entry fails.
    fn apply_locations(
        &self,
        deployment_id: i64,
        changes: &[LocationChange],
        mode: ApplyMode,
        actor: &Actor,
    ) -> Result<Result<Vec<Revision>, ApplyError>, StoreError>;
    /// The revisions of a location `page` selects, oldest first.
    fn history(
        &self,
        deployment_id: i64,
        location: &str,
        page: HistoryPage,
    ) -> Result<Vec<Revision>, StoreError>;

    fn insert_token(
        &self,
        hash: &[u8; 32],
        scope: &TokenScope,
        label: Option<&str>,
    ) -> Result<TokenInfo, StoreError>;
    /// The token with this hash, revoked or not.
    fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenInfo>, StoreError>;
    fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;
    /// Records that the token was used at `at_ms`.
    fn touch_token(&self, id: i64, at_ms: i64) -> Result<(), StoreError>;
    /// `false` if there is no such (unrevoked) token.
    fn revoke_token(&self, id: i64) -> Result<bool, StoreError>;
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
