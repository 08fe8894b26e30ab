//! The routing policy: which deployment a run targets, decided before anything is built, for
//! `deploy` (and the GitHub action, which runs it) and for `ci init`. A pull request's run
//! targets its branch deployment (created or updated here, with the named deployment as its
//! base); a run that builds none targets the named deployment. For `deploy` also: nowhere
//! because the pull request ended (its branch deployment is marked closed or merged), or
//! nowhere because a fork's pull request gets no secrets (plan and build only); in hosted CI
//! a missing token is an error naming the input or variable to set, before any work.

use std::path::Path;

use crate::api::ops::{self, BranchData, CommitData};
use crate::api::{ApiError, Settings};
use crate::ci::context::{CiContext, CiError, CiProvider};
use crate::ci::pull_request::{self, BranchFacts, PullRequestError, Source};
use crate::config::Env;
use crate::error::Error;

const WHAT: &str = "deploy";

/// When `deploy` goes to a branch deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchMode {
    /// When a GitHub or GitLab run builds a pull (merge) request.
    Auto,
    /// Always: a run that builds no pull request is an error.
    Always,
    /// Never: deploy to the named deployment.
    Never,
}

/// `snapshotBaseCondition` of a new branch deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotBase {
    OnCreate,
    OnUpdate,
}

pub enum Route {
    /// Deploy to `settings.deployment`; `pull_request` names the request when that is its
    /// branch deployment (`new_branch`: it does not exist yet, which only a dry run sees).
    Deploy {
        pull_request: Option<String>,
        new_branch: bool,
    },
    /// The pull request was closed or merged: its branch deployment is marked so.
    Ended { message: String },
    /// A fork's pull request without secrets: plan and build, push and register nothing.
    BuildOnly { reason: String },
}

/// Decides `deploy`'s route; for a branch deployment, sets `settings.deployment` to its name.
/// A dry run (`create` false) only looks the branch deployment up.
pub async fn for_deploy(
    mode: BranchMode,
    settings: &mut Settings,
    ci: &CiContext,
    env: Env<'_>,
    workdir: &Path,
    create: bool,
) -> Result<Route, Error> {
    let hosted = ci.provider.filter(|p| *p != CiProvider::Generic);
    if let Some(provider) = hosted
        && settings.token.is_none()
    {
        if Source::of(Some(provider)).is_ok_and(|s| pull_request::is_fork(s, env)) {
            return Ok(Route::BuildOnly {
                reason: "this pull request comes from a fork, and CI gives forks no secrets \
                         (no DAGSTER_CLOUD_API_TOKEN): planned and built only, nothing was \
                         pushed or deployed"
                    .into(),
            });
        }
        return Err(missing_token(provider, settings.has_remote()));
    }

    let facts = match mode {
        BranchMode::Never => None,
        BranchMode::Auto => match hosted {
            Some(p @ (CiProvider::Github | CiProvider::Gitlab)) => {
                pull_request::branch_facts(Source::of(Some(p))?, env, workdir, false)?
            }
            _ => None,
        },
        BranchMode::Always => Some(
            pull_request::branch_facts(Source::of(ci.provider)?, env, workdir, false)?.ok_or_else(
                || CiError::NoPullRequest {
                    reason: "this run builds no pull (merge) request".into(),
                },
            )?,
        ),
    };
    let Some(facts) = facts else {
        return Ok(Route::Deploy {
            pull_request: None,
            new_branch: false,
        });
    };
    let label = match (&facts.branch.pull_request_number, ci.provider) {
        (Some(n), Some(CiProvider::Gitlab)) => format!("!{n}"),
        (Some(n), _) => format!("#{n}"),
        (None, _) => format!("branch {}", facts.branch.branch_name),
    };
    let status = facts.branch.pull_request_status.clone().unwrap_or_default();
    let ended = matches!(status.as_str(), "CLOSED" | "MERGED");
    if ended && !create {
        return Ok(Route::Ended {
            message: format!(
                "pull request {label} is {}: its branch deployment would be marked {status}; \
                 nothing to build or deploy",
                status.to_lowercase()
            ),
        });
    }
    if !create {
        let client = settings.organization_client(WHAT)?;
        let name = ops::branch_deployment_name(
            &client,
            &facts.branch.repo_name,
            &facts.branch.branch_name,
        )
        .await?;
        let new_branch = name.is_none();
        settings.deployment = name.or(settings.deployment.take());
        return Ok(Route::Deploy {
            pull_request: Some(label),
            new_branch,
        });
    }
    let name =
        create_or_update_branch(settings, WHAT, &facts.branch, &facts.commit, None, None).await?;
    if ended {
        return Ok(Route::Ended {
            message: format!(
                "pull request {label} is {}: branch deployment {name} marked {status}; \
                 nothing to build or deploy",
                status.to_lowercase()
            ),
        });
    }
    settings.deployment = Some(name);
    Ok(Route::Deploy {
        pull_request: Some(label),
        new_branch: false,
    })
}

