//! Decide the execution context once, from the environment: which CI (if any) runs us, and the
//! facts its event gives (today: the base revision to compare with).
//!
//! The environment is read only through the callback handed to [`CiContext::detect`], so
//! behaviour is a pure function of it (and of the GitHub event payload file it names).
//! Detection never fails: a broken event payload is kept as the answer to "what base does the
//! event give", an error only for callers that need that base (not with `--base`).

use std::path::PathBuf;

use serde_json::Value;

use crate::changes::BaseSource;
/// The base revision a CI event names (a SHA as the CI gave it, possibly all zeros).
pub use crate::changes::EventBase as CiBase;
use crate::config::Env;

/// What the CI gave that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CiError {
    #[error("cannot read the CI event payload {}: {message}", path.display())]
    EventPayload { path: PathBuf, message: String },
    #[error("cannot determine the branch deployment: {reason}")]
    NoPullRequest { reason: String },
}

impl CiError {
    /// A stable code for `--json` errors.
    pub fn code(&self) -> &'static str {
        match self {
            CiError::EventPayload { .. } => "ci-event-payload",
            CiError::NoPullRequest { .. } => "ci-no-pull-request",
        }
    }

    pub fn hint(&self) -> &'static str {
        match self {
            CiError::EventPayload { .. } => {
                "the CI runner's event file is missing or broken; pass --base REV to choose the base yourself"
            }
            CiError::NoPullRequest { .. } => {
                "run in a pull (merge) request pipeline, or deploy to a named deployment with --deployment"
            }
        }
    }
}

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

/// Everything we learn from the environment about the CI run, decided once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiContext {
    /// `None` outside CI.
    pub provider: Option<CiProvider>,
    /// GitHub: `pull_request.base.sha`, else `merge_group.base_sha`, else the push's `before`,
    /// from the event payload (an error when that file cannot be read). GitLab:
    /// `CI_MERGE_REQUEST_DIFF_BASE_SHA`, else `CI_COMMIT_BEFORE_SHA`.
    pub base: Result<Option<CiBase>, CiError>,
}

impl Default for CiContext {
    fn default() -> CiContext {
        CiContext {
            provider: None,
            base: Ok(None),
        }
    }
}

impl CiContext {
    /// Not in CI, no facts (e.g. for tests or `--no-ci`).
    pub fn none() -> CiContext {
        CiContext::default()
    }

    /// Decides the CI context from the environment. On GitHub the event payload file named by
    /// `GITHUB_EVENT_PATH` is read.
    pub fn detect(env: Env) -> CiContext {
        let provider = MARKERS
            .iter()
            .find(|(var, _)| env(var).is_some_and(|v| truthy(&v)))
            .map(|(_, p)| *p);
        let base = match provider {
            Some(CiProvider::Github) => github_base(env),
            Some(CiProvider::Gitlab) => Ok(gitlab_base(env)),
            _ => Ok(None),
        };
        CiContext { provider, base }
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

fn github_base(env: Env) -> Result<Option<CiBase>, CiError> {
    let Some(path) = non_empty(env, "GITHUB_EVENT_PATH") else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    let text = std::fs::read(&path).map_err(|e| CiError::EventPayload {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let event: Value = serde_json::from_slice(&text).map_err(|e| CiError::EventPayload {
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
    // A merge queue run: the queue's target branch tip.
    if let Some(base) = sha(event.pointer("/merge_group/base_sha")) {
        return Ok(Some(CiBase {
            sha: base,
            source: BaseSource::GithubMergeGroup,
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
