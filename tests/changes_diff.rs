//! Changed paths between commits and against the work tree.

mod support;

use dagster_deploy::changes::Head;
use support::{TestRepo, oid};

fn changed(t: &TestRepo, base: &str, head: &Head) -> Vec<String> {
    t.open()
        .changed_paths(oid(base), head)
        .expect("changed paths")
}

fn commit_head(sha: &str) -> Head {
    Head::Commit(oid(sha))
}

#[test]
fn rename_reports_both_old_and_new_path() {
    let t = TestRepo::new();
    t.write("a/old.py", "x = 1\n");
    t.write("a/keep.py", "k\n");
    let base = t.commit("one");
    std::fs::create_dir_all(t.abs("b")).expect("mkdir");
    t.git(&["mv", "a/old.py", "b/new.py"]);
    let head = t.commit("move");
    assert_eq!(
        changed(&t, &base, &commit_head(&head)),
        vec!["a/old.py", "b/new.py"]
    );
}

#[test]
fn deletion_addition_and_mode_change() {
    let t = TestRepo::new();
    t.write("gone.txt", "bye\n");
    t.write("tool.sh", "echo\n");
    t.write("same/deep/file.txt", "same\n");
    let base = t.commit("one");
    t.remove("gone.txt");
    t.write("new/added.txt", "hi\n");
    t.chmod("tool.sh", 0o755);
    let head = t.commit("two");
    assert_eq!(
        changed(&t, &base, &commit_head(&head)),
        vec!["gone.txt", "new/added.txt", "tool.sh"]
    );
}

#[test]
fn file_replaced_by_folder_lists_both() {
    let t = TestRepo::new();
    t.write("thing", "file\n");
    let base = t.commit("one");
    t.remove("thing");
    t.write("thing/inside.txt", "dir\n");
    let head = t.commit("two");
    assert_eq!(
        changed(&t, &base, &commit_head(&head)),
        vec!["thing", "thing/inside.txt"]
    );
}

#[test]
fn spaces_and_unicode_in_paths() {
    let t = TestRepo::new();
    t.write("my dir/a file.txt", "1\n");
    t.write("données/été.py", "1\n");
    let base = t.commit("one");
    t.write("my dir/a file.txt", "2\n");
    t.write("données/été.py", "2\n");
    t.write("日本/新しい ファイル.txt", "3\n");
    let head = t.commit("two");
    assert_eq!(
        changed(&t, &base, &commit_head(&head)),
        vec![
            "données/été.py",
            "my dir/a file.txt",
            "日本/新しい ファイル.txt"
        ]
    );
}

#[test]
fn symlink_is_compared_as_the_link_not_its_target() {
    let t = TestRepo::new();
    t.write("shared/config.yaml", "a: 1\n");
    t.write("other/config.yaml", "b: 1\n");
    t.symlink("../shared/config.yaml", "app/config.yaml");
    let base = t.commit("one");

    // Changing the file the link points to is a change of that file only.
    t.write("shared/config.yaml", "a: 2\n");
    let mid = t.commit("target content");
    assert_eq!(
        changed(&t, &base, &commit_head(&mid)),
        vec!["shared/config.yaml"]
    );

    // Changing the link's target string is a change of the link.
    t.symlink("../other/config.yaml", "app/config.yaml");
    let head = t.commit("retarget");
    assert_eq!(
        changed(&t, &mid, &commit_head(&head)),
        vec!["app/config.yaml"]
    );
}

#[test]
fn merge_commit_against_its_first_parent_lists_what_the_branch_brought() {
    let t = TestRepo::new();
    t.write("a/x.py", "1\n");
    t.write("b/y.py", "1\n");
    let root = t.commit("root");
    t.git(&["checkout", "-q", "-b", "feature"]);
    t.write("b/y.py", "2\n");
    t.write("c/z.py", "new\n");
    t.commit("feature work");
    t.git(&["checkout", "-q", "main"]);
    t.write("a/x.py", "2\n");
    let main_tip = t.commit("main work");
    t.git(&["merge", "-q", "--no-ff", "-m", "merge", "feature"]);
    let merge = t.git(&["rev-parse", "HEAD"]);

    assert_eq!(
        changed(&t, &main_tip, &commit_head(&merge)),
        vec!["b/y.py", "c/z.py"]
    );
    assert_eq!(
        changed(&t, &root, &commit_head(&merge)),
        vec!["a/x.py", "b/y.py", "c/z.py"]
    );
}

#[test]
fn identical_commits_have_no_changes() {
    let t = TestRepo::new();
    t.write("a.txt", "1\n");
    let c = t.commit("one");
    assert!(changed(&t, &c, &commit_head(&c)).is_empty());
}

#[test]
fn work_tree_adds_staged_unstaged_untracked_and_deleted_files() {
    let t = TestRepo::new();
    t.write(".gitignore", "*.log\nbuild/\n");
    t.write("modified.txt", "1\n");
    t.write("staged.txt", "1\n");
    t.write("deleted.txt", "1\n");
    t.write("staged-deleted.txt", "1\n");
    t.write("clean.txt", "1\n");
    t.write("committed.txt", "1\n");
    let base = t.commit("one");
    t.write("committed.txt", "2\n");
    let head = t.commit("two");

    t.write("modified.txt", "2\n");
    t.write("staged.txt", "2\n");
    t.git(&["add", "staged.txt"]);
    t.remove("deleted.txt");
    t.git(&["rm", "-q", "staged-deleted.txt"]);
    t.write("untracked dir/new file.txt", "new\n");
    t.write("debug.log", "ignored\n");
    t.write("build/out.bin", "ignored\n");

    assert_eq!(
        changed(&t, &base, &Head::WorkTree(oid(&head))),
        vec![
            "committed.txt",
            "deleted.txt",
            "modified.txt",
            "staged-deleted.txt",
            "staged.txt",
            "untracked dir/new file.txt",
        ]
    );
    // The same commit as Head::Commit ignores the work tree.
    assert_eq!(
        changed(&t, &base, &commit_head(&head)),
        vec!["committed.txt"]
    );
}

