//! Mutation root fields. Each registration starts the image check of what it registered.

use async_graphql::{Context, Object};

use super::types::{
    AddOrUpdateLocationResult, CliEventType, CreateOrUpdateBranchDeploymentInput,
    DagsterCloudDeploymentOrError, DeleteLocationResult, DeleteLocationSuccess,
    DeployLocationsResult, DeployLocationsSuccess, DeploymentCommitInput, DeploymentSettings,
    DeploymentSettingsInput, DeploymentSettingsResult, OrganizationSettings,
    OrganizationSettingsInput, OrganizationSettingsResult, PexUrlMethod, PresignedUrl,
    ReconcileLocationsResult, ReconcileLocationsSuccess, SnapshotBaseDeploymentCondition,
    WorkspaceEntry,
};
use super::{
    GenericScalar, actor, blocking, field_error, require_organization, state, target_deployment,
};
use crate::server::blobs::check_name;
use crate::server::error::DeployError;
use crate::server::limits::MAX_PEX_FILENAMES;
use crate::server::presign::Method;
use crate::server::store::{Revision, RevisionAction};
use crate::server::{Actor, Deployments};

pub(crate) struct MutationRoot;

/// Tells the status source what was registered (image checks start, the agent wakes) and logs
/// the change (never the token).
fn registered(ctx: &Context<'_>, deployment: &str, revisions: &[Revision]) {
    let status = &state(ctx).status;
    status.changed();
    for r in revisions {
        match &r.document {
            Some(doc) => {
                status.registered(doc);
                tracing::info!(
                    deployment,
                    location = %r.location,
                    revision = r.id,
                    by = %r.actor,
                    "registered location"
                );
            }
            None => tracing::info!(
                deployment,
                location = %r.location,
                revision = r.id,
                by = %r.actor,
                "deleted location"
            ),
        }
    }
}

