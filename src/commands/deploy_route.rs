//! Where a `deploy` goes, decided before anything is built: the named deployment, the pull
//! request's branch deployment (created or updated here), nowhere because the pull request
//! ended (its branch deployment is marked closed or merged), or nowhere because a fork's pull
//! request gets no secrets (plan and build only). In CI a missing token is an error naming
//! the input or variable to set, before any work.

use std::path::Path;

use crate::api::Settings;
use crate::api::ops;
use crate::ci::context::{CiContext, CiError, CiProvider};
use crate::ci::pull_request::{self, Source};
use crate::cli::BranchDeploymentMode;
use crate::error::Error;

const WHAT: &str = "deploy";

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

/// Decides the route; for a branch deployment, sets `settings.deployment` to its name. A dry
/// run (`create` false) only looks the branch deployment up.
pub fn decide(
    mode: BranchDeploymentMode,
    settings: &mut Settings,
    ci: &CiContext,
    workdir: &Path,
    runtime: &tokio::runtime::Runtime,
    create: bool,
) -> Result<Route, Error> {
    let env = &super::process_env;
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
        BranchDeploymentMode::False => None,
        BranchDeploymentMode::Auto => match hosted {
            Some(p @ (CiProvider::Github | CiProvider::Gitlab)) => {
                pull_request::branch_facts(Source::of(Some(p))?, env, workdir, false)?
            }
            _ => None,
        },
        BranchDeploymentMode::True => Some(
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
        let client = crate::api::Client::new(
            &settings.organization_url(WHAT)?,
            settings.token(WHAT)?.clone(),
            None,
            crate::api::ClientOptions::default(),
        )?;
        let name = runtime.block_on(ops::branch_deployment_name(
            &client,
            &facts.branch.repo_name,
            &facts.branch.branch_name,
        ))?;
        let new_branch = name.is_none();
        settings.deployment = name.or(settings.deployment.take());
        return Ok(Route::Deploy {
            pull_request: Some(label),
            new_branch,
        });
    }
    let name = runtime.block_on(super::compat::create_or_update_branch(
        settings,
        WHAT,
        &facts.branch,
        &facts.commit,
        None,
        None,
    ))?;
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
