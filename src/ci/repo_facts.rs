//! Which repository and branch a deploy runs against, recorded in every location document's
//! `git` field. Discovered as the reference CLI does (its `git_repo_context`): CI variables
//! first, since the provider sets them from its own event, then the `origin` remote. Best
//! effort: what cannot be told is left out.

use git2::Repository;

use crate::api::document::GitMetadata;

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The `git` facts for documents deploying `commit` from `repo`.
pub fn discover(repo: &Repository, commit: &str, env: Env) -> GitMetadata {
    let origin = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().map(str::to_string));
    let (repo_owner, repo_name) = owner_and_name(env, origin.as_deref()).unzip();
    GitMetadata {
        commit_hash: Some(commit.to_string()),
        url: browse_url(env, commit),
        provider: provider(env, origin.as_deref()),
        repo_owner,
        repo_name,
        base_branch: base_branch(repo, env),
        defs_base_path: None,
    }
}

fn var(env: Env, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The commit's page: what the reference's GitHub action and GitLab template pass as
/// `--git-url`.
fn browse_url(env: Env, commit: &str) -> Option<String> {
    if let (Some(server), Some(repository)) =
        (var(env, "GITHUB_SERVER_URL"), var(env, "GITHUB_REPOSITORY"))
    {
        return Some(format!(
            "{}/{repository}/tree/{commit}",
            server.trim_end_matches('/')
        ));
    }
    var(env, "CI_PROJECT_URL")
        .map(|project| format!("{}/-/tree/{commit}", project.trim_end_matches('/')))
}

/// `owner/repo` from `GITHUB_REPOSITORY` / `CI_PROJECT_PATH`, else from the origin URL. The owner
/// may span segments (GitLab groups nest).
fn owner_and_name(env: Env, origin: Option<&str>) -> Option<(String, String)> {
    let split = |path: &str| {
        let (owner, name) = path.rsplit_once('/')?;
        (!owner.is_empty() && !name.is_empty()).then(|| (owner.to_string(), name.to_string()))
    };
    if let Some(path) = var(env, "GITHUB_REPOSITORY").or_else(|| var(env, "CI_PROJECT_PATH"))
        && let Some(pair) = split(&path)
    {
        return Some(pair);
    }
    split(remote_path(origin?)?.as_str())
}

/// `acme/proj` from `git@host:acme/proj.git`, `https://host/acme/proj.git`,
/// `ssh://git@host/acme/proj`.
fn remote_path(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = if let Some((_, after_scheme)) = url.split_once("://") {
        after_scheme.split_once('/')?.1
    } else {
        // scp-like: user@host:path
        let (before, path) = url.split_once(':')?;
        if before.contains('/') {
            return None;
        }
        path
    };
    let path = rest.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    path.contains('/').then(|| path.to_string())
}

fn remote_host(url: &str) -> String {
    let url = url.trim();
    let host = match url.split_once("://") {
        Some((_, rest)) => rest.split('/').next().unwrap_or(""),
        None => url.split(':').next().unwrap_or(""),
    };
    let host = host.rsplit('@').next().unwrap_or(host);
    host.split(':').next().unwrap_or(host).to_ascii_lowercase()
}

/// `github` or `gitlab`: from the CI system (a self-hosted GitLab's name need not say so),
/// else from the origin's host.
fn provider(env: Env, origin: Option<&str>) -> Option<String> {
    if var(env, "GITLAB_CI").is_some() {
        return Some("gitlab".into());
    }
    if var(env, "GITHUB_ACTIONS").is_some() {
        return Some("github".into());
    }
    let host = remote_host(origin?);
    ["gitlab", "github"]
        .into_iter()
        .find(|p| host.contains(p))
        .map(str::to_string)
}

/// The branch pull requests target, never the checked-out feature branch: the PR/MR target,
/// GitLab's default branch, a push to GitHub's default branch, else `origin/HEAD`.
fn base_branch(repo: &Repository, env: Env) -> Option<String> {
    if let Some(target) = var(env, "GITHUB_BASE_REF")
        .or_else(|| var(env, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"))
        .or_else(|| var(env, "CI_DEFAULT_BRANCH"))
    {
        return Some(target);
    }
    if let Some(name) = var(env, "GITHUB_REF_NAME")
        && var(env, "GITHUB_EVENT_NAME").as_deref() == Some("push")
        && var(env, "GITHUB_REF_TYPE").as_deref() == Some("branch")
        && github_default_branch(env).as_deref() == Some(name.as_str())
    {
        return Some(name);
    }
    let head = repo.find_reference("refs/remotes/origin/HEAD").ok()?;
    let target = head.symbolic_target()?;
    target
        .strip_prefix("refs/remotes/origin/")
        .map(str::to_string)
}

fn github_default_branch(env: Env) -> Option<String> {
    let text = std::fs::read(var(env, "GITHUB_EVENT_PATH")?).ok()?;
    let event: serde_json::Value = serde_json::from_slice(&text).ok()?;
    event
        .pointer("/repository/default_branch")
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn repo_with_origin(url: Option<&str>) -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Repository::init(dir.path()).expect("init");
        if let Some(url) = url {
            repo.remote("origin", url).expect("remote");
        }
        (dir, repo)
    }

    #[test]
    fn remote_urls_of_every_shape_give_owner_and_name() {
        for (url, owner, name) in [
            ("git@github.com:acme/proj.git", "acme", "proj"),
            ("https://github.com/acme/proj.git", "acme", "proj"),
            ("https://github.com/acme/proj/", "acme", "proj"),
            (
                "ssh://git@gitlab.example.com:2222/group/sub/proj",
                "group/sub",
                "proj",
            ),
        ] {
            assert_eq!(
                owner_and_name(&env(&[]), Some(url)),
                Some((owner.to_string(), name.to_string())),
                "{url}"
            );
        }
        assert_eq!(owner_and_name(&env(&[]), Some("/srv/git/proj")), None);
        assert_eq!(
            remote_host("ssh://git@gitlab.example.com:2222/g/p"),
            "gitlab.example.com"
        );
        assert_eq!(remote_host("git@GitHub.com:acme/p.git"), "github.com");
    }

    #[test]
    fn github_actions_variables_win_over_the_remote() {
        let (_d, repo) = repo_with_origin(Some("git@gitlab.com:other/thing.git"));
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/mono"),
            ("GITHUB_BASE_REF", "main"),
        ]);
        let g = discover(&repo, "abc123", &e);
        assert_eq!(g.commit_hash.as_deref(), Some("abc123"));
        assert_eq!(
            g.url.as_deref(),
            Some("https://github.com/acme/mono/tree/abc123")
        );
        assert_eq!(g.provider.as_deref(), Some("github"));
        assert_eq!(g.repo_owner.as_deref(), Some("acme"));
        assert_eq!(g.repo_name.as_deref(), Some("mono"));
        assert_eq!(g.base_branch.as_deref(), Some("main"));
    }

    #[test]
    fn gitlab_merge_requests_give_project_url_and_target_branch() {
        let (_d, repo) = repo_with_origin(None);
        let e = env(&[
            ("GITLAB_CI", "true"),
            ("CI_PROJECT_URL", "https://git.corp/data/platform/mono"),
            ("CI_PROJECT_PATH", "data/platform/mono"),
            ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "trunk"),
            ("CI_DEFAULT_BRANCH", "main"),
        ]);
        let g = discover(&repo, "def", &e);
        assert_eq!(
            g.url.as_deref(),
            Some("https://git.corp/data/platform/mono/-/tree/def")
        );
        assert_eq!(g.provider.as_deref(), Some("gitlab"));
        assert_eq!(g.repo_owner.as_deref(), Some("data/platform"));
        assert_eq!(g.base_branch.as_deref(), Some("trunk"));
    }

    #[test]
    fn on_a_laptop_the_origin_remote_and_its_head_are_used() {
        let (_d, repo) = repo_with_origin(Some("https://github.com/acme/mono.git"));
        repo.reference_symbolic(
            "refs/remotes/origin/HEAD",
            "refs/remotes/origin/develop",
            true,
            "test",
        )
        .expect("symbolic ref");
        let g = discover(&repo, "abc", &env(&[]));
        assert_eq!(g.url, None);
        assert_eq!(g.provider.as_deref(), Some("github"));
        assert_eq!(g.repo_name.as_deref(), Some("mono"));
        assert_eq!(g.base_branch.as_deref(), Some("develop"));
    }

    #[test]
    fn a_push_to_a_feature_branch_is_not_the_base_branch() {
        let (_d, repo) = repo_with_origin(None);
        let e = env(&[
            ("GITHUB_REF_NAME", "feature"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REF_TYPE", "branch"),
        ]);
        assert_eq!(discover(&repo, "a", &e).base_branch, None);
    }
}
