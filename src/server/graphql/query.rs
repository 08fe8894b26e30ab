//! Query root fields.

use async_graphql::{Context, Object, Result};

use super::types::{
    Agent, AgentStatus, DagsterCloudDeployment, DagsterCloudDeploymentOrError, DeploymentSettings,
    LocationHistory, LocationHistoryResult, LocationsAsDocument, OrganizationSettings,
    ServerlessInfo, Workspace, WorkspaceOrError,
};
use super::{
    GenericScalar, blocking, field_error, may_access, request, require_organization, state,
    target_deployment,
};
use crate::server::error::DeployError;
use crate::server::limits::EXPENSIVE_FIELD;
use crate::server::store::{DeploymentKind, HistoryPage, now_ms};
use crate::server::tokens::TokenScope;

/// The most revisions one `locationHistory` answer holds.
const MAX_HISTORY_PAGE: usize = 1000;

pub(crate) struct QueryRoot;

async fn workspace(ctx: &Context<'_>) -> Result<Workspace, DeployError> {
    let deployment = target_deployment(ctx)?;
    let dep = deployment.clone();
    let locations = blocking(ctx, move |d| d.locations(&dep)).await?;
    Ok(Workspace {
        deployment,
        locations,
        status: state(ctx).status.clone(),
    })
}

#[Object]
impl QueryRoot {
    /// Serverless registry facts: none here (Python-executable deploys need no registry).
    async fn serverless(&self, ctx: &Context<'_>) -> Result<ServerlessInfo> {
        target_deployment(ctx).map_err(field_error)?;
        Ok(ServerlessInfo {
            aws_region: None,
            aws_auth_token: None,
            registry_allow_custom_base: false,
            registry_is_harbor: false,
            registry_url: None,
        })
    }

    /// The registered locations of the deployment.
    #[graphql(complexity = "EXPENSIVE_FIELD + child_complexity")]
    async fn workspace(&self, ctx: &Context<'_>) -> Result<Workspace> {
        workspace(ctx).await.map_err(field_error)
    }

    /// The locations with their load status, as the agent reports it.
    #[graphql(complexity = "EXPENSIVE_FIELD + child_complexity")]
    async fn workspace_or_error(&self, ctx: &Context<'_>) -> WorkspaceOrError {
        match workspace(ctx).await {
            Ok(w) => WorkspaceOrError::Workspace(w),
            Err(e) => e.into(),
        }
    }

    /// Every current location document as `{"locations": [...]}`.
    #[graphql(complexity = "EXPENSIVE_FIELD + child_complexity")]
    async fn locations_as_document(&self, ctx: &Context<'_>) -> Result<LocationsAsDocument> {
        let deployment = target_deployment(ctx).map_err(field_error)?;
        let document = blocking(ctx, move |d| d.locations_document(&deployment))
            .await
            .map_err(field_error)?;
        Ok(LocationsAsDocument {
            document: GenericScalar(document),
        })
    }

    /// The built-in agent: always running, it "loads" a location by checking its image.
    async fn agents(&self, ctx: &Context<'_>) -> Result<Vec<Agent>> {
        let deployment = target_deployment(ctx).map_err(field_error)?;
        blocking(ctx, move |d| d.deployment(&deployment).map(|_| ()))
            .await
            .map_err(field_error)?;
        Ok(vec![Agent {
            id: "dagster-deploy-builtin".into(),
            agent_label: "dagster-deploy built-in agent".into(),
            status: AgentStatus::Running,
            last_heartbeat_time: now_ms() as f64 / 1000.0,
            errors: Vec::new(),
        }])
    }

    async fn current_deployment(&self, ctx: &Context<'_>) -> Result<DagsterCloudDeployment> {
        let deployment = target_deployment(ctx).map_err(field_error)?;
        let record = blocking(ctx, move |d| d.deployment(&deployment))
            .await
            .map_err(field_error)?;
        Ok(record.into())
    }

    async fn deployment_settings(&self, ctx: &Context<'_>) -> Result<DeploymentSettings> {
        let deployment = target_deployment(ctx).map_err(field_error)?;
        let record = blocking(ctx, move |d| d.deployment(&deployment))
            .await
            .map_err(field_error)?;
        Ok(DeploymentSettings {
            settings: GenericScalar(record.settings),
        })
    }

    async fn organization_settings(&self, ctx: &Context<'_>) -> Result<OrganizationSettings> {
        require_organization(ctx, "reading organization settings").map_err(field_error)?;
        let settings = blocking(ctx, |d| d.organization_settings())
            .await
            .map_err(field_error)?;
        Ok(OrganizationSettings {
            settings: GenericScalar(settings),
        })
    }

    /// Full (non-branch) deployments; a deployment-scoped token sees only its own.
    #[graphql(complexity = "EXPENSIVE_FIELD + child_complexity")]
    async fn full_deployments(&self, ctx: &Context<'_>) -> Result<Vec<DagsterCloudDeployment>> {
        let all = blocking(ctx, |d| d.deployments())
            .await
            .map_err(field_error)?;
        let scope = request(ctx).token.scope.clone();
        Ok(all
            .into_iter()
            .filter(|d| d.kind == DeploymentKind::Production)
            .filter(|d| match &scope {
                TokenScope::Deployment(own) => *own == d.name,
                TokenScope::Organization => true,
            })
            .map(Into::into)
            .collect())
    }

    async fn deployment_by_name(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> DagsterCloudDeploymentOrError {
        if let Err(e) = may_access(ctx, &name) {
            return e.into();
        }
        match blocking(ctx, move |d| d.deployment(&name)).await {
            Ok(record) => DagsterCloudDeploymentOrError::DagsterCloudDeployment(record.into()),
            Err(e) => e.into(),
        }
    }

    /// The branch deployment of a repository branch, or null.
    async fn get_branch_deployment_name(
        &self,
        ctx: &Context<'_>,
        repo_name: String,
        branch_name: String,
    ) -> Result<Option<String>> {
        require_organization(ctx, "looking up branch deployments").map_err(field_error)?;
        blocking(ctx, move |d| {
            d.branch_deployment_name(&repo_name, &branch_name)
        })
        .await
        .map_err(field_error)
    }

    /// A location's newest `limit` revisions (1 to 1000) with an id below `before`, oldest
    /// first (a dagster-deploy extension).
    #[graphql(complexity = "EXPENSIVE_FIELD + child_complexity")]
    async fn location_history(
        &self,
        ctx: &Context<'_>,
        location_name: String,
        #[graphql(default = 100)] limit: i32,
        before: Option<i64>,
    ) -> LocationHistoryResult {
        let result = async {
            let deployment = target_deployment(ctx)?;
            let limit = usize::try_from(limit)
                .ok()
                .filter(|l| (1..=MAX_HISTORY_PAGE).contains(l))
                .ok_or_else(|| {
                    DeployError::BadRequest(format!(
                        "limit must be between 1 and {MAX_HISTORY_PAGE}, got {limit}"
                    ))
                })?;
            let page = HistoryPage {
                before,
                limit: Some(limit),
            };
            blocking(ctx, move |d| d.history(&deployment, &location_name, page)).await
        }
        .await;
        match result {
            Ok(revs) => LocationHistoryResult::LocationHistory(LocationHistory {
                revisions: revs.into_iter().map(Into::into).collect(),
            }),
            Err(e) => e.into(),
        }
    }
}
