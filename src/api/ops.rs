//! The protocol's operations (docs/protocol.md), each as a typed function over [`Client`]. Result
//! unions become `ApiError`s with the server's message (`PythonError`,
//! `InvalidLocationError`, `UnauthorizedError`).

use serde::Serialize;
use serde_json::{Value, json};

use super::client::{Client, Operation, OperationKind};
use super::error::{ApiError, ChainLink, LoadFailure};

const fn query(field: &'static str, query: &'static str) -> Operation {
    Operation {
        field,
        kind: OperationKind::Query,
        query,
    }
}

const fn mutation(field: &'static str, query: &'static str) -> Operation {
    Operation {
        field,
        kind: OperationKind::Mutation,
        query,
    }
}

pub const ADD_OR_UPDATE_LOCATION: Operation = mutation(
    "addOrUpdateLocationFromDocument",
    "mutation CliAddOrUpdateLocation($document: GenericScalar!) {
  addOrUpdateLocationFromDocument(document: $document) {
    __typename
    ... on WorkspaceEntry { locationName }
    ... on PythonError { message stack }
    ... on InvalidLocationError { errors }
    ... on UnauthorizedError { message }
  }
}",
);

/// `generateServerlessPexUrl` is a mutation on the wire but changes nothing: like the
/// reference (`idempotent_mutation`), it may be sent again after a timeout, hence `query`.
pub const GENERATE_PEX_PUT_URLS: Operation = query(
    "generateServerlessPexUrl",
    "mutation GenerateServerlessPexUrlMutation($filenames: [String!]!) {
    generateServerlessPexUrl(filenames: $filenames, method:PUT) {
        url
    }
}",
);

pub const GENERATE_PEX_GET_URLS: Operation = query(
    "generateServerlessPexUrl",
    "mutation GenerateServerlessPexUrlMutation($filenames: [String!]!) {
    generateServerlessPexUrl(filenames: $filenames, method:GET) {
        url
    }
}",
);

pub const DEPLOY_LOCATIONS: Operation = mutation(
    "deployLocations",
    "mutation CliDeployLocations($document: GenericScalar!) {
  deployLocations(document: $document) {
    __typename
    ... on DeployLocationsSuccess { locations { locationName } }
    ... on PythonError { message stack }
    ... on InvalidLocationError { errors }
    ... on UnauthorizedError { message }
  }
}",
);

pub const RECONCILE_LOCATIONS: Operation = mutation(
    "reconcileLocationsFromDocument",
    "mutation CliReconcileLocationsFromDoc($document: GenericScalar!) {
  reconcileLocationsFromDocument(document: $document) {
    __typename
    ... on ReconcileLocationsSuccess { locations { locationName } }
    ... on PythonError { message stack }
    ... on InvalidLocationError { errors }
    ... on UnauthorizedError { message }
  }
}",
);

pub const DELETE_LOCATION: Operation = mutation(
    "deleteLocation",
    "mutation CliDeleteLocation($locationName: String!) {
  deleteLocation(locationName: $locationName) {
    __typename
    ... on DeleteLocationSuccess { locationName }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
  }
}",
);

pub const LOCATIONS_AS_DOCUMENT: Operation = query(
    "locationsAsDocument",
    "query CliLocationsAsDocument {
  locationsAsDocument { __typename document }
}",
);

pub const WORKSPACE_ENTRIES: Operation = query(
    "workspace",
    "query CliWorkspaceEntries {
  workspace { workspaceEntries { locationName serializedDeploymentMetadata } }
}",
);

pub const WORKSPACE_OR_ERROR: Operation = query(
    "workspaceOrError",
    "query CliLocationsQuery {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        __typename
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name }
          ... on PythonError {
            message
            stack
            errorChain { isExplicitLink error { message stack } }
          }
        }
      }
    }
    ... on PythonError { message stack }
  }
}",
);

