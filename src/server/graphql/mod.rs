//! The Dagster+ GraphQL schema the reference client speaks: the subset of root fields it
//! uses, with the type and union names its fragments spread on. Resolvers authorise the
//! token, then call `Deployments` on a blocking thread.

mod mutation;
mod query;
mod types;

use async_graphql::{
    Context, EmptySubscription, InputValueError, InputValueResult, Scalar, ScalarType, Schema,
};

use super::deployments::Deployments;
use super::error::DeployError;
use super::limits;
use super::presign::Signer;
use super::status::StatusSource;
use super::tokens::{Actor, TokenInfo, TokenScope};

pub(crate) use mutation::MutationRoot;
pub(crate) use query::QueryRoot;

pub(crate) type ApiSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Shared by every request.
pub(crate) struct AppState {
    pub deployments: Deployments,
    /// Where each location's load status comes from (and who hears about changes).
    pub status: StatusSource,
    /// The deployment of requests that name none (with an organisation token).
    pub default_deployment: String,
    pub signer: Signer,
    /// `scheme://host[:port]`: the base of pre-signed URLs.
    pub public_url: String,
}

/// What the HTTP layer learnt about one request.
pub(crate) struct RequestCtx {
    pub token: TokenInfo,
    /// From `/{deployment}/graphql`.
    pub path_deployment: Option<String>,
    /// From the `Dagster-Cloud-Deployment` header.
    pub header_deployment: Option<String>,
}

/// The schema with async-graphql's own bounds (see `limits` for the order of checks).
pub(crate) fn build_schema(state: AppState) -> ApiSchema {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .data(state)
        .limit_depth(limits::MAX_DEPTH)
        .limit_recursive_depth(limits::MAX_DEPTH)
        .limit_complexity(limits::MAX_COMPLEXITY)
        .limit_directives(limits::MAX_DIRECTIVES)
        .finish()
}

/// Any JSON value (Graphene's `GenericScalar`): location documents, settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GenericScalar(pub serde_json::Value);

#[Scalar(name = "GenericScalar")]
impl ScalarType for GenericScalar {
    fn parse(value: async_graphql::Value) -> InputValueResult<Self> {
        value
            .into_json()
            .map(GenericScalar)
            .map_err(|e| InputValueError::custom(e.to_string()))
    }

    fn to_value(&self) -> async_graphql::Value {
        async_graphql::Value::from_json(self.0.clone()).unwrap_or(async_graphql::Value::Null)
    }
}

fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

fn request<'a>(ctx: &Context<'a>) -> &'a RequestCtx {
    ctx.data_unchecked::<RequestCtx>()
}

fn actor(ctx: &Context<'_>) -> Actor {
    Actor::from_token(&request(ctx).token)
}

/// The deployment a deployment-scoped field works on: from the URL path, else the header,
/// else the token's own deployment, else the server's default; refused if the token is
/// scoped to another deployment.
fn target_deployment(ctx: &Context<'_>) -> Result<String, DeployError> {
    let rc = request(ctx);
    let name = match (&rc.path_deployment, &rc.header_deployment) {
        (Some(p), Some(h)) if p != h => {
            return Err(DeployError::BadRequest(format!(
                "the URL names deployment '{p}' but the Dagster-Cloud-Deployment header names \
                 '{h}'; use one deployment"
            )));
        }
        (Some(p), _) => p.clone(),
        (None, Some(h)) => h.clone(),
        (None, None) => match &rc.token.scope {
            TokenScope::Deployment(d) => d.clone(),
            TokenScope::Organization => state(ctx).default_deployment.clone(),
        },
    };
    may_access(ctx, &name)?;
    Ok(name)
}

/// Refuses a deployment-scoped token access to any other deployment.
fn may_access(ctx: &Context<'_>, deployment: &str) -> Result<(), DeployError> {
    match &request(ctx).token.scope {
        TokenScope::Deployment(own) if own != deployment => {
            Err(DeployError::Unauthorized(format!(
                "this API token is scoped to deployment '{own}' and cannot access deployment \
             '{deployment}'; use an organization token or one for '{deployment}'"
            )))
        }
        _ => Ok(()),
    }
}

/// Organisation-level operations need an organisation token.
fn require_organization(ctx: &Context<'_>, what: &str) -> Result<(), DeployError> {
    match &request(ctx).token.scope {
        TokenScope::Deployment(own) => Err(DeployError::Unauthorized(format!(
            "{what} needs an organization token; this API token is scoped to deployment '{own}'"
        ))),
        TokenScope::Organization => Ok(()),
    }
}

/// Runs a store operation off the async threads (SQLite calls block).
async fn blocking<T, F>(ctx: &Context<'_>, f: F) -> Result<T, DeployError>
where
    T: Send + 'static,
    F: FnOnce(&Deployments) -> Result<T, DeployError> + Send + 'static,
{
    let deployments = state(ctx).deployments.clone();
    tokio::task::spawn_blocking(move || f(&deployments))
        .await
        .map_err(|e| DeployError::Internal(e.to_string()))?
}

/// A failure of a field whose type is not a union: a GraphQL error the client prints.
fn field_error(e: DeployError) -> async_graphql::Error {
    async_graphql::Error::new(e.to_string())
}
