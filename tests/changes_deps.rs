//! Local path dependencies from pyproject.toml and requirements files, followed transitively.

mod support;

use dagster_deploy::changes::{
    ChangesError, Dependencies, FileSource, Unresolvable, WorkTreeSource, local_dependencies,
};
use support::{TestRepo, oid};
use tempfile::TempDir;

struct Tree {
    dir: TempDir,
}

impl Tree {
    fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        Tree { dir }
    }

    fn source(&self) -> WorkTreeSource {
        WorkTreeSource::new(self.dir.path().to_path_buf())
    }

    fn deps(&self, dir: &str) -> Result<Vec<String>, ChangesError> {
        local_dependencies(&self.source(), dir)
    }
}

#[test]
fn uv_sources_and_project_file_urls() {
    let t = Tree::new(&[
        (
            "app/pyproject.toml",
            r#"
[project]
name = "app"
dependencies = ["dagster", "models @ file:../libs/models", "util[x] @ file:///${PROJECT_ROOT}/../libs/util"]
[project.optional-dependencies]
dev = ["testkit @ file:../libs/testkit ; python_version >= '3.9'"]
[tool.uv.sources]
core = { path = "../libs/core", editable = true }
multi = [{ path = "../libs/multi-a", marker = "sys_platform == 'linux'" }, { index = "pypi" }]
remote = { git = "https://example.com/remote.git" }
member = { workspace = true }
"#,
        ),
        ("libs/models/pyproject.toml", "[project]\nname='models'\n"),
        ("libs/util/x.py", ""),
        ("libs/testkit/x.py", ""),
        ("libs/core/x.py", ""),
        ("libs/multi-a/x.py", ""),
    ]);
    assert_eq!(
        t.deps("app").unwrap(),
        vec![
            "libs/core",
            "libs/models",
            "libs/multi-a",
            "libs/testkit",
            "libs/util"
        ]
    );
}

#[test]
fn poetry_path_dependencies() {
    let t = Tree::new(&[
        (
            "app/pyproject.toml",
            r#"
[tool.poetry.dependencies]
python = "^3.11"
shared = { path = "../shared", develop = true }
[tool.poetry.group.test.dependencies]
fixtures = { path = "../fixtures" }
"#,
        ),
        ("shared/x.py", ""),
        ("fixtures/x.py", ""),
    ]);
    assert_eq!(t.deps("app").unwrap(), vec!["fixtures", "shared"]);
}

#[test]
fn requirements_files_in_all_local_forms() {
    let t = Tree::new(&[
        (
            "app/requirements.txt",
            "dagster==1.8  # pinned\n-e ../libs/a\n--editable=../libs/b[extra]\n../libs/c\n\
             ./vendored\nfile:../libs/d#egg=d\ne @ file:../libs/e\n-e .\n\
             git+https://example.com/x.git#egg=x\n-r ../common/base.txt\n-c ../common/constraints.txt\n",
        ),
        ("app/requirements-dev.txt", "-e ../libs/dev-only\n"),
        ("app/vendored/setup.py", ""),
        ("common/base.txt", "-e ../libs/from-include\nrequests\n"),
        ("common/constraints.txt", "requests<3\n"),
        ("libs/a/x.py", ""),
        ("libs/b/x.py", ""),
        ("libs/c/x.py", ""),
        ("libs/d/x.py", ""),
        ("libs/e/x.py", ""),
        ("libs/dev-only/x.py", ""),
        ("libs/from-include/x.py", ""),
    ]);
    // `./vendored` is inside the location itself: already an input, not listed.
    assert_eq!(
        t.deps("app").unwrap(),
        vec![
            "common/base.txt",
            "common/constraints.txt",
            "libs/a",
            "libs/b",
            "libs/c",
            "libs/d",
            "libs/dev-only",
            "libs/e",
            "libs/from-include",
        ]
    );
}

#[test]
fn dependencies_are_followed_transitively_and_shared_ones_are_no_cycle() {
    let t = Tree::new(&[
        ("app/requirements.txt", "-e ../libs/a\n-e ../libs/b\n"),
        (
            "libs/a/pyproject.toml",
            "[tool.uv.sources]\nc = { path = \"../c\" }\n",
        ),
        ("libs/b/requirements.txt", "-e ../c\n-e .\n"),
        (
            "libs/c/pyproject.toml",
            "[project]\ndependencies = [\"d @ file:../../deep/d\"]\n",
        ),
        ("deep/d/x.py", ""),
    ]);
    assert_eq!(
        t.deps("app").unwrap(),
        vec!["deep/d", "libs/a", "libs/b", "libs/c"]
    );
}