/// A change to the target deployment's locations, made off the async threads as the request's
/// actor; what it registered is then checked and logged.
async fn change_locations<F>(ctx: &Context<'_>, change: F) -> Result<Vec<Revision>, DeployError>
where
    F: FnOnce(&Deployments, &str, &Actor) -> Result<Vec<Revision>, DeployError> + Send + 'static,
{
    let deployment = target_deployment(ctx)?;
    let actor = actor(ctx);
    let dep = deployment.clone();
    let revs = blocking(ctx, move |d| change(d, &dep, &actor)).await?;
    registered(ctx, &deployment, &revs);
    Ok(revs)
}

/// The one revision a single-location change makes.
fn only(revs: Vec<Revision>) -> Result<Revision, DeployError> {
    revs.into_iter()
        .next()
        .ok_or_else(|| DeployError::Internal("the change made no revision".into()))
}

/// Registrations only (reconcile's deletions are not part of its answer).
fn entries(revisions: Vec<Revision>) -> Vec<WorkspaceEntry> {
    revisions
        .into_iter()
        .filter(|r| r.action != RevisionAction::Deleted)
        .map(WorkspaceEntry::from_revision)
        .collect()
}

#[Object]
impl MutationRoot {
    /// Pre-signed URLs to upload (`PUT`) or download (`GET`) Python-executable files, one per
    /// file name, in order; valid for an hour (see `presign`). A `GET` URL of a file not
    /// uploaded yet answers 404.
    async fn generate_serverless_pex_url(
        &self,
        ctx: &Context<'_>,
        filenames: Vec<String>,
        method: PexUrlMethod,
    ) -> async_graphql::Result<Vec<PresignedUrl>> {
        let deployment = target_deployment(ctx).map_err(field_error)?;
        if filenames.len() > MAX_PEX_FILENAMES {
            return Err(async_graphql::Error::new(format!(
                "at most {MAX_PEX_FILENAMES} file names per request, got {}",
                filenames.len()
            )));
        }
        let method = match method {
            PexUrlMethod::Put => Method::Put,
            PexUrlMethod::Get => Method::Get,
        };
        let now = std::time::SystemTime::now();
        let base = &state(ctx).public_url;
        filenames
            .iter()
            .map(|name| {
                check_name(name).map_err(|e| async_graphql::Error::new(e.to_string()))?;
                let query = state(ctx).signer.query(method, &deployment, name, now);
                Ok(PresignedUrl {
                    url: format!("{base}/blobs/{name}?{query}"),
                })
            })
            .collect()
    }

    async fn add_or_update_location_from_document(
        &self,
        ctx: &Context<'_>,
        document: GenericScalar,
    ) -> AddOrUpdateLocationResult {
        let result = change_locations(ctx, move |d, dep, actor| {
            Ok(vec![d.add_or_update_location(dep, document.0, actor)?])
        })
        .await
        .and_then(only);
        match result {
            Ok(rev) => {
                AddOrUpdateLocationResult::WorkspaceEntry(WorkspaceEntry::from_revision(rev))
            }
            Err(e) => e.into(),
        }
    }

    /// All locations at once, in one transaction: an invalid document changes nothing.
    async fn deploy_locations(
        &self,
        ctx: &Context<'_>,
        document: GenericScalar,
    ) -> DeployLocationsResult {
        let result = change_locations(ctx, move |d, dep, actor| {
            d.deploy_locations(dep, &document.0, actor)
        })
        .await;
        match result {
            Ok(revs) => DeployLocationsResult::DeployLocationsSuccess(DeployLocationsSuccess {
                locations: entries(revs),
            }),
            Err(e) => e.into(),
        }
    }

    /// Makes the deployment's locations exactly those of the document.
    async fn reconcile_locations_from_document(
        &self,
        ctx: &Context<'_>,
        document: GenericScalar,
    ) -> ReconcileLocationsResult {
        let result = change_locations(ctx, move |d, dep, actor| {
            d.reconcile_locations(dep, &document.0, actor)
        })
        .await;
        match result {
            Ok(revs) => {
                ReconcileLocationsResult::ReconcileLocationsSuccess(ReconcileLocationsSuccess {
                    locations: entries(revs),
                })
            }
            Err(e) => e.into(),
        }
    }

    async fn delete_location(
        &self,
        ctx: &Context<'_>,
        location_name: String,
    ) -> DeleteLocationResult {
        let result = change_locations(ctx, move |d, dep, actor| {
            Ok(vec![d.delete_location(dep, &location_name, actor)?])
        })
        .await
        .and_then(only);
        match result {
            Ok(rev) => DeleteLocationResult::DeleteLocationSuccess(DeleteLocationSuccess {
                location_name: rev.location,
            }),
            Err(e) => e.into(),
        }
    }

    /// Registers an earlier document of a location again (a dagster-deploy extension);
    /// without `revisionId`, the latest earlier document that differs from the current one.
    async fn rollback_location(
        &self,
        ctx: &Context<'_>,
        location_name: String,
        revision_id: Option<i64>,
    ) -> AddOrUpdateLocationResult {
        let result = change_locations(ctx, move |d, dep, actor| {
            Ok(vec![d.rollback(dep, &location_name, revision_id, actor)?])
        })
        .await
        .and_then(only);
        match result {
            Ok(rev) => {
                AddOrUpdateLocationResult::WorkspaceEntry(WorkspaceEntry::from_revision(rev))
            }
            Err(e) => e.into(),
        }
    }

    async fn create_or_update_branch_deployment(
        &self,
        ctx: &Context<'_>,
        branch_data: CreateOrUpdateBranchDeploymentInput,
        commit: DeploymentCommitInput,
        base_deployment_name: Option<String>,
        snapshot_base_condition: Option<SnapshotBaseDeploymentCondition>,
    ) -> DagsterCloudDeploymentOrError {
        let result = async {
            require_organization(ctx, "creating or updating a branch deployment")?;
            let branch =
                branch_data.into_branch(commit, base_deployment_name, snapshot_base_condition);
            let record =
                blocking(ctx, move |d| d.create_or_update_branch_deployment(branch)).await?;
            // A closed pull request stops the branch deployment's code servers.
            state(ctx).status.changed();
            tracing::info!(deployment = %record.name, "created or updated branch deployment");
            Ok::<_, DeployError>(record)
        }
        .await;
        match result {
            Ok(r) => DagsterCloudDeploymentOrError::DagsterCloudDeployment(r.into()),
            Err(e) => e.into(),
        }
    }

    async fn delete_deployment(
        &self,
        ctx: &Context<'_>,
        deployment_id: i64,
    ) -> DagsterCloudDeploymentOrError {
        let result = async {
            require_organization(ctx, "deleting a deployment")?;
            let record = blocking(ctx, move |d| d.delete_deployment(deployment_id)).await?;
            state(ctx).status.changed();
            tracing::info!(deployment = %record.name, "deleted deployment");
            Ok::<_, DeployError>(record)
        }
        .await;
        match result {
            Ok(r) => DagsterCloudDeploymentOrError::DagsterCloudDeployment(r.into()),
            Err(e) => e.into(),
        }
    }

    async fn set_deployment_settings(
        &self,
        ctx: &Context<'_>,
        deployment_settings: DeploymentSettingsInput,
    ) -> DeploymentSettingsResult {
        let result = async {
            let deployment = target_deployment(ctx)?;
            let settings = deployment_settings.settings.0;
            blocking(ctx, move |d| {
                d.set_deployment_settings(&deployment, settings)
            })
            .await
        }
        .await;
        match result {
            Ok(s) => DeploymentSettingsResult::DeploymentSettings(DeploymentSettings {
                settings: GenericScalar(s),
            }),
            Err(e) => e.into(),
        }
    }

    async fn set_organization_settings(
        &self,
        ctx: &Context<'_>,
        organization_settings: OrganizationSettingsInput,
    ) -> OrganizationSettingsResult {
        let result = async {
            require_organization(ctx, "changing organization settings")?;
            let settings = organization_settings.settings.0;
            blocking(ctx, move |d| d.set_organization_settings(settings)).await
        }
        .await;
        match result {
            Ok(s) => OrganizationSettingsResult::OrganizationSettings(OrganizationSettings {
                settings: GenericScalar(s),
            }),
            Err(e) => e.into(),
        }
    }

    /// The reference client's usage metrics: accepted and dropped.
    async fn mark_cli_event(
        &self,
        event_type: CliEventType,
        duration_seconds: f64,
        success: Option<bool>,
        tags: Option<Vec<Option<String>>>,
        message: Option<String>,
    ) -> &'static str {
        let _ = (event_type, duration_seconds, success, tags, message);
        "ok"
    }
}
