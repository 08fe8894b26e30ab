//! The routing policy: which deployment a run targets, decided before anything is built, for
//! `deploy` (and the GitHub action, which runs it) and for `ci init`, by one function with one
//! set of rules ([`route`]):
//!
//! 1. Branch facts: with [`BranchMode::Auto`] a GitHub or GitLab run that builds a pull
//!    (merge) request targets its branch deployment, any other run the named deployment;
//!    `Always` requires a pull request (on a laptop, the checked-out branch), `Never` uses none.
//!    Facts the CI gives but that cannot be read fail the run: a pull request's run must never
//!    fall through to the deployment its branch deployment is based on.
//! 2. A branch deployment is created or updated with the named deployment as its base (and the
//!    snapshot condition, when given); a dry run only looks it up.
//! 3. A pull request that ended (closed, merged) has its branch deployment marked so; `deploy`
//!    then stops, a session still records it (as the reference's `ci init` does).
//! 4. Without a branch deployment the run targets the named deployment, else `prod`.
//! 5. Only a run that registers now ([`Purpose::Deploy`]) needs a token: in hosted CI a missing
//!    one is an error naming the input or variable to set, before any work, except for a
//!    fork's pull request (CI gives forks no secrets), which is planned and built only. A
//!    session (`ci init`) records where it deploys; `ci deploy` needs the token.

use std::path::Path;

use crate::api::ops::{self, BranchData, CommitData};
use crate::api::{ApiError, Settings};
use crate::ci::context::{CiContext, CiError, CiProvider};
use crate::ci::pull_request::{self, BranchFacts, Source};
use crate::config::Env;
use crate::error::Error;
use crate::protocol::DEFAULT_DEPLOYMENT;

/// When a run goes to a branch deployment.
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

/// What the run does with its route: the only input on which the rules differ (4 and 5 of
/// the module's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `deploy`: registers in this run. `create` false (a dry run) only looks the branch
    /// deployment up.
    Deploy { create: bool },
    /// `ci init`: records where the session deploys; `ci deploy` registers later.
    Session,
}

/// A run to route.
pub struct RouteRequest<'a> {
    pub mode: BranchMode,
    pub purpose: Purpose,
    /// The new branch deployment's snapshot condition (`ci init --snapshot-base-condition`).
    pub condition: Option<SnapshotBase>,
    pub ci: &'a CiContext,
    pub env: Env<'a>,
    /// The repository (or project) folder: where the laptop's branch is read.
    pub workdir: &'a Path,
}

pub enum Route {
    /// Deploy to `settings.deployment` (set by [`route`]). `pull_request` names the request
    /// when that is its branch deployment, `base` the deployment it is based on, and
    /// `new_branch` says it does not exist yet (which only a dry run sees).
    Deploy {
        pull_request: Option<String>,
        base: Option<String>,
        new_branch: bool,
    },
    /// The pull request was closed or merged: its branch deployment is marked so (`deploy`).
    Ended { message: String },
    /// A fork's pull request without secrets: plan and build, push and register nothing.
    BuildOnly { reason: String },
}

/// Decides where the run deploys, by the rules of this module; sets `settings.deployment` to
/// the deployment a [`Route::Deploy`] targets.
pub async fn route(req: &RouteRequest<'_>, settings: &mut Settings) -> Result<Route, Error> {
    let what = match req.purpose {
        Purpose::Deploy { .. } => "deploy",
        Purpose::Session => "ci init",
    };
    // Rule 5.
    let hosted = req.ci.provider.filter(|p| *p != CiProvider::Generic);
    if let (Purpose::Deploy { .. }, Some(provider)) = (req.purpose, hosted)
        && settings.token.is_none()
    {
        if Source::of(Some(provider)).is_ok_and(|s| pull_request::is_fork(s, req.env)) {
            return Ok(Route::BuildOnly {
                reason: "this pull request comes from a fork, and CI gives forks no secrets \
                         (no DAGSTER_CLOUD_API_TOKEN): planned and built only, nothing was \
                         pushed or deployed"
                    .into(),
            });
        }
        return Err(missing_token(provider, settings.has_remote()));
    }

    // Rules 1 and 4.
    let named = settings.deployment.clone();
    let Some(facts) = branch_facts(req)? else {
        settings.deployment = Some(named.unwrap_or_else(|| DEFAULT_DEPLOYMENT.to_string()));
        return Ok(Route::Deploy {
            pull_request: None,
            base: None,
            new_branch: false,
        });
    };
    let label = match (&facts.branch.pull_request_number, req.ci.provider) {
        (Some(n), Some(CiProvider::Gitlab)) => format!("!{n}"),
        (Some(n), _) => format!("#{n}"),
        (None, _) => format!("branch {}", facts.branch.branch_name),
    };
    let status = facts.branch.pull_request_status.clone().unwrap_or_default();
    let ended = matches!(status.as_str(), "CLOSED" | "MERGED");

    // Rules 2 and 3.
    if req.purpose == (Purpose::Deploy { create: false }) {
        if ended {
            return Ok(Route::Ended {
                message: format!(
                    "pull request {label} is {}: its branch deployment would be marked \
                     {status}; nothing to build or deploy",
                    status.to_lowercase()
                ),
            });
        }
        let name = existing_branch(settings, what, &facts.branch).await?;
        let new_branch = name.is_none();
        settings.deployment = name.or(settings.deployment.take());
        return Ok(Route::Deploy {
            pull_request: Some(label),
            base: named,
            new_branch,
        });
    }
    let name = create_or_update_branch(
        settings,
        what,
        &facts.branch,
        &facts.commit,
        named.as_deref(),
        req.condition,
    )
    .await?;
    if ended && req.purpose != Purpose::Session {
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
        base: named,
        new_branch: false,
    })
}