pub const AGENTS: Operation = query(
    "agents",
    "query CliAgentStatus {
  agents { status errors { error { message } } }
}",
);

pub const CURRENT_DEPLOYMENT: Operation = query(
    "currentDeployment",
    "query DeploymentInfoQuery {
  currentDeployment { agentType }
}",
);

pub const CREATE_OR_UPDATE_BRANCH_DEPLOYMENT: Operation = mutation(
    "createOrUpdateBranchDeployment",
    "mutation CliCreateOrUpdateBranchDeployment(
  $branchData: CreateOrUpdateBranchDeploymentInput!
  $commit: DeploymentCommitInput!
  $baseDeploymentName: String
  $snapshotBaseCondition: SnapshotBaseDeploymentCondition
) {
  createOrUpdateBranchDeployment(
    branchData: $branchData
    commit: $commit
    baseDeploymentName: $baseDeploymentName
    snapshotBaseCondition: $snapshotBaseCondition
  ) {
    __typename
    ... on DagsterCloudDeployment { deploymentId deploymentName }
    ... on PythonError { message }
  }
}",
);

pub const GET_BRANCH_DEPLOYMENT_NAME: Operation = query(
    "getBranchDeploymentName",
    "query CliGetBranchDeploymentName($repoName: String!, $branchName: String!) {
  getBranchDeploymentName(repoName: $repoName, branchName: $branchName)
}",
);

pub const ORGANIZATION_SETTINGS: Operation = query(
    "organizationSettings",
    "query CliOrganizationSettings {
  organizationSettings { settings }
}",
);

pub const DEPLOYMENT_BY_NAME: Operation = query(
    "deploymentByName",
    "query DeploymentByNameQuery($deploymentName: String!) {
  deploymentByName(name: $deploymentName) {
    __typename
    ... on DagsterCloudDeployment { deploymentName deploymentId deploymentType }
  }
}",
);

pub const DELETE_DEPLOYMENT: Operation = mutation(
    "deleteDeployment",
    "mutation CliDeleteDeployment($deploymentId: Int!) {
  deleteDeployment(deploymentId: $deploymentId) {
    __typename
    ... on DagsterCloudDeployment { deploymentId }
    ... on PythonError { message stack }
  }
}",
);

/// A dagster-deploy extension (`serve` only).
pub const LOCATION_HISTORY: Operation = query(
    "locationHistory",
    "query DeployLocationHistory($locationName: String!, $limit: Int!, $before: Int) {
  locationHistory(locationName: $locationName, limit: $limit, before: $before) {
    __typename
    ... on LocationHistory {
      revisions { id locationName kind rolledBackFrom document actor commitHash timestamp }
    }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
  }
}",
);

/// A dagster-deploy extension (`serve` only).
pub const ROLLBACK_LOCATION: Operation = mutation(
    "rollbackLocation",
    "mutation DeployRollbackLocation($locationName: String!, $revisionId: Int) {
  rollbackLocation(locationName: $locationName, revisionId: $revisionId) {
    __typename
    ... on WorkspaceEntry { locationName revisionId document }
    ... on PythonError { message stack }
    ... on InvalidLocationError { errors }
    ... on UnauthorizedError { message }
  }
}",
);

/// `data.{field}` of an answer, checked to be present.
fn field<'a>(data: &'a Value, op: &Operation) -> Result<&'a Value, ApiError> {
    match data.get(op.field) {
        Some(v) if !v.is_null() => Ok(v),
        _ => Err(unexpected(op, "the answer has no such field")),
    }
}

fn unexpected(op: &Operation, detail: impl Into<String>) -> ApiError {
    ApiError::Unexpected {
        operation: op.field.into(),
        detail: detail.into(),
    }
}

