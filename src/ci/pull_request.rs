//! The pull (merge) request a CI run builds, as the branch deployment protocol wants it
//! (docs/protocol.md, "CI context"): from GitHub's event payload, GitLab's merge request variables,
//! or — outside CI, when a branch deployment is asked for — the local branch and `origin`.
//! Commit facts (timestamp, subject, author) come from HEAD of the checkout; in CI without a
//! checkout (a GitLab stop job with `GIT_STRATEGY: none`), from the CI's own commit variables.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::context::{CiError, CiProvider};
use crate::api::ops::{BranchData, CommitData};
use crate::changes::{ChangesError, Repo};
use crate::config::Env;

/// Why the pull request's facts cannot be read: the CI's (its variables, its event file) or
/// the checkout's (git).
#[derive(Debug, thiserror::Error)]
pub enum PullRequestError {
    #[error(transparent)]
    Ci(#[from] CiError),
    #[error(transparent)]
    Changes(#[from] ChangesError),
}

/// What `createOrUpdateBranchDeployment` sends.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchFacts {
    pub branch: BranchData,
    pub commit: CommitData,
}

/// Where the facts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Github,
    Gitlab,
    /// The checkout itself (outside CI, or a CI without pull request support).
    Local,
}

impl Source {
    pub fn of(provider: Option<CiProvider>) -> Result<Source, CiError> {
        match provider {
            Some(CiProvider::Github) => Ok(Source::Github),
            Some(CiProvider::Gitlab) => Ok(Source::Gitlab),
            None | Some(CiProvider::Generic) => Ok(Source::Local),
            Some(other) => Err(CiError::NoPullRequest {
                reason: format!("branch deployments are not supported on {}", other.name()),
            }),
        }
    }
}