#[test]
fn a_cycle_between_local_libraries_names_each_step() {
    let t = Tree::new(&[
        ("app/requirements.txt", "-e ../libs/a\n"),
        ("libs/a/requirements.txt", "-e ../b\n"),
        (
            "libs/b/pyproject.toml",
            "[tool.uv.sources]\na = { path = \"../a\" }\n",
        ),
    ]);
    let err = t.deps("app").unwrap_err();
    match &err {
        ChangesError::DependencyCycle { cycle } => {
            assert_eq!(cycle, &vec!["libs/a", "libs/b", "libs/a"]);
        }
        other => panic!("expected a cycle, got {other}"),
    }
    assert_eq!(
        err.to_string(),
        "local dependency cycle: libs/a -> libs/b -> libs/a"
    );
}

#[test]
fn a_path_outside_the_repository_is_an_error() {
    let t = Tree::new(&[("app/requirements.txt", "-e ../../elsewhere\n")]);
    let err = t.deps("app").unwrap_err();
    assert!(matches!(err, ChangesError::OutsideRepository { .. }));
    assert_eq!(
        err.to_string(),
        "../../elsewhere (in app/requirements.txt) is outside the repository"
    );
}

#[test]
fn absolute_paths_outside_the_work_tree_name_the_image_and_are_no_inputs() {
    let t = Tree::new(&[
        (
            "app/pyproject.toml",
            "[project]\ndependencies = [\"x @ file:///opt/x\"]\n[tool.uv.sources]\ny = { path = \"/srv/y\" }\n",
        ),
        (
            "app/requirements.txt",
            "--find-links /wheels\n-f file:///opt/wheels\n/opt/app/lib\n-e /opt/editable\n-r /etc/constraints.txt\n",
        ),
    ]);
    assert_eq!(t.deps("app").unwrap(), Vec::<String>::new());
}

#[test]
fn symlinks_are_followed_at_every_component() {
    let t = TestRepo::new();
    t.write("app/requirements.txt", "-e ../libs/link/sub\n");
    t.write("real/lib/sub/pyproject.toml", "[project]\nname = \"sub\"\n");
    t.symlink("../real/lib", "libs/link");
    t.symlink("loop-b", "loop-a");
    t.symlink("loop-a", "loop-b");
    let outside = tempfile::tempdir().unwrap();
    t.symlink(&outside.path().display().to_string(), "out");
    let c = t.commit("links");
    let repo = t.open();
    let tree = repo.tree_source(oid(&c)).unwrap();
    let disk = repo.worktree_source();
    for src in [&tree as &dyn FileSource, &disk] {
        let resolved = src.resolve("libs/link/sub/../sub/pyproject.toml").unwrap();
        assert_eq!(resolved.path, "real/lib/sub/pyproject.toml");
        assert_eq!(resolved.links, vec!["libs/link"]);
        // `..` after a link climbs from its target, as the filesystem does.
        assert_eq!(src.resolve("libs/link/..").unwrap().path, "real");
        assert_eq!(src.resolve("missing/x").unwrap().path, "missing/x");
        assert_eq!(src.resolve("out/x"), Err(Unresolvable::Outside));
        assert_eq!(src.resolve("../x"), Err(Unresolvable::Outside));
        assert_eq!(src.resolve("loop-a"), Err(Unresolvable::Loop));
        assert_eq!(src.read("out/x"), None);
        assert!(src.is_dir("libs/link/sub"));
        assert_eq!(
            local_dependencies(src, "app").unwrap(),
            vec!["libs/link", "real/lib/sub"]
        );
    }
}

#[test]
fn absolute_file_url_inside_the_repository_is_mapped_back() {
    let t = Tree::new(&[("libs/x/a.py", "")]);
    let abs = t.dir.path().join("libs/x");
    std::fs::create_dir_all(t.dir.path().join("app")).unwrap();
    std::fs::write(
        t.dir.path().join("app/requirements.txt"),
        format!("x @ file://{}\n", abs.display()),
    )
    .unwrap();
    assert_eq!(t.deps("app").unwrap(), vec!["libs/x"]);
}

#[test]
fn an_invalid_pyproject_is_an_error_naming_the_file() {
    let t = Tree::new(&[("app/pyproject.toml", "[project\nname = 1\n")]);
    let err = t.deps("app").unwrap_err();
    assert!(
        matches!(&err, ChangesError::InvalidPyproject { path, .. } if path == "app/pyproject.toml")
    );
    assert!(
        err.to_string()
            .starts_with("cannot parse app/pyproject.toml: "),
        "{err}"
    );
}

#[test]
fn location_at_the_repository_root_and_without_project_files() {
    let t = Tree::new(&[
        ("requirements.txt", "-e ./libs/a\n"),
        ("libs/a/requirements.txt", "-e ../../other\n"),
        ("other/x.py", ""),
        ("empty/x.py", ""),
    ]);
    // Everything is inside the root location: nothing extra to list.
    assert!(t.deps("").unwrap().is_empty());
    assert!(t.deps("empty").unwrap().is_empty());
    assert!(t.deps("does/not/exist").unwrap().is_empty());
}