/// Turns a result union into `Ok(value)` when its `__typename` is `success`.
fn union<'a>(value: &'a Value, op: &Operation, success: &str) -> Result<&'a Value, ApiError> {
    let typename = value["__typename"].as_str().unwrap_or("");
    let message = || value["message"].as_str().unwrap_or("").to_string();
    match typename {
        t if t == success => Ok(value),
        "InvalidLocationError" => Err(ApiError::InvalidLocation {
            errors: strings(&value["errors"]),
        }),
        "UnauthorizedError" => Err(ApiError::Unauthorized { message: message() }),
        "DeploymentNotFoundError" => Err(ApiError::UnknownDeployment {
            operation: op.field.into(),
            message: message(),
        }),
        "PythonError" => Err(ApiError::Python {
            operation: op.field.into(),
            message: message(),
            stack: strings(&value["stack"]).join(""),
        }),
        other => Err(unexpected(
            op,
            format!("expected {success}, got {other:?}: {}", message()),
        )),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn location_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["locations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["locationName"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `addOrUpdateLocationFromDocument`; returns the location name.
pub async fn add_or_update_location(client: &Client, document: &Value) -> Result<String, ApiError> {
    let op = &ADD_OR_UPDATE_LOCATION;
    let data = client.execute(op, json!({ "document": document })).await?;
    let v = union(field(&data, op)?, op, "WorkspaceEntry")?;
    Ok(v["locationName"].as_str().unwrap_or_default().to_string())
}

/// `deployLocations` with `{"locations": documents}` (all at once); returns the sorted names.
pub async fn deploy_locations(
    client: &Client,
    documents: &[Value],
) -> Result<Vec<String>, ApiError> {
    let op = &DEPLOY_LOCATIONS;
    let variables = json!({ "document": { "locations": documents } });
    let data = client.execute(op, variables).await?;
    Ok(location_names(union(
        field(&data, op)?,
        op,
        "DeployLocationsSuccess",
    )?))
}

/// `reconcileLocationsFromDocument`; returns the sorted names kept.
pub async fn reconcile_locations(
    client: &Client,
    document: &Value,
) -> Result<Vec<String>, ApiError> {
    let op = &RECONCILE_LOCATIONS;
    let data = client.execute(op, json!({ "document": document })).await?;
    Ok(location_names(union(
        field(&data, op)?,
        op,
        "ReconcileLocationsSuccess",
    )?))
}

pub async fn delete_location(client: &Client, name: &str) -> Result<(), ApiError> {
    let op = &DELETE_LOCATION;
    let data = client.execute(op, json!({ "locationName": name })).await?;
    union(field(&data, op)?, op, "DeleteLocationSuccess").map(|_| ())
}

/// `locationsAsDocument`: `{"locations": [...]}`.
pub async fn locations_as_document(client: &Client) -> Result<Value, ApiError> {
    let op = &LOCATIONS_AS_DOCUMENT;
    let data = client.execute(op, json!({})).await?;
    let doc = field(&data, op)?["document"].clone();
    Ok(if doc.is_null() {
        json!({ "locations": [] })
    } else {
        doc
    })
}

/// The current document of every location of the deployment, by name.
pub async fn current_documents(
    client: &Client,
) -> Result<std::collections::BTreeMap<String, Value>, ApiError> {
    let doc = locations_as_document(client).await?;
    Ok(doc["locations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l["location_name"].as_str()?.to_string(), l.clone())))
        .collect())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkspaceEntry {
    pub location_name: String,
    /// `serializedDeploymentMetadata`, decoded (Dagster's serdes JSON).
    pub metadata: Value,
}

pub async fn workspace_entries(client: &Client) -> Result<Vec<WorkspaceEntry>, ApiError> {
    let op = &WORKSPACE_ENTRIES;
    let data = client.execute(op, json!({})).await?;
    let entries = field(&data, op)?["workspaceEntries"]
        .as_array()
        .ok_or_else(|| unexpected(op, "no workspaceEntries list"))?;
    Ok(entries
        .iter()
        .map(|e| WorkspaceEntry {
            location_name: e["locationName"].as_str().unwrap_or_default().to_string(),
            metadata: e["serializedDeploymentMetadata"]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null),
        })
        .collect())
}

/// One location's load state as the agent reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationEntry {
    pub name: String,
    pub load_status: String,
    /// Set when it loaded with an error.
    pub error: Option<LoadFailure>,
}

pub async fn workspace_or_error(client: &Client) -> Result<Vec<LocationEntry>, ApiError> {
    let op = &WORKSPACE_OR_ERROR;
    let data = client.execute(op, json!({})).await?;
    let ws = union(field(&data, op)?, op, "Workspace")?;
    let entries = ws["locationEntries"]
        .as_array()
        .ok_or_else(|| unexpected(op, "no locationEntries list"))?;
    Ok(entries
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap_or_default().to_string();
            let err = &e["locationOrLoadError"];
            let error = (err["__typename"] == "PythonError").then(|| LoadFailure {
                location: name.clone(),
                message: err["message"].as_str().unwrap_or_default().to_string(),
                stack: strings(&err["stack"]).join(""),
                chain: err["errorChain"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| ChainLink {
                        explicit: l["isExplicitLink"].as_bool().unwrap_or(false),
                        message: l["error"]["message"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        stack: strings(&l["error"]["stack"]).join(""),
                    })
                    .collect(),
            });
            LocationEntry {
                name,
                load_status: e["loadStatus"].as_str().unwrap_or_default().to_string(),
                error,
            }
        })
        .collect())
}

/// Whether any agent reports `RUNNING`.
pub async fn agent_running(client: &Client) -> Result<bool, ApiError> {
    let op = &AGENTS;
    let data = client.execute(op, json!({})).await?;
    let agents = field(&data, op)?
        .as_array()
        .ok_or_else(|| unexpected(op, "agents is not a list"))?;
    Ok(agents.iter().any(|a| a["status"] == "RUNNING"))
}

/// `SERVERLESS` or `HYBRID`.
pub async fn agent_type(client: &Client) -> Result<String, ApiError> {
    let op = &CURRENT_DEPLOYMENT;
    let data = client.execute(op, json!({})).await?;
    Ok(field(&data, op)?["agentType"]
        .as_str()
        .unwrap_or("HYBRID")
        .to_string())
}

/// What `createOrUpdateBranchDeployment` sends (field names as on the wire).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchData {
    pub repo_name: String,
    pub branch_name: String,
    pub branch_url: Option<String>,
    pub pull_request_url: Option<String>,
    pub pull_request_status: Option<String>,
    /// Sent as a string.
    pub pull_request_number: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitData {
    pub commit_hash: String,
    /// Seconds since the epoch, sent as a float.
    pub timestamp: f64,
    pub commit_message: Option<String>,
    pub commit_url: Option<String>,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub author_avatar_url: Option<String>,
}

/// Organisation-scoped: creates or updates the branch deployment; returns its name.
pub async fn create_or_update_branch_deployment(
    client: &Client,
    branch: &BranchData,
    commit: &CommitData,
    base_deployment_name: Option<&str>,
    snapshot_base_condition: Option<&str>,
) -> Result<String, ApiError> {
    let op = &CREATE_OR_UPDATE_BRANCH_DEPLOYMENT;
    let variables = json!({
        "branchData": branch,
        "commit": commit,
        "baseDeploymentName": base_deployment_name,
        "snapshotBaseCondition": snapshot_base_condition,
    });
    let data = client.execute(op, variables).await?;
    let v = union(field(&data, op)?, op, "DagsterCloudDeployment")?;
    v["deploymentName"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| unexpected(op, "no deploymentName"))
}

/// Organisation-scoped: the branch deployment of a repository's branch, `None` when it has
/// none.
pub async fn branch_deployment_name(
    client: &Client,
    repo_name: &str,
    branch_name: &str,
) -> Result<Option<String>, ApiError> {
    let op = &GET_BRANCH_DEPLOYMENT_NAME;
    let variables = json!({ "repoName": repo_name, "branchName": branch_name });
    let data = client.execute(op, variables).await?;
    Ok(data[op.field].as_str().map(str::to_string))
}

/// Organisation-scoped: the organisation's settings (a connectivity and token check).
pub async fn organization_settings(client: &Client) -> Result<Value, ApiError> {
    let op = &ORGANIZATION_SETTINGS;
    let data = client.execute(op, json!({})).await?;
    Ok(field(&data, op)?["settings"].clone())
}

/// Organisation-scoped: deletes a branch deployment by name (refusing full deployments, as the
/// reference does); returns its id.
pub async fn delete_branch_deployment(client: &Client, name: &str) -> Result<i64, ApiError> {
    let op = &DEPLOYMENT_BY_NAME;
    let data = client
        .execute(op, json!({ "deploymentName": name }))
        .await?;
    let d = field(&data, op)?;
    if d["__typename"] != "DagsterCloudDeployment" {
        return Err(ApiError::InvalidInput {
            message: format!("unable to find deployment {name}"),
            hint: "check the deployment name (branch deployments are named after the branch)"
                .into(),
        });
    }
    if d["deploymentType"] != "BRANCH" {
        return Err(ApiError::InvalidInput {
            message: format!("deployment {name} is not a branch deployment"),
            hint: "only branch deployments can be deleted with this command".into(),
        });
    }
    let id = d["deploymentId"]
        .as_i64()
        .ok_or_else(|| unexpected(op, "no deploymentId"))?;
    let op = &DELETE_DEPLOYMENT;
    let data = client.execute(op, json!({ "deploymentId": id })).await?;
    union(field(&data, op)?, op, "DagsterCloudDeployment")?;
    Ok(id)
}

/// One revision of a location (our server's `locationHistory`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub id: i64,
    /// `REGISTERED`, `DELETED` or `ROLLED_BACK`.
    pub kind: String,
    pub rolled_back_from: Option<i64>,
    pub document: Option<Value>,
    pub actor: String,
    pub commit_hash: Option<String>,
    /// Seconds since the epoch.
    pub timestamp: f64,
}