/// Where a `ci` build session deploys (`ci init`): the branch deployment of the pull request
/// being built (created or updated, based on the named deployment), else the named
/// deployment. Facts the CI cannot give fall back to the named deployment unless a branch
/// deployment is `required`; API errors always fail. Returns the name, whether it is a branch
/// deployment, and a line for people.
pub async fn for_session(
    settings: &Settings,
    ci: &CiContext,
    env: Env<'_>,
    project_dir: &Path,
    required: bool,
    condition: Option<SnapshotBase>,
) -> Result<(String, bool, String), Error> {
    let facts = match Source::of(ci.provider) {
        Ok(Source::Local) if !required => Ok(None),
        Ok(source) => pull_request::branch_facts(source, env, project_dir, false),
        Err(e) => Err(e.into()),
    };
    let facts: Result<BranchFacts, String> = match facts {
        Ok(Some(facts)) => Ok(facts),
        Ok(None) => Err("this run builds no pull request".to_string()),
        Err(PullRequestError::Ci(e)) => Err(e.to_string()),
        Err(other) => return Err(other.into()),
    };
    let base = settings.deployment.as_deref();
    match (facts, base) {
        (Ok(facts), base) => {
            let what = "ci init";
            let name = create_or_update_branch(
                settings,
                what,
                &facts.branch,
                &facts.commit,
                base,
                condition,
            )
            .await?;
            let line = format!(
                "Deploying to branch deployment {name}{}",
                base.map(|b| format!(", using base deployment {b}"))
                    .unwrap_or_default()
            );
            Ok((name, true, line))
        }
        (Err(why), _) if required => Err(CiError::NoPullRequest { reason: why }.into()),
        (Err(why), Some(deployment)) => Ok((
            deployment.to_string(),
            false,
            format!("Deploying to {deployment}. No branch deployment ({why})."),
        )),
        (Err(why), None) => Err(Error::Usage {
            message: format!("cannot determine the deployment to deploy to ({why})"),
            hint: "pass --deployment NAME (or set DAGSTER_CLOUD_DEPLOYMENT)".into(),
        }),
    }
}

/// `createOrUpdateBranchDeployment` at the organisation URL (no deployment header); returns
/// the branch deployment's name.
pub async fn create_or_update_branch(
    settings: &Settings,
    what: &str,
    branch: &BranchData,
    commit: &CommitData,
    base_deployment_name: Option<&str>,
    condition: Option<SnapshotBase>,
) -> Result<String, ApiError> {
    let client = settings.organization_client(what)?;
    let condition = condition.map(|c| match c {
        SnapshotBase::OnCreate => "ON_CREATE",
        SnapshotBase::OnUpdate => "ON_UPDATE",
    });
    ops::create_or_update_branch_deployment(
        &client,
        branch,
        commit,
        base_deployment_name,
        condition,
    )
    .await
}

/// In CI the local store would vanish with the runner, so a token is required; the error
/// names what to set where this CI reads it.
fn missing_token(provider: CiProvider, has_remote: bool) -> Error {
    let what = if has_remote {
        "no Dagster+ API token"
    } else {
        "no deployment to register with (no organization, URL or API token)"
    };
    let hint = match provider {
        CiProvider::Github => {
            "in the dagster-deploy action set the `api-token` input (e.g. `api-token: ${{ \
             secrets.DAGSTER_CLOUD_API_TOKEN }}`) and `organization` or `url`; in a `run:` \
             step set DAGSTER_CLOUD_API_TOKEN and DAGSTER_CLOUD_ORGANIZATION (or \
             DAGSTER_CLOUD_URL)"
        }
        CiProvider::Gitlab => {
            "add the masked CI/CD variable DAGSTER_CLOUD_API_TOKEN (Settings > CI/CD > \
             Variables) and DAGSTER_CLOUD_ORGANIZATION (or DAGSTER_CLOUD_URL); protected \
             variables reach protected branches only"
        }
        _ => {
            "set DAGSTER_CLOUD_API_TOKEN and DAGSTER_CLOUD_ORGANIZATION (or DAGSTER_CLOUD_URL) \
             in the pipeline's secrets, or pass --api-token and --organization"
        }
    };
    Error::Usage {
        message: format!(
            "{what}: deploy in {} CI needs DAGSTER_CLOUD_API_TOKEN (a local store on the \
             runner would be lost with it)",
            provider.name()
        ),
        hint: hint.into(),
    }
}
