//! Choosing the base revision: flag, CI event, merge-base, and the cases without a base.

mod support;

use dagster_deploy::changes::EventBase;
use dagster_deploy::changes::{Base, BaseSource, ChangesError, Repo, choose_base};
use support::{TestRepo, git_in, oid};

const ZERO: &str = "0000000000000000000000000000000000000000";

fn ci(sha: &str, source: BaseSource) -> Option<EventBase> {
    Some(EventBase {
        sha: sha.to_string(),
        source,
    })
}

fn expect_commit(base: Base) -> (git2::Oid, String, BaseSource) {
    match base {
        Base::Commit { oid, rev, source } => (oid, rev, source),
        Base::Missing { reason } => panic!("expected a base commit, got Missing: {reason}"),
    }
}

fn expect_missing(base: Base) -> String {
    match base {
        Base::Missing { reason } => reason,
        other => panic!("expected Missing, got {other:?}"),
    }
}

/// main: a - b ; feature (checked out): b - c - d ; main then moves on: b - e.
fn feature_repo() -> (TestRepo, [String; 5]) {
    let t = TestRepo::new();
    t.write("a.txt", "a\n");
    let a = t.commit("a");
    t.write("b.txt", "b\n");
    let b = t.commit("b");
    t.git(&["checkout", "-q", "-b", "feature"]);
    t.write("c.txt", "c\n");
    let c = t.commit("c");
    t.write("d.txt", "d\n");
    let d = t.commit("d");
    t.git(&["checkout", "-q", "main"]);
    t.write("e.txt", "e\n");
    let e = t.commit("e");
    t.git(&["checkout", "-q", "feature"]);
    (t, [a, b, c, d, e])
}

#[test]
fn explicit_base_wins_and_accepts_any_revspec() {
    let (t, [a, _, c, ..]) = feature_repo();
    let repo = t.open();
    let github = ci(&c, BaseSource::GithubPush);
    let (got, rev, source) =
        expect_commit(choose_base(&repo, Some("main~1"), github.as_ref()).unwrap());
    assert_eq!(got, repo.resolve("main~1").unwrap());
    assert_eq!((rev.as_str(), source), ("main~1", BaseSource::Flag));
    let (got, ..) = expect_commit(choose_base(&repo, Some(&a[..10]), github.as_ref()).unwrap());
    assert_eq!(got, oid(&a));
}

#[test]
fn unknown_explicit_base_is_an_error() {
    let (t, _) = feature_repo();
    let repo = t.open();
    let err = choose_base(&repo, Some("no-such-branch"), None).unwrap_err();
    assert!(matches!(&err, ChangesError::UnknownRevision { rev, .. } if rev == "no-such-branch"));
    assert_eq!(
        err.to_string(),
        "unknown revision `no-such-branch` (given to --base)"
    );
    // A well-formed SHA whose object is absent is unknown as well.
    let absent = "1234567890abcdef1234567890abcdef12345678";
    assert!(matches!(
        repo.resolve(absent),
        Err(ChangesError::UnknownRevision { rev, .. }) if rev == absent
    ));
}

#[test]
fn resolve_rejects_non_commits_and_handles_tags() {
    let (t, [a, ..]) = feature_repo();
    t.git(&["tag", "-a", "-m", "v1", "v1", &a]);
    let repo = t.open();
    assert_eq!(repo.resolve("v1").unwrap(), oid(&a));
    assert!(matches!(
        repo.resolve("HEAD:a.txt"),
        Err(ChangesError::NotACommit { .. })
    ));
}

#[test]
fn merge_base_with_the_default_branch_on_a_feature_branch() {
    let (t, [_, b, ..]) = feature_repo();
    let (got, rev, source) = expect_commit(choose_base(&t.open(), None, None).unwrap());
    assert_eq!(got, oid(&b));
    assert_eq!((rev.as_str(), source), ("main", BaseSource::MergeBase));
}

