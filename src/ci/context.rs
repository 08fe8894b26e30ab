//! Decide the execution context once, from the environment: which CI (if any) runs us, and the
//! facts its event gives (today: the base revision to compare with).
//!
//! The environment is read only through the callback handed to [`CiContext::detect`], so
//! behaviour is a pure function of it (and of the GitHub event payload file it names).

use std::path::PathBuf;

use serde_json::Value;

use crate::changes::{BaseSource, ChangesError};
use crate::config::Env;

/// The CI service, decided by the first of its marker variables that is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CiProvider {
    Github,
    Gitlab,
    Bitbucket,
    Buildkite,
    CircleCi,
    Codebuild,
    Jenkins,
    /// Only `CI=true` (or `1`) is set: some CI we have no specific support for.
    Generic,
}

/// Marker variable → provider, checked in this order.
const MARKERS: &[(&str, CiProvider)] = &[
    ("GITHUB_ACTIONS", CiProvider::Github),
    ("GITLAB_CI", CiProvider::Gitlab),
    ("BITBUCKET_BUILD_NUMBER", CiProvider::Bitbucket),
    ("BUILDKITE", CiProvider::Buildkite),
    ("CIRCLECI", CiProvider::CircleCi),
    ("CODEBUILD_BUILD_ID", CiProvider::Codebuild),
    ("JENKINS_URL", CiProvider::Jenkins),
    ("CI", CiProvider::Generic),
];

impl CiProvider {
    /// The name used in messages and JSON (`github`, `circle-ci`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CiProvider::Github => "github",
            CiProvider::Gitlab => "gitlab",
            CiProvider::Bitbucket => "bitbucket",
            CiProvider::Buildkite => "buildkite",
            CiProvider::CircleCi => "circle-ci",
            CiProvider::Codebuild => "codebuild",
            CiProvider::Jenkins => "jenkins",
            CiProvider::Generic => "generic",
        }
    }
}

/// The base revision a CI event names (a SHA as the CI gave it, possibly all zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiBase {
    pub sha: String,
    pub source: BaseSource,
}

/// Everything we learn from the environment about the CI run, decided once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiContext {
    /// `None` outside CI.
    pub provider: Option<CiProvider>,
    /// GitHub: `pull_request.base.sha`, else the push's `before`, from the event payload.
    /// GitLab: `CI_MERGE_REQUEST_DIFF_BASE_SHA`, else `CI_COMMIT_BEFORE_SHA`.
    pub base: Option<CiBase>,
}

impl CiContext {
    /// Not in CI, no facts (e.g. for tests or `--no-ci`).
    pub fn none() -> CiContext {
        CiContext::default()
    }

    /// Decides the CI context from the environment. On GitHub the event payload file named by
    /// `GITHUB_EVENT_PATH` is read; one that cannot be read or parsed is an error naming it.
    pub fn detect(env: Env) -> Result<CiContext, ChangesError> {
        let provider = MARKERS
            .iter()
            .find(|(var, _)| env(var).is_some_and(|v| truthy(&v)))
            .map(|(_, p)| *p);
        let base = match provider {
            Some(CiProvider::Github) => github_base(env)?,
            Some(CiProvider::Gitlab) => gitlab_base(env),
            _ => None,
        };
        Ok(CiContext { provider, base })
    }

    pub fn is_ci(&self) -> bool {
        self.provider.is_some()
    }
}

/// Set, non-empty and not an explicit "false"/"0".
fn truthy(value: &str) -> bool {
    let v = value.trim();
    !v.is_empty() && !v.eq_ignore_ascii_case("false") && v != "0"
}

fn non_empty(env: Env, var: &str) -> Option<String> {
    env(var)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn github_base(env: Env) -> Result<Option<CiBase>, ChangesError> {
    let Some(path) = non_empty(env, "GITHUB_EVENT_PATH") else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    let text = std::fs::read(&path).map_err(|e| ChangesError::CiEventPayload {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let event: Value = serde_json::from_slice(&text).map_err(|e| ChangesError::CiEventPayload {
        path: path.clone(),
        message: format!("not valid JSON: {e}"),
    })?;
    let sha = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    // A pull_request `synchronize` payload also has `before` (the previous PR head): the pull
    // request's base wins.
    if let Some(base) = sha(event.pointer("/pull_request/base/sha")) {
        return Ok(Some(CiBase {
            sha: base,
            source: BaseSource::GithubPullRequest,
        }));
    }
    Ok(sha(event.get("before")).map(|before| CiBase {
        sha: before,
        source: BaseSource::GithubPush,
    }))
}

fn gitlab_base(env: Env) -> Option<CiBase> {
    if let Some(sha) = non_empty(env, "CI_MERGE_REQUEST_DIFF_BASE_SHA") {
        return Some(CiBase {
            sha,
            source: BaseSource::GitlabMergeRequest,
        });
    }
    non_empty(env, "CI_COMMIT_BEFORE_SHA").map(|sha| CiBase {
        sha,
        source: BaseSource::GitlabPush,
    })
}