/// Rule 1: the pull request the run builds, if it goes to a branch deployment.
fn branch_facts(req: &RouteRequest) -> Result<Option<BranchFacts>, Error> {
    let source = match req.mode {
        BranchMode::Never => return Ok(None),
        BranchMode::Auto => match req.ci.provider {
            Some(p @ (CiProvider::Github | CiProvider::Gitlab)) => Source::of(Some(p))?,
            _ => return Ok(None),
        },
        BranchMode::Always => Source::of(req.ci.provider)?,
    };
    let facts = pull_request::branch_facts(source, req.env, req.workdir, false)?;
    if facts.is_none() && req.mode == BranchMode::Always {
        return Err(CiError::NoPullRequest {
            reason: "this run builds no pull (merge) request".into(),
        }
        .into());
    }
    Ok(facts)
}

/// The name of the branch deployment of `branch`'s pull request, if one exists (asked at the
/// organisation URL).
pub async fn existing_branch(
    settings: &Settings,
    what: &str,
    branch: &BranchData,
) -> Result<Option<String>, ApiError> {
    let client = settings.organization_client(what)?;
    ops::branch_deployment_name(&client, &branch.repo_name, &branch.branch_name).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiToken;

    /// Routes a run of `purpose` in GitHub Actions whose event payload is `event` (JSON text).
    async fn github_run(
        purpose: Purpose,
        event: &str,
        token: bool,
    ) -> (Result<Route, Error>, Settings) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(&path, event).unwrap();
        let path = path.display().to_string();
        let env = |name: &str| match name {
            "GITHUB_ACTIONS" => Some("true".to_string()),
            "GITHUB_EVENT_NAME" => Some("push".to_string()),
            "GITHUB_EVENT_PATH" => Some(path.clone()),
            _ => None,
        };
        let ci = CiContext::detect(&env);
        let mut settings = Settings {
            token: token.then(|| ApiToken::new("t0ken")).flatten(),
            ..Default::default()
        };
        let req = RouteRequest {
            mode: BranchMode::Auto,
            purpose,
            condition: None,
            ci: &ci,
            env: &env,
            workdir: dir.path(),
        };
        let routed = route(&req, &mut settings).await;
        (routed, settings)
    }

    const PUSH: &str = r#"{"after": "abc", "repository": {"full_name": "o/r"}}"#;

    #[tokio::test]
    async fn only_a_run_that_registers_now_needs_a_token() {
        let (routed, _) = github_run(Purpose::Deploy { create: true }, PUSH, false).await;
        let Err(Error::Usage { message, hint }) = routed else {
            panic!("deploy without a token must be refused");
        };
        assert!(message.contains("DAGSTER_CLOUD_API_TOKEN"), "{message}");
        assert!(hint.contains("api-token"), "{hint}");

        // A session only records where it deploys: the named deployment, else `prod`.
        let (routed, settings) = github_run(Purpose::Session, PUSH, false).await;
        assert!(matches!(
            routed,
            Ok(Route::Deploy {
                pull_request: None,
                base: None,
                new_branch: false
            })
        ));
        assert_eq!(settings.deployment.as_deref(), Some(DEFAULT_DEPLOYMENT));
    }

    #[tokio::test]
    async fn a_pull_request_that_cannot_be_read_fails_every_run() {
        // A pull request without head.ref: never fall through to the base deployment.
        let broken = r#"{"pull_request": {"number": 7}, "repository": {"full_name": "o/r"}}"#;
        for purpose in [Purpose::Deploy { create: true }, Purpose::Session] {
            let (routed, settings) = github_run(purpose, broken, true).await;
            assert!(routed.is_err(), "{purpose:?} fell through to a deployment");
            assert_eq!(settings.deployment, None, "{purpose:?}");
        }
    }

    #[tokio::test]
    async fn a_fork_is_built_only_when_it_would_register_now() {
        let fork = r#"{"pull_request": {"number": 7, "head": {"ref": "f",
            "repo": {"full_name": "fork/r", "fork": true}},
            "base": {"repo": {"full_name": "o/r"}}}, "repository": {"full_name": "o/r"}}"#;
        let (routed, _) = github_run(Purpose::Deploy { create: true }, fork, false).await;
        assert!(matches!(routed, Ok(Route::BuildOnly { .. })));
    }
}