#[test]
fn origin_head_is_preferred_over_local_branches() {
    let (t, [_, _, _, _, e]) = feature_repo();
    t.git(&["checkout", "-q", "main"]); // the clone's origin/HEAD follows this
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", t.path().display());
    git_in(clone.path(), &["clone", "-q", "-b", "main", &url, "c"]);
    let work = clone.path().join("c");
    git_in(&work, &["checkout", "-q", "-b", "topic"]);
    std::fs::write(work.join("t.txt"), "t\n").unwrap();
    git_in(&work, &["add", "-A"]);
    git_in(&work, &["commit", "-q", "-m", "topic"]);
    // A stale local `main` must not be used while origin/HEAD exists.
    git_in(&work, &["branch", "-f", "main", "HEAD~2"]);
    let repo = Repo::discover(&work).unwrap();
    let (got, rev, source) = expect_commit(choose_base(&repo, None, None).unwrap());
    assert_eq!(got, oid(&e));
    assert_eq!(
        (rev.as_str(), source),
        ("origin/main", BaseSource::MergeBase)
    );
}

#[test]
fn on_the_default_branch_tip_the_base_is_the_first_parent() {
    let (t, [_, b, _, _, e]) = feature_repo();
    t.git(&["checkout", "-q", "main"]);
    let (got, rev, source) = expect_commit(choose_base(&t.open(), None, None).unwrap());
    assert_eq!(got, oid(&b));
    assert_ne!(got, oid(&e));
    assert_eq!((rev.as_str(), source), ("HEAD~1", BaseSource::FirstParent));
}

#[test]
fn single_commit_repository_has_no_base() {
    let t = TestRepo::new();
    t.write("a.txt", "a\n");
    t.commit("only");
    let reason = expect_missing(choose_base(&t.open(), None, None).unwrap());
    assert!(reason.contains("first commit"), "{reason}");
}

#[test]
fn no_default_branch_means_no_base() {
    let t = TestRepo::new();
    t.git(&["checkout", "-q", "-b", "trunk"]);
    t.write("a.txt", "a\n");
    t.commit("one");
    t.write("a.txt", "b\n");
    t.commit("two");
    let reason = expect_missing(choose_base(&t.open(), None, None).unwrap());
    assert!(reason.contains("no default branch"), "{reason}");
    assert!(reason.contains("--base"), "{reason}");
}

#[test]
fn github_push_uses_before() {
    let (t, [_, _, c, ..]) = feature_repo();
    let ctx = ci(&c, BaseSource::GithubPush);
    let (got, rev, source) = expect_commit(choose_base(&t.open(), None, ctx.as_ref()).unwrap());
    assert_eq!(got, oid(&c));
    assert_eq!((rev, source), (c.clone(), BaseSource::GithubPush));
}

#[test]
fn github_pull_request_uses_the_merge_base_of_base_sha_and_head() {
    // HEAD is the pull request head (feature), the base branch moved on to e.
    let (t, [_, b, _, _, e]) = feature_repo();
    let ctx = ci(&e, BaseSource::GithubPullRequest);
    let (got, rev, source) = expect_commit(choose_base(&t.open(), None, ctx.as_ref()).unwrap());
    assert_eq!(got, oid(&b));
    assert_eq!((rev, source), (e.clone(), BaseSource::GithubPullRequest));

    // HEAD is GitHub's merge commit: the base is base.sha itself.
    t.git(&["checkout", "-q", "--detach", &e]);
    t.git(&["merge", "-q", "--no-ff", "-m", "merge pr", "feature"]);
    let (got, ..) = expect_commit(choose_base(&t.open(), None, ctx.as_ref()).unwrap());
    assert_eq!(got, oid(&e));
}

#[test]
fn gitlab_merge_request_and_push() {
    let (t, [a, b, ..]) = feature_repo();
    let repo = t.open();
    let mr = ci(&a, BaseSource::GitlabMergeRequest);
    let (got, _, source) = expect_commit(choose_base(&repo, None, mr.as_ref()).unwrap());
    assert_eq!((got, source), (oid(&a), BaseSource::GitlabMergeRequest));
    let push = ci(&b, BaseSource::GitlabPush);
    let (got, _, source) = expect_commit(choose_base(&repo, None, push.as_ref()).unwrap());
    assert_eq!((got, source), (oid(&b), BaseSource::GitlabPush));
}