fn var(env: Env, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn required(env: Env, name: &str) -> Result<String, CiError> {
    var(env, name).ok_or_else(|| CiError::NoPullRequest {
        reason: format!("{name} is not set"),
    })
}

/// The pull request's facts; `Ok(None)` when the run builds no pull request (a push).
/// `mark_closed` reports it CLOSED, whatever its state.
pub fn branch_facts(
    source: Source,
    env: Env,
    project_dir: &Path,
    mark_closed: bool,
) -> Result<Option<BranchFacts>, PullRequestError> {
    let status = |open: String| Some(if mark_closed { "CLOSED".into() } else { open });
    let (branch, sha) = match source {
        Source::Github => {
            let path = PathBuf::from(required(env, "GITHUB_EVENT_PATH")?);
            let event = read_event(&path)?;
            let Some(pr) = event.get("pull_request").filter(|p| p.is_object()) else {
                return Ok(None);
            };
            let text = |v: &Value| v.as_str().map(str::to_string);
            let repo_name = event
                .pointer("/repository/full_name")
                .and_then(text)
                .or_else(|| var(env, "GITHUB_REPOSITORY"))
                .ok_or_else(|| CiError::EventPayload {
                    path: path.clone(),
                    message: "no repository.full_name".into(),
                })?;
            let head_ref = pr.pointer("/head/ref").and_then(text);
            let Some(branch_name) = head_ref else {
                return Err(CiError::EventPayload {
                    path,
                    message: "the pull request has no head.ref".into(),
                }
                .into());
            };
            let server =
                var(env, "GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
            let state = if pr["merged"].as_bool().unwrap_or(false) {
                "MERGED".to_string()
            } else {
                pr["state"].as_str().unwrap_or("open").to_uppercase()
            };
            let number = match &pr["number"] {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            let branch = BranchData {
                branch_url: Some(format!(
                    "{}/{repo_name}/tree/{branch_name}",
                    server.trim_end_matches('/')
                )),
                repo_name,
                branch_name,
                pull_request_url: pr["html_url"].as_str().map(str::to_string),
                pull_request_status: status(state),
                pull_request_number: number,
            };
            // For pull requests GITHUB_SHA is a merge commit; the head is what was pushed.
            let sha = pr
                .pointer("/head/sha")
                .and_then(text)
                .or_else(|| var(env, "GITHUB_SHA"));
            (branch, sha)
        }
        Source::Gitlab => {
            let Some(iid) = var(env, "CI_MERGE_REQUEST_IID") else {
                return Ok(None);
            };
            let project_url = required(env, "CI_PROJECT_URL")?;
            let project_url = project_url.trim_end_matches('/');
            let branch_name = var(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
                .or_else(|| var(env, "CI_COMMIT_REF_NAME"))
                .unwrap_or_default();
            let branch = BranchData {
                repo_name: required(env, "CI_PROJECT_NAME")?,
                branch_url: Some(format!("{project_url}/-/tree/{branch_name}")),
                branch_name,
                pull_request_url: Some(format!("{project_url}/-/merge_requests/{iid}")),
                pull_request_status: status("OPEN".into()),
                pull_request_number: Some(iid),
            };
            (branch, var(env, "CI_COMMIT_SHA"))
        }
        Source::Local => {
            let repo = Repo::discover(project_dir)?;
            let head = repo
                .repo
                .head()
                .map_err(crate::changes::ChangesError::Git)?;
            let branch_name = head
                .shorthand()
                .filter(|_| head.is_branch())
                .map(str::to_string)
                .ok_or_else(|| CiError::NoPullRequest {
                    reason: "HEAD is not on a branch".into(),
                })?;
            let origin = repo
                .repo
                .find_remote("origin")
                .ok()
                .and_then(|r| r.url().map(str::to_string));
            let repo_name = origin.as_deref().and_then(owner_and_repo).ok_or_else(|| {
                CiError::NoPullRequest {
                    reason: "the repository has no `origin` remote to name it by".into(),
                }
            })?;
            let branch = BranchData {
                repo_name,
                branch_name,
                pull_request_status: status("OPEN".into()),
                ..Default::default()
            };
            (branch, None)
        }
    };
    let mut commit = match head_commit(project_dir) {
        Err(ChangesError::NotARepository { .. }) if source != Source::Local => {
            ci_commit(source, env, sha.as_deref())?
        }
        other => other?,
    };
    if let Some(sha) = sha {
        commit.commit_hash = sha;
    }
    Ok(Some(BranchFacts { branch, commit }))
}

/// The commit's facts as the CI describes it, for runs without a checkout: GitLab's
/// `CI_COMMIT_*` variables, or on GitHub the pull request's head commit. The timestamp falls
/// back to now when the CI gives none (the branch deployment only shows it).
fn ci_commit(source: Source, env: Env, sha: Option<&str>) -> Result<CommitData, CiError> {
    let sha = sha
        .map(str::to_string)
        .ok_or_else(|| CiError::NoPullRequest {
            reason: "there is no git checkout here and the CI names no commit".into(),
        })?;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as f64)
            .unwrap_or(0.0)
    };
    let mut commit = CommitData {
        commit_hash: sha,
        timestamp: now(),
        ..Default::default()
    };
    if source == Source::Gitlab {
        if let Some(t) = var(env, "CI_COMMIT_TIMESTAMP").and_then(|t| rfc3339_seconds(&t)) {
            commit.timestamp = t;
        }
        commit.commit_message = var(env, "CI_COMMIT_TITLE");
        // `Name <email>`, as git prints an author.
        if let Some(author) = var(env, "CI_COMMIT_AUTHOR") {
            match author.rsplit_once(" <") {
                Some((name, email)) => {
                    commit.author_name = Some(name.trim().to_string());
                    commit.author_email = Some(email.trim_end_matches('>').to_string());
                }
                None => commit.author_name = Some(author),
            }
        }
    }
    Ok(commit)
}

/// Seconds since the epoch of an ISO 8601 time with a `Z` or numeric offset
/// (`2022-01-31T16:47:55Z`, `2022-01-31T16:47:55+01:00`).
fn rfc3339_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    let (local, offset) = match text.strip_suffix('Z') {
        Some(local) => (local, 0i64),
        None => {
            let at = text.len().checked_sub(6)?;
            let (local, off) = text.split_at(at);
            let sign = match off.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = off[1..].split_once(':')?;
            (
                local,
                sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60),
            )
        }
    };
    let utc = humantime::parse_rfc3339_weak(local).ok()?;
    let secs = utc.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some((secs - offset) as f64)
}

/// The GitHub pull request this run builds, as `(owner/name, number)`; `None` outside one or
/// when the event cannot be read (whoever needs the event's other facts reports that).
pub fn github_pull_request(env: Env) -> Option<(String, String)> {
    let event = read_event(Path::new(&var(env, "GITHUB_EVENT_PATH")?)).ok()?;
    let number = event.pointer("/pull_request/number")?.as_u64()?;
    let repo = event
        .pointer("/repository/full_name")
        .and_then(|v| v.as_str().map(str::to_string))
        .or_else(|| var(env, "GITHUB_REPOSITORY"))?;
    Some((repo, number.to_string()))
}