#[test]
fn dependencies_read_at_a_commit_through_the_tree_source() {
    let t = TestRepo::new();
    t.write("app/requirements.txt", "-e ../libs/old\n");
    t.write("libs/old/x.py", "");
    let first = t.commit("one");
    t.write("app/requirements.txt", "-e ../libs/new\n");
    t.write("libs/new/x.py", "");
    t.commit("two");
    let repo = t.open();
    let at_first = repo.tree_source(oid(&first)).unwrap();
    assert_eq!(
        local_dependencies(&at_first, "app").unwrap(),
        vec!["libs/old"]
    );
    let now = repo.worktree_source();
    assert_eq!(local_dependencies(&now, "app").unwrap(), vec!["libs/new"]);
}

#[test]
fn tree_source_reads_lists_and_follows_links_inside_the_tree() {
    let t = TestRepo::new();
    t.write("dagster_cloud.yaml", "locations: []\n");
    t.write("app/a.py", "a\n");
    t.write("app/sub/b.py", "b\n");
    t.symlink("../dagster_cloud.yaml", "app/link.yaml");
    let c = t.commit("one");
    t.write("dagster_cloud.yaml", "changed on disk\n");
    let repo = t.open();
    let src = repo.tree_source(oid(&c)).unwrap();
    assert_eq!(src.read("dagster_cloud.yaml").unwrap(), b"locations: []\n");
    assert_eq!(src.read("app/link.yaml").unwrap(), b"locations: []\n");
    assert_eq!(src.read("app/missing.py"), None);
    assert_eq!(src.read("app"), None);
    assert_eq!(src.list("app"), vec!["a.py", "link.yaml", "sub"]);
    assert_eq!(src.list(""), vec!["app", "dagster_cloud.yaml"]);
    assert!(src.is_dir("app/sub") && src.is_dir("") && !src.is_dir("app/a.py"));
    assert_eq!(src.read("../outside"), None);

    let disk = repo.worktree_source();
    assert_eq!(
        disk.read("dagster_cloud.yaml").unwrap(),
        b"changed on disk\n"
    );
    assert!(disk.is_dir("app/sub") && !disk.is_dir("app/a.py"));
    assert_eq!(disk.read("../etc/passwd"), None);
}

/// Dependencies at `commit`, through a freshly opened repository (so only the on-disk cache
/// carries anything over), saving what it learnt.
fn deps_at(t: &TestRepo, commit: &str, dir: &str) -> Vec<String> {
    let repo = t.open();
    let tree = repo.tree_source(oid(commit)).unwrap();
    let found = Dependencies::of_tree(&tree).of(dir).unwrap();
    repo.save_caches();
    found
}

#[test]
fn folders_remembered_across_runs_give_the_same_answers() {
    let t = TestRepo::new();
    t.write("own/requirements.txt", "-e ../libs/a\n");
    t.write("shared/base.txt", "-e ../libs/a\n");
    t.write("via/requirements.txt", "-r ../shared/base.txt\n");
    t.write("libs/a/pyproject.toml", "[project]\nname = \"a\"\n");
    t.write("libs/b/pyproject.toml", "[project]\nname = \"b\"\n");
    let first = t.commit("one");
    assert_eq!(deps_at(&t, &first, "own"), vec!["libs/a"]);
    assert_eq!(
        deps_at(&t, &first, "via"),
        vec!["libs/a", "shared/base.txt"]
    );
    let cache = t.abs(".git/dagster-deploy/folders.json");
    let stored = std::fs::read_to_string(&cache).expect("cache written");
    // `own` depends on its own files only: remembered; `via` reads outside itself: not.
    assert!(stored.contains("\"text\":\"../libs/a\""), "{stored}");
    assert!(!stored.contains("../shared/base.txt"), "{stored}");

    // `via`'s folder is unchanged, but what it includes changed: answered afresh.
    t.write("shared/base.txt", "-e ../libs/b\n");
    let second = t.commit("two");
    assert_eq!(
        deps_at(&t, &second, "via"),
        vec!["libs/b", "shared/base.txt"]
    );
    assert_eq!(deps_at(&t, &second, "own"), vec!["libs/a"]);
    // A changed folder is a new tree: its new references are read.
    t.write("own/requirements.txt", "-e ../libs/b\n");
    let third = t.commit("three");
    assert_eq!(deps_at(&t, &third, "own"), vec!["libs/b"]);
    assert_eq!(deps_at(&t, &first, "own"), vec!["libs/a"]);

    // A damaged cache is ignored (and replaced).
    std::fs::write(&cache, "{not json").unwrap();
    assert_eq!(deps_at(&t, &third, "own"), vec!["libs/b"]);
    assert!(std::fs::read_to_string(&cache).unwrap().starts_with('{'));
}