#[test]
fn all_zero_before_means_no_base() {
    let (t, _) = feature_repo();
    let repo = t.open();
    for source in [BaseSource::GithubPush, BaseSource::GitlabPush] {
        let reason = expect_missing(choose_base(&repo, None, ci(ZERO, source).as_ref()).unwrap());
        assert!(reason.contains("all-zero SHA"), "{reason}");
        assert!(reason.contains("first push"), "{reason}");
    }
    let reason = expect_missing(choose_base(&repo, Some(ZERO), None).unwrap());
    assert!(reason.contains("all-zero"), "{reason}");
}

#[test]
fn shallow_clone_without_the_base_commit_says_how_to_fetch_it() {
    let (t, [a, ..]) = feature_repo();
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", t.path().display());
    git_in(
        clone.path(),
        &["clone", "-q", "--depth", "1", "-b", "feature", &url, "c"],
    );
    let repo = Repo::discover(&clone.path().join("c")).unwrap();
    assert!(repo.is_shallow());

    let ctx = ci(&a, BaseSource::GithubPush);
    let reason = expect_missing(choose_base(&repo, None, ctx.as_ref()).unwrap());
    assert!(reason.contains(&a[..7]), "{reason}");
    assert!(reason.contains("shallow clone"), "{reason}");
    assert!(reason.contains("fetch-depth: 0"), "{reason}");

    let ctx = ci(&a, BaseSource::GitlabMergeRequest);
    let reason = expect_missing(choose_base(&repo, None, ctx.as_ref()).unwrap());
    assert!(reason.contains("GIT_DEPTH: 0"), "{reason}");

    // No CI facts: the default branch is absent from this clone, HEAD's parent too.
    let reason = expect_missing(choose_base(&repo, None, None).unwrap());
    assert!(!reason.is_empty());

    // An explicit SHA that the shallow clone lacks is an error that says so.
    let err = choose_base(&repo, Some(&a), None).unwrap_err();
    assert!(
        matches!(err, ChangesError::NotInShallowClone { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("fetch-depth: 0"));
}

#[test]
fn shallow_clone_with_the_default_branch_but_no_common_ancestor() {
    let (t, _) = feature_repo();
    t.git(&["checkout", "-q", "main"]);
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", t.path().display());
    git_in(
        clone.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            "--no-single-branch",
            &url,
            "c",
        ],
    );
    let work = clone.path().join("c");
    git_in(&work, &["checkout", "-q", "feature"]);
    let repo = Repo::discover(&work).unwrap();
    let reason = expect_missing(choose_base(&repo, None, None).unwrap());
    assert!(reason.contains("shallow clone"), "{reason}");
    assert!(reason.contains("no common ancestor"), "{reason}");
}

#[test]
fn ci_base_missing_from_a_full_clone_is_reported_too() {
    let (t, _) = feature_repo();
    let absent = "1234567890abcdef1234567890abcdef12345678";
    let ctx = ci(absent, BaseSource::GithubPush);
    let reason = expect_missing(choose_base(&t.open(), None, ctx.as_ref()).unwrap());
    assert!(reason.contains("1234567"), "{reason}");
    assert!(reason.contains("not in the repository"), "{reason}");
}

#[test]
fn discover_from_a_subfolder_and_outside_any_repository() {
    let (t, [.., d, _]) = feature_repo();
    std::fs::create_dir_all(t.abs("sub/dir")).unwrap();
    let repo = Repo::discover(&t.abs("sub/dir")).unwrap();
    assert_eq!(repo.head_commit().unwrap(), oid(&d));
    assert_eq!(repo.workdir, t.path().canonicalize().unwrap());
    assert_eq!(
        repo.relative_path(&t.abs("sub/dir/x.yaml")).unwrap(),
        "sub/dir/x.yaml"
    );
    assert_eq!(repo.relative_path(t.path()).unwrap(), "");
    assert!(matches!(
        repo.relative_path(std::path::Path::new("/")),
        Err(ChangesError::OutsideRepository { .. })
    ));

    let plain = tempfile::tempdir().unwrap();
    assert!(matches!(
        Repo::discover(plain.path()),
        Err(ChangesError::NotARepository { .. })
    ));
}

#[test]
fn empty_repository_has_no_head_commit() {
    let t = TestRepo::new();
    assert!(matches!(
        t.open().head_commit(),
        Err(ChangesError::NoCommits)
    ));
}