/// True when the run builds a pull (merge) request from a fork: CI gives such runs no
/// secrets, so they can plan and build but not deploy. An unreadable event is not a fork
/// (the deploy then fails on that event, saying why).
pub fn is_fork(source: Source, env: Env) -> bool {
    match source {
        Source::Github => {
            let Some(event) =
                var(env, "GITHUB_EVENT_PATH").and_then(|p| read_event(Path::new(&p)).ok())
            else {
                return false;
            };
            let head = event.pointer("/pull_request/head/repo");
            let base = event.pointer("/pull_request/base/repo");
            let name =
                |v: Option<&Value>| v.and_then(|r| r["full_name"].as_str().map(str::to_string));
            head.and_then(|r| r["fork"].as_bool()).unwrap_or(false)
                || matches!((name(head), name(base)), (Some(h), Some(b)) if h != b)
        }
        Source::Gitlab => matches!(
            (
                var(env, "CI_MERGE_REQUEST_SOURCE_PROJECT_ID"),
                var(env, "CI_MERGE_REQUEST_PROJECT_ID"),
            ),
            (Some(source), Some(target)) if source != target
        ),
        Source::Local => false,
    }
}

fn read_event(path: &Path) -> Result<Value, CiError> {
    let bytes = std::fs::read(path).map_err(|e| CiError::EventPayload {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| CiError::EventPayload {
        path: path.to_path_buf(),
        message: format!("not valid JSON: {e}"),
    })
}

/// `org/repo` from the last two segments of a remote URL (`git@host:org/repo.git`,
/// `https://host/org/repo`), as the reference names a local repository.
pub fn owner_and_repo(url: &str) -> Option<String> {
    let parts: Vec<&str> = url.trim().trim_end_matches('/').split([':', '/']).collect();
    let [.., owner, name] = parts.as_slice() else {
        return None;
    };
    let name = name.strip_suffix(".git").unwrap_or(name);
    (!owner.is_empty() && !name.is_empty()).then(|| format!("{owner}/{name}"))
}

/// HEAD's hash, committer timestamp, subject and author (what `git log -1` shows).
pub fn head_commit(dir: &Path) -> Result<CommitData, ChangesError> {
    let repo = Repo::discover(dir)?;
    let oid = repo.head_commit()?;
    let c = repo.repo.find_commit(oid).map_err(ChangesError::Git)?;
    Ok(CommitData {
        commit_hash: oid.to_string(),
        timestamp: c.committer().when().seconds() as f64,
        commit_message: c.summary().map(str::to_string),
        author_name: c.author().name().map(str::to_string),
        author_email: c.author().email().map(str::to_string),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::process::Command;

    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .env("GIT_AUTHOR_NAME", "Ada")
                .env("GIT_AUTHOR_EMAIL", "ada@example.com")
                .env("GIT_COMMITTER_NAME", "Ada")
                .env("GIT_COMMITTER_EMAIL", "ada@example.com")
                .env("GIT_COMMITTER_DATE", "1700000000 +0000")
                .status()
                .unwrap()
                .success();
            assert!(ok);
        };
        git(&["init", "-q", "-b", "feature/x"]);
        git(&["remote", "add", "origin", "git@github.com:acme/mono.git"]);
        git(&["commit", "-q", "--allow-empty", "-m", "Make it fast"]);
        dir
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| vars.get(k).cloned()
    }

    #[test]
    fn github_pull_request_event() {
        let dir = repo();
        let event = dir.path().join("event.json");
        std::fs::write(
            &event,
            r#"{"repository": {"full_name": "acme/mono"}, "pull_request": {"number": 12,
                "html_url": "https://github.com/acme/mono/pull/12", "state": "closed",
                "merged": true, "head": {"ref": "feature/x", "sha": "abc"}}}"#,
        )
        .unwrap();
        let e = env(&[("GITHUB_EVENT_PATH", event.to_str().unwrap())]);
        let facts = branch_facts(Source::Github, &e, dir.path(), false)
            .unwrap()
            .unwrap();
        assert_eq!(facts.branch.repo_name, "acme/mono");
        assert_eq!(facts.branch.pull_request_number.as_deref(), Some("12"));
        assert_eq!(facts.branch.pull_request_status.as_deref(), Some("MERGED"));
        assert_eq!(
            facts.branch.branch_url.as_deref(),
            Some("https://github.com/acme/mono/tree/feature/x")
        );
        assert_eq!(facts.commit.commit_hash, "abc");
        assert_eq!(facts.commit.timestamp, 1_700_000_000.0);
        assert_eq!(facts.commit.commit_message.as_deref(), Some("Make it fast"));
        let closed = branch_facts(Source::Github, &e, dir.path(), true)
            .unwrap()
            .unwrap();
        assert_eq!(closed.branch.pull_request_status.as_deref(), Some("CLOSED"));

        std::fs::write(&event, r#"{"repository": {"full_name": "acme/mono"}}"#).unwrap();
        assert_eq!(
            branch_facts(Source::Github, &e, dir.path(), false).unwrap(),
            None
        );
        std::fs::write(&event, "{").unwrap();
        let err = branch_facts(Source::Github, &e, dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("event.json"), "{err}");
    }

    #[test]
    fn gitlab_merge_request_and_local_branch() {
        let dir = repo();
        let e = env(&[
            ("CI_MERGE_REQUEST_IID", "7"),
            ("CI_PROJECT_URL", "https://gitlab.example/g/mono"),
            ("CI_PROJECT_NAME", "mono"),
            ("CI_COMMIT_REF_NAME", "feature/x"),
            ("CI_COMMIT_SHA", "def"),
        ]);
        let facts = branch_facts(Source::Gitlab, &e, dir.path(), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            facts.branch.pull_request_url.as_deref(),
            Some("https://gitlab.example/g/mono/-/merge_requests/7")
        );
        assert_eq!(facts.commit.commit_hash, "def");
        assert_eq!(
            branch_facts(Source::Gitlab, &env(&[]), dir.path(), false).unwrap(),
            None
        );

        let local = branch_facts(Source::Local, &env(&[]), dir.path(), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                local.branch.repo_name.as_str(),
                local.branch.branch_name.as_str()
            ),
            ("acme/mono", "feature/x")
        );
        assert_eq!(local.branch.pull_request_status.as_deref(), Some("OPEN"));
        assert_eq!(owner_and_repo("https://h/a/b.git").as_deref(), Some("a/b"));
        assert_eq!(owner_and_repo("b"), None);
    }

    /// A GitLab stop job runs with `GIT_STRATEGY: none`: no checkout, only CI variables.
    #[test]
    fn gitlab_merge_request_without_a_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(&[
            ("CI_MERGE_REQUEST_IID", "7"),
            ("CI_PROJECT_URL", "https://gitlab.example/g/mono"),
            ("CI_PROJECT_NAME", "mono"),
            ("CI_COMMIT_REF_NAME", "feature/x"),
            ("CI_COMMIT_SHA", "def"),
            ("CI_COMMIT_TIMESTAMP", "2023-11-14T23:13:20+01:00"),
            ("CI_COMMIT_TITLE", "Make it fast"),
            ("CI_COMMIT_AUTHOR", "Ada Lovelace <ada@example.com>"),
        ]);
        let facts = branch_facts(Source::Gitlab, &e, dir.path(), true)
            .unwrap()
            .unwrap();
        assert_eq!(facts.branch.pull_request_status.as_deref(), Some("CLOSED"));
        assert_eq!(facts.commit.commit_hash, "def");
        assert_eq!(facts.commit.timestamp, 1_700_000_000.0);
        assert_eq!(facts.commit.commit_message.as_deref(), Some("Make it fast"));
        assert_eq!(facts.commit.author_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(
            facts.commit.author_email.as_deref(),
            Some("ada@example.com")
        );
        // Outside CI a branch deployment still needs the checkout, and says so.
        let err = branch_facts(Source::Local, &env(&[]), dir.path(), true).unwrap_err();
        assert!(
            err.to_string().contains("not inside a git repository"),
            "{err}"
        );
        assert_eq!(
            rfc3339_seconds("2023-11-14T22:13:20Z"),
            Some(1_700_000_000.0)
        );
        assert_eq!(rfc3339_seconds("yesterday"), None);
    }
}