/// The newest `limit` revisions of a location with an id below `before`, oldest first.
pub async fn location_history(
    client: &Client,
    location: &str,
    limit: usize,
    before: Option<i64>,
) -> Result<Vec<HistoryEntry>, ApiError> {
    let op = &LOCATION_HISTORY;
    let variables = json!({ "locationName": location, "limit": limit, "before": before });
    let data = client.execute(op, variables).await?;
    let v = union(field(&data, op)?, op, "LocationHistory")?;
    Ok(v["revisions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| HistoryEntry {
            id: r["id"].as_i64().unwrap_or_default(),
            kind: r["kind"].as_str().unwrap_or_default().to_string(),
            rolled_back_from: r["rolledBackFrom"].as_i64(),
            document: Some(r["document"].clone()).filter(|d| !d.is_null()),
            actor: r["actor"].as_str().unwrap_or_default().to_string(),
            commit_hash: r["commitHash"].as_str().map(str::to_string),
            timestamp: r["timestamp"].as_f64().unwrap_or_default(),
        })
        .collect())
}

/// Registers an earlier document again; returns the new revision id and its document.
pub async fn rollback_location(
    client: &Client,
    location: &str,
    revision: Option<i64>,
) -> Result<(i64, Value), ApiError> {
    let op = &ROLLBACK_LOCATION;
    let variables = json!({ "locationName": location, "revisionId": revision });
    let data = client.execute(op, variables).await?;
    let v = union(field(&data, op)?, op, "WorkspaceEntry")?;
    Ok((
        v["revisionId"].as_i64().unwrap_or_default(),
        v["document"].clone(),
    ))
}
