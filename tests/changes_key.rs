//! Content keys: stable for the same inputs, sensitive to what is built, blind to ignored files.

mod support;

use dagster_deploy::changes::{CONTENT_KEY_PREFIX, Head, content_key};
use globset::{Glob, GlobSet, GlobSetBuilder};
use support::{TestRepo, oid};

fn globs(patterns: &[&str]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).unwrap());
    }
    b.build().unwrap()
}

fn inputs(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

fn key(t: &TestRepo, head: &Head, paths: &[&str], ignore: &GlobSet, salt: &[u8]) -> String {
    content_key(&t.open(), head, &inputs(paths), ignore, salt).unwrap()
}

fn sample() -> (TestRepo, String) {
    let t = TestRepo::new();
    t.write("app/main.py", "print(1)\n");
    t.write("app/docs/readme.md", "docs\n");
    t.write("libs/core/core.py", "core\n");
    t.write("other/x.py", "x\n");
    let c = t.commit("one");
    (t, c)
}

#[test]
fn same_inputs_same_key_in_a_docker_tag_friendly_form() {
    let (t, c) = sample();
    let head = Head::Commit(oid(&c));
    let none = GlobSet::empty();
    let k = key(&t, &head, &["app", "libs/core"], &none, b"salt");
    assert!(k.starts_with(CONTENT_KEY_PREFIX));
    assert_eq!(k.len(), CONTENT_KEY_PREFIX.len() + 16);
    assert!(
        k[3..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // Order and duplicates of inputs do not matter; unrelated commits do not matter.
    assert_eq!(
        k,
        key(&t, &head, &["libs/core", "app", "app/"], &none, b"salt")
    );
    t.write("other/x.py", "changed\n");
    let c2 = t.commit("unrelated");
    assert_eq!(
        k,
        key(
            &t,
            &Head::Commit(oid(&c2)),
            &["app", "libs/core"],
            &none,
            b"salt"
        )
    );
    // The salt and the set of inputs do.
    assert_ne!(
        k,
        key(&t, &head, &["app", "libs/core"], &none, b"other salt")
    );
    assert_ne!(k, key(&t, &head, &["app"], &none, b"salt"));
}

#[test]
fn a_change_in_any_input_changes_the_key() {
    let (t, c) = sample();
    let none = GlobSet::empty();
    let before = key(
        &t,
        &Head::Commit(oid(&c)),
        &["app", "libs/core"],
        &none,
        b"",
    );
    t.write("libs/core/core.py", "core 2\n");
    let c2 = t.commit("lib change");
    let after = key(
        &t,
        &Head::Commit(oid(&c2)),
        &["app", "libs/core"],
        &none,
        b"",
    );
    assert_ne!(before, after);
    // A mode change alone counts too.
    t.chmod("app/main.py", 0o755);
    let c3 = t.commit("exec");
    assert_ne!(
        after,
        key(
            &t,
            &Head::Commit(oid(&c3)),
            &["app", "libs/core"],
            &none,
            b""
        )
    );
}

#[test]
fn ignored_files_never_change_the_key() {
    let (t, c) = sample();
    let md = globs(&["**/*.md"]);
    let before = key(&t, &Head::Commit(oid(&c)), &["app"], &md, b"");
    t.write("app/docs/readme.md", "new docs\n");
    t.write("app/docs/more/extra.md", "more\n");
    let c2 = t.commit("docs only");
    assert_eq!(before, key(&t, &Head::Commit(oid(&c2)), &["app"], &md, b""));
    // Same content without the docs at all gives the same key as well.
    t.git(&["rm", "-q", "-r", "app/docs"]);
    let c3 = t.commit("no docs");
    assert_eq!(before, key(&t, &Head::Commit(oid(&c3)), &["app"], &md, b""));
    // A non-ignored change still counts.
    t.write("app/main.py", "print(2)\n");
    let c4 = t.commit("code");
    assert_ne!(before, key(&t, &Head::Commit(oid(&c4)), &["app"], &md, b""));
}

#[test]
fn an_ignore_pattern_that_matches_nothing_changes_nothing() {
    let (t, c) = sample();
    let head = Head::Commit(oid(&c));
    assert_eq!(
        key(&t, &head, &["app", "libs/core"], &GlobSet::empty(), b""),
        key(
            &t,
            &head,
            &["app", "libs/core"],
            &globs(&["**/*.never"]),
            b""
        )
    );
}

#[test]
fn dirty_files_count_with_their_current_content() {
    let (t, c) = sample();
    let none = GlobSet::empty();
    let committed = key(&t, &Head::Commit(oid(&c)), &["app"], &none, b"");
    let wt = Head::WorkTree(oid(&c));
    // A clean work tree has its commit's key.
    assert_eq!(committed, key(&t, &wt, &["app"], &none, b""));
    // Dirty files outside the inputs do not matter.
    t.write("other/x.py", "dirty\n");
    assert_eq!(committed, key(&t, &wt, &["app"], &none, b""));

    t.write("app/main.py", "print('dirty')\n");
    let modified = key(&t, &wt, &["app"], &none, b"");
    assert_ne!(committed, modified);
    t.write("app/main.py", "print('dirtier')\n");
    let modified2 = key(&t, &wt, &["app"], &none, b"");
    assert_ne!(modified, modified2);

    // Committing the dirty state as-is keeps the key.
    let c2 = t.commit("commit dirty");
    assert_eq!(
        modified2,
        key(&t, &Head::Commit(oid(&c2)), &["app"], &none, b"")
    );
}

#[test]
fn untracked_deleted_and_staged_files_in_the_work_tree() {
    let (t, c) = sample();
    let none = GlobSet::empty();
    let wt = Head::WorkTree(oid(&c));
    let clean = key(&t, &wt, &["app"], &none, b"");

    t.write("app/new/untracked.py", "new\n");
    let untracked = key(&t, &wt, &["app"], &none, b"");
    assert_ne!(clean, untracked);
    std::fs::remove_dir_all(t.abs("app/new")).unwrap();
    assert_eq!(clean, key(&t, &wt, &["app"], &none, b""));

    t.remove("app/main.py");
    let deleted = key(&t, &wt, &["app"], &none, b"");
    assert_ne!(clean, deleted);
    t.git(&["checkout", "--", "app/main.py"]);
    assert_eq!(clean, key(&t, &wt, &["app"], &none, b""));

    t.write("libs/core/core.py", "staged\n");
    t.git(&["add", "libs/core/core.py"]);
    assert_ne!(
        key(&t, &Head::Commit(oid(&c)), &["libs/core"], &none, b""),
        key(&t, &wt, &["libs/core"], &none, b"")
    );

    // An ignored dirty file does not count.
    let md = globs(&["**/*.md"]);
    let before = key(&t, &wt, &["app"], &md, b"");
    t.write("app/docs/readme.md", "dirty docs\n");
    assert_eq!(before, key(&t, &wt, &["app"], &md, b""));
}

#[test]
fn single_file_inputs_missing_inputs_and_the_whole_repository() {
    let (t, c) = sample();
    let none = GlobSet::empty();
    let head = Head::Commit(oid(&c));
    let wt = Head::WorkTree(oid(&c));
    let file = key(&t, &head, &["app/main.py"], &none, b"");
    assert_eq!(file, key(&t, &wt, &["app/main.py"], &none, b""));
    let missing = key(&t, &head, &["nope"], &none, b"");
    assert_ne!(missing, key(&t, &head, &["nope2"], &none, b""));
    t.write("nope/now.py", "appears\n");
    assert_ne!(missing, key(&t, &wt, &["nope"], &none, b""));

    let root = key(&t, &head, &[""], &none, b"");
    assert_eq!(root, key(&t, &head, &["."], &none, b""));
    assert_ne!(root, key(&t, &wt, &[""], &none, b""));
}

#[test]
fn a_symlink_counts_as_its_target_string() {
    let t = TestRepo::new();
    t.write("shared/a.yaml", "a\n");
    t.write("shared/b.yaml", "b\n");
    t.symlink("../shared/a.yaml", "app/config.yaml");
    let c = t.commit("one");
    let none = GlobSet::empty();
    let wt = Head::WorkTree(oid(&c));
    let before = key(&t, &wt, &["app"], &none, b"");
    assert_eq!(
        before,
        key(&t, &Head::Commit(oid(&c)), &["app"], &none, b"")
    );
    // Editing the linked file (outside the input) does not change the input.
    t.write("shared/a.yaml", "edited\n");
    assert_eq!(before, key(&t, &wt, &["app"], &none, b""));
    t.symlink("../shared/b.yaml", "app/config.yaml");
    let retargeted = key(&t, &wt, &["app"], &none, b"");
    assert_ne!(before, retargeted);
    t.git(&["add", "-A"]);
    let c2 = t.commit("retarget");
    assert_eq!(
        retargeted,
        key(&t, &Head::Commit(oid(&c2)), &["app"], &none, b"")
    );
}
