//! Choosing the base revision: `--base`, else the CI event, else the merge-base with the
//! default branch.
//!
//! Outside CI events the rule is: the merge-base of HEAD with the default branch
//! (`origin/HEAD`'s target, else `origin/main`, `origin/master`, `main`, `master`). When that
//! merge-base is HEAD itself (HEAD *is* the default branch tip, or behind it) the base is
//! HEAD's first parent, i.e. "what the last commit changed" (plus, on a laptop, the uncommitted
//! changes). A feature branch thus compares with its branch point, and a default branch with
//! unpushed commits with `origin/<default>`. `@{upstream}` is not consulted: for a feature
//! branch it would hide the already pushed part of the branch.
//!
//! There is no base (everything is built) when the CI gives the all-zero SHA (first push), when
//! a base commit is not in a shallow clone, when no default branch exists, and for a first
//! commit; the reason says why and what to do.

use git2::{ErrorCode, Oid};

use super::{Base, BaseSource, ChangesError, Repo};

/// The base revision a CI event names (a SHA as the CI gave it, possibly all zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBase {
    pub sha: String,
    pub source: BaseSource,
}

/// Branches tried, in order, after `origin/HEAD`'s target.
const DEFAULT_BRANCHES: &[&str] = &[
    "refs/remotes/origin/main",
    "refs/remotes/origin/master",
    "refs/heads/main",
    "refs/heads/master",
];

/// Picks the base: `explicit` (`--base`; an unknown revision is an error), else the base the
/// CI event gives (`event`, see `ci::context`), else the merge-base with the default branch
/// (see the module docs).
///
/// For a GitHub pull request (or merge queue) the base is the merge-base of the event's base
/// SHA and HEAD (the same commit when HEAD is GitHub's merge commit; the branch point when
/// HEAD is the pull request's head), so changes that landed on the base branch meanwhile do
/// not count; `rev` stays the SHA the event gave.
pub fn choose_base(
    repo: &Repo,
    explicit: Option<&str>,
    event: Option<&EventBase>,
) -> Result<Base, ChangesError> {
    if let Some(rev) = explicit {
        return flag_base(repo, rev).map_err(|e| e.given_to("--base"));
    }
    if let Some(event) = event {
        return ci_event_base(repo, event);
    }
    default_base(repo)
}

fn flag_base(repo: &Repo, rev: &str) -> Result<Base, ChangesError> {
    if is_zero_sha(rev) {
        return Ok(Base::Missing {
            reason: "--base is the all-zero SHA (a first push has no previous commit); \
                     everything is built"
                .into(),
        });
    }
    match repo.resolve(rev) {
        Ok(oid) => Ok(Base::Commit {
            oid,
            rev: rev.to_string(),
            source: BaseSource::Flag,
        }),
        // `HEAD~1` past the boundary of a shallow clone, or a SHA it did not fetch.
        Err(ChangesError::UnknownRevision { rev, flag })
            if repo.is_shallow() && (looks_like_sha(&rev) || rev.contains(['~', '^'])) =>
        {
            Err(ChangesError::NotInShallowClone { rev, flag })
        }
        Err(e) => Err(e),
    }
}

fn ci_event_base(repo: &Repo, ci: &EventBase) -> Result<Base, ChangesError> {
    let what = match ci.source {
        BaseSource::GithubPullRequest => "the pull request's base commit",
        BaseSource::GithubMergeGroup => "the merge group's base commit (`merge_group.base_sha`)",
        BaseSource::GithubPush => "the push's previous commit (`before`)",
        BaseSource::GitlabMergeRequest => {
            "the merge request's diff base (CI_MERGE_REQUEST_DIFF_BASE_SHA)"
        }
        BaseSource::GitlabPush => "the push's previous commit (CI_COMMIT_BEFORE_SHA)",
        _ => "the CI base commit",
    };
    if is_zero_sha(&ci.sha) {
        return Ok(Base::Missing {
            reason: format!(
                "{what} is the all-zero SHA: a first push of this branch or tag, or a run not \
                 started by a push, has nothing to compare with; everything is built \
                 (pass --base REV to compare with a revision of your choice)"
            ),
        });
    }
    let oid = match repo.resolve(&ci.sha) {
        Ok(oid) => oid,
        Err(ChangesError::UnknownRevision { .. } | ChangesError::NotACommit { .. }) => {
            return Ok(Base::Missing {
                reason: not_fetched(repo, &format!("{what} {}", short_sha(&ci.sha)), &ci.source),
            });
        }
        Err(e) => return Err(e),
    };
    let oid = if matches!(
        ci.source,
        BaseSource::GithubPullRequest | BaseSource::GithubMergeGroup
    ) {
        let head = repo.head_commit()?;
        repo.repo.merge_base(oid, head).unwrap_or(oid)
    } else {
        oid
    };
    Ok(Base::Commit {
        oid,
        rev: ci.sha.clone(),
        source: ci.source.clone(),
    })
}

