//! CI context detection from environment variables and the GitHub event payload.

use std::collections::HashMap;

use dagster_deploy::changes::BaseSource;
use dagster_deploy::ci::context::{CiBase, CiContext, CiError, CiProvider};

fn detect(vars: &[(&str, &str)]) -> CiContext {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    CiContext::detect(&|name: &str| map.get(name).cloned())
}

fn payload(json: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("event.json");
    std::fs::write(&path, json).unwrap();
    (dir, path.display().to_string())
}

#[test]
fn outside_ci() {
    let ctx = detect(&[("HOME", "/root"), ("CI", "false")]);
    assert!(!ctx.is_ci());
    assert_eq!(ctx, CiContext::none());
}

#[test]
fn providers_by_marker_variable() {
    let cases = [
        ("GITHUB_ACTIONS", "true", CiProvider::Github, "github"),
        ("GITLAB_CI", "true", CiProvider::Gitlab, "gitlab"),
        (
            "BITBUCKET_BUILD_NUMBER",
            "17",
            CiProvider::Bitbucket,
            "bitbucket",
        ),
        ("BUILDKITE", "true", CiProvider::Buildkite, "buildkite"),
        ("CIRCLECI", "true", CiProvider::CircleCi, "circle-ci"),
        (
            "CODEBUILD_BUILD_ID",
            "proj:1",
            CiProvider::Codebuild,
            "codebuild",
        ),
        (
            "JENKINS_URL",
            "https://ci.example.com/",
            CiProvider::Jenkins,
            "jenkins",
        ),
        ("CI", "true", CiProvider::Generic, "generic"),
        ("CI", "1", CiProvider::Generic, "generic"),
    ];
    for (var, value, provider, name) in cases {
        let ctx = detect(&[(var, value)]);
        assert_eq!(ctx.provider, Some(provider), "{var}");
        assert_eq!(provider.name(), name);
        assert!(ctx.is_ci());
        assert_eq!(ctx.base, Ok(None), "{var}");
    }
    // A specific marker wins over the generic CI=true.
    let ctx = detect(&[("CI", "true"), ("GITLAB_CI", "true")]);
    assert_eq!(ctx.provider, Some(CiProvider::Gitlab));
}

#[test]
fn github_pull_request_payload_gives_the_base_sha() {
    let (_dir, path) = payload(
        r#"{"action":"synchronize","before":"1111111111111111111111111111111111111111",
            "number":7,
            "pull_request":{"number":7,"base":{"ref":"main","sha":"abcdefabcdefabcdefabcdefabcdefabcdefabcd"},
                            "head":{"ref":"feature","sha":"2222222222222222222222222222222222222222"}}}"#,
    );
    let ctx = detect(&[("GITHUB_ACTIONS", "true"), ("GITHUB_EVENT_PATH", &path)]);
    assert_eq!(
        ctx.base,
        Ok(Some(CiBase {
            sha: "abcdefabcdefabcdefabcdefabcdefabcdefabcd".into(),
            source: BaseSource::GithubPullRequest,
        }))
    );
}

#[test]
fn github_push_payload_gives_before() {
    let (_dir, path) = payload(
        r#"{"ref":"refs/heads/main","before":"3333333333333333333333333333333333333333",
            "after":"4444444444444444444444444444444444444444","created":false}"#,
    );
    let ctx = detect(&[("GITHUB_ACTIONS", "true"), ("GITHUB_EVENT_PATH", &path)]);
    assert_eq!(
        ctx.base,
        Ok(Some(CiBase {
            sha: "3333333333333333333333333333333333333333".into(),
            source: BaseSource::GithubPush,
        }))
    );
}

#[test]
fn github_events_without_a_base_and_without_a_payload() {
    let (_dir, path) = payload(r#"{"inputs":{},"ref":"refs/heads/main"}"#);
    let ctx = detect(&[("GITHUB_ACTIONS", "true"), ("GITHUB_EVENT_PATH", &path)]);
    assert_eq!(
        (ctx.provider, ctx.base),
        (Some(CiProvider::Github), Ok(None))
    );
    let ctx = detect(&[("GITHUB_ACTIONS", "true")]);
    assert_eq!(ctx.base, Ok(None));
}

#[test]
fn github_merge_group_payload_gives_the_queue_base() {
    let (_dir, path) = payload(
        r#"{"action":"checks_requested","merge_group":{"head_sha":"7777777777777777777777777777777777777777",
            "head_ref":"refs/heads/gh-readonly-queue/main/pr-1","base_sha":"8888888888888888888888888888888888888888",
            "base_ref":"refs/heads/main"}}"#,
    );
    let ctx = detect(&[("GITHUB_ACTIONS", "true"), ("GITHUB_EVENT_PATH", &path)]);
    assert_eq!(
        ctx.base,
        Ok(Some(CiBase {
            sha: "8888888888888888888888888888888888888888".into(),
            source: BaseSource::GithubMergeGroup,
        }))
    );
}

#[test]
fn unreadable_github_payload_is_an_error_naming_the_file() {
    // Detection itself succeeds: only asking for the event's base fails.
    let ctx = detect(&[
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_PATH", "/nonexistent/event.json"),
    ]);
    assert_eq!(ctx.provider, Some(CiProvider::Github));
    let err = ctx.base.unwrap_err();
    assert!(matches!(err, CiError::EventPayload { .. }));
    assert!(err.to_string().contains("/nonexistent/event.json"), "{err}");

    let (_dir, path) = payload("{not json");
    let err = detect(&[("GITHUB_ACTIONS", "true"), ("GITHUB_EVENT_PATH", &path)])
        .base
        .unwrap_err();
    assert!(err.to_string().contains(&path), "{err}");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
}

#[test]
fn gitlab_merge_request_then_push_variables() {
    let ctx = detect(&[
        ("GITLAB_CI", "true"),
        (
            "CI_MERGE_REQUEST_DIFF_BASE_SHA",
            "5555555555555555555555555555555555555555",
        ),
        (
            "CI_COMMIT_BEFORE_SHA",
            "0000000000000000000000000000000000000000",
        ),
    ]);
    assert_eq!(
        ctx.base,
        Ok(Some(CiBase {
            sha: "5555555555555555555555555555555555555555".into(),
            source: BaseSource::GitlabMergeRequest,
        }))
    );
    let ctx = detect(&[
        ("GITLAB_CI", "true"),
        ("CI_MERGE_REQUEST_DIFF_BASE_SHA", ""),
        (
            "CI_COMMIT_BEFORE_SHA",
            "6666666666666666666666666666666666666666",
        ),
    ]);
    assert_eq!(
        ctx.base,
        Ok(Some(CiBase {
            sha: "6666666666666666666666666666666666666666".into(),
            source: BaseSource::GitlabPush,
        }))
    );
}

#[test]
fn other_providers_variables_are_not_read_as_base_facts() {
    // GitLab variables on GitHub (e.g. leaked into the environment) are ignored.
    let ctx = detect(&[
        ("GITHUB_ACTIONS", "true"),
        (
            "CI_COMMIT_BEFORE_SHA",
            "6666666666666666666666666666666666666666",
        ),
    ]);
    assert_eq!(ctx.base, Ok(None));
}