#[test]
fn work_tree_symlink_retarget_is_a_change_of_the_link() {
    let t = TestRepo::new();
    t.write("x.txt", "x\n");
    t.write("y.txt", "y\n");
    t.symlink("x.txt", "link");
    let head = t.commit("one");
    t.symlink("y.txt", "link");
    assert_eq!(
        changed(&t, &head, &Head::WorkTree(oid(&head))),
        vec!["link"]
    );
}

/// Many small commits with renames, deletions and nested folders: the walk agrees with git.
#[test]
fn agrees_with_git_diff_name_only_over_a_history() {
    let t = TestRepo::new();
    let mut shas = Vec::new();
    for i in 0..12 {
        t.write(
            &format!("d{}/e{}/f{}.txt", i % 3, i % 2, i),
            &format!("{i}\n"),
        );
        t.write(&format!("d{}/shared.txt", (i + 1) % 3), &format!("{i}\n"));
        if i % 4 == 3 {
            t.git(&[
                "rm",
                "-q",
                "-r",
                "--ignore-unmatch",
                &format!("d{}/e1", i % 3),
            ]);
        }
        if i % 5 == 4 {
            t.git(&["add", "-A"]);
            t.git(&["mv", &format!("d{}", (i + 2) % 3), &format!("m{i}")]);
        }
        shas.push(t.commit(&format!("c{i}")));
    }
    for (a, b) in [(0, 11), (3, 7), (5, 6), (11, 0), (2, 9)] {
        let git = t.git(&["diff", "--no-renames", "--name-only", &shas[a], &shas[b]]);
        let mut expected: Vec<String> = git.lines().map(str::to_string).collect();
        expected.sort();
        assert_eq!(
            changed(&t, &shas[a], &commit_head(&shas[b])),
            expected,
            "{a}..{b}"
        );
    }
}

#[test]
fn the_work_tree_is_scanned_once_per_repo() {
    let t = TestRepo::new();
    t.write("a.txt", "1\n");
    let head = t.commit("one");
    let repo = t.open();
    let wt = Head::WorkTree(oid(&head));
    assert!(repo.changed_paths(oid(&head), &wt).unwrap().is_empty());
    t.write("a.txt", "2\n");
    // Same Repo: the snapshot taken by the first call stands.
    assert!(repo.changed_paths(oid(&head), &wt).unwrap().is_empty());
    // Opened again: the edit is seen.
    assert_eq!(changed(&t, &head, &wt), vec!["a.txt"]);
}

#[test]
fn a_submodule_counts_as_its_recorded_commit() {
    let t = TestRepo::new();
    t.write("a.txt", "1\n");
    let first = t.commit("one");
    // A gitlink entry, as `git submodule add` records it (no .gitmodules needed here).
    let link = |sha: &str| {
        t.git(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{sha},vendor/sub"),
        ]);
        t.git(&["commit", "-q", "-m", "gitlink"]);
        t.git(&["rev-parse", "HEAD"])
    };
    let with_sub = link(&first);
    t.write("a.txt", "2\n");
    let second = t.commit("two");
    assert_eq!(
        changed(&t, &first, &commit_head(&with_sub)),
        vec!["vendor/sub"]
    );
    let moved = link(&second);
    assert_eq!(
        changed(&t, &second, &commit_head(&moved)),
        vec!["vendor/sub"]
    );
    // An uninitialised submodule is an empty folder, as a clone leaves it: not a change.
    std::fs::create_dir_all(t.abs("vendor/sub")).unwrap();
    let wt = changed(&t, &moved, &Head::WorkTree(oid(&moved)));
    assert!(
        wt.is_empty(),
        "{wt:?} {}",
        t.git(&["status", "--porcelain"])
    );
}

#[test]
fn a_prefetched_diff_is_the_diff() {
    let t = TestRepo::new();
    t.write("a/one.py", "1\n");
    t.write("b/deep/two.py", "2\n");
    let base = t.commit("one");
    t.write("a/one.py", "1.1\n");
    t.remove("b/deep/two.py");
    t.write("c/three.py", "3\n");
    let head = t.commit("two");
    // Uncommitted changes are added to a prefetched commit diff as to any other.
    t.write("d/dirty.py", "4\n");
    for head_of in [commit_head(&head), Head::WorkTree(oid(&head))] {
        let repo = t.open();
        repo.prefetch_changes(oid(&base), oid(&head));
        let prefetched = repo
            .changed_paths(oid(&base), &head_of)
            .expect("prefetched");
        assert_eq!(prefetched, changed(&t, &base, &head_of));
    }
    let repo = t.open();
    repo.prefetch_changes(oid(&base), oid(&head));
    // A diff of another pair does not take the prefetched one.
    assert_eq!(
        repo.changed_paths(oid(&head), &commit_head(&head))
            .expect("no change"),
        Vec::<String>::new()
    );
    assert_eq!(
        repo.changed_paths(oid(&base), &commit_head(&head))
            .expect("diff"),
        vec!["a/one.py", "b/deep/two.py", "c/three.py"]
    );
}