fn default_base(repo: &Repo) -> Result<Base, ChangesError> {
    let head = repo.head_commit()?;
    let Some((name, tip)) = default_branch(repo) else {
        return Ok(Base::Missing {
            reason: "no default branch found (looked for origin/HEAD, origin/main, \
                     origin/master, main, master); pass --base REV"
                .into(),
        });
    };
    match repo.repo.merge_base(head, tip) {
        Ok(mb) if mb != head => Ok(Base::Commit {
            oid: mb,
            rev: name,
            source: BaseSource::MergeBase,
        }),
        Ok(_) => first_parent(repo, head),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(Base::Missing {
            reason: if repo.is_shallow() {
                format!(
                    "HEAD and {name} have no common ancestor in this shallow clone; {}",
                    FETCH_ALL
                )
            } else {
                format!("HEAD and {name} have no common ancestor; pass --base REV")
            },
        }),
        Err(e) => Err(e.into()),
    }
}

/// The first default-branch candidate that exists, as a short name and its commit.
fn default_branch(repo: &Repo) -> Option<(String, Oid)> {
    let origin_head = repo
        .repo
        .find_reference("refs/remotes/origin/HEAD")
        .ok()
        .and_then(|r| r.symbolic_target().map(str::to_string));
    origin_head
        .iter()
        .map(String::as_str)
        .chain(DEFAULT_BRANCHES.iter().copied())
        .find_map(|full| {
            let commit = repo.repo.find_reference(full).ok()?.peel_to_commit().ok()?;
            let short = full
                .strip_prefix("refs/remotes/")
                .or_else(|| full.strip_prefix("refs/heads/"))
                .unwrap_or(full);
            Some((short.to_string(), commit.id()))
        })
}

fn first_parent(repo: &Repo, head: Oid) -> Result<Base, ChangesError> {
    let commit = repo.repo.find_commit(head)?;
    let parent = (commit.parent_count() > 0)
        .then(|| commit.parent_id(0).ok())
        .flatten()
        .filter(|p| repo.has_commit(*p));
    match parent {
        Some(oid) => Ok(Base::Commit {
            oid,
            rev: "HEAD~1".into(),
            source: BaseSource::FirstParent,
        }),
        None if repo.is_shallow() => Ok(Base::Missing {
            reason: format!(
                "HEAD is on the default branch and its parent is not in this shallow clone; {FETCH_ALL}"
            ),
        }),
        None => Ok(Base::Missing {
            reason: "HEAD is the first commit: there is nothing to compare with; everything \
                     is built"
                .into(),
        }),
    }
}

const FETCH_ALL: &str = "fetch full history (actions/checkout `fetch-depth: 0`, GitLab \
                         `GIT_DEPTH: 0`, or `git fetch --unshallow`) or pass --base REV";

/// Why a base commit the CI named is absent, and how to get it.
fn not_fetched(repo: &Repo, what: &str, source: &BaseSource) -> String {
    if repo.is_shallow() {
        let how = match source {
            BaseSource::GithubPullRequest
            | BaseSource::GithubMergeGroup
            | BaseSource::GithubPush => "fetch full history (actions/checkout `fetch-depth: 0`)",
            BaseSource::GitlabMergeRequest | BaseSource::GitlabPush => {
                "fetch full history (set `GIT_DEPTH: 0`)"
            }
            _ => "fetch full history (`git fetch --unshallow`)",
        };
        format!("{what} is not in this shallow clone; {how}")
    } else {
        format!(
            "{what} is not in the repository (force-pushed away, or not fetched); \
             fetch it or pass --base REV"
        )
    }
}

fn is_zero_sha(s: &str) -> bool {
    let s = s.trim();
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b == b'0')
}

fn looks_like_sha(s: &str) -> bool {
    (4..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The first 7 characters of a SHA, as git shows it.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}
