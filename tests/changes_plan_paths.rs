//! How `plan` turns the paths a location names (build directory, Dockerfile, watched paths,
//! local dependencies) into repository paths: symlinks followed, absolute paths mapped into the
//! work tree, paths that leave the repository refused with the location and its position.

mod support;

use serde_json::json;
use support::{TestRepo, planned, run};

fn one_location(directory: &str) -> String {
    format!(
        "locations:\n  - location_name: a\n    code_source:\n      package_name: a\n    build:\n      directory: {directory}\n"
    )
}

#[test]
fn a_symlinked_build_directory_is_followed_to_its_target() {
    let t = TestRepo::new();
    t.write("dagster_cloud.yaml", &one_location("loclink"));
    t.write("real/loc/x.py", "x = 1\n");
    t.write("real/loc/Dockerfile", "FROM scratch\n");
    t.symlink("real/loc", "loclink");
    let first = t.commit("init");
    let before = t.plan(&["--base", &first, "--all"]);

    t.write("real/loc/x.py", "x = 2\n");
    t.commit("change through the link");
    let plan = t.plan(&["--base", &first]);
    let a = planned(&plan, "a");
    assert_eq!(a["action"], "build", "{plan:#}");
    assert_eq!(a["changed_paths"], json!(["real/loc/x.py"]));
    assert_eq!(a["build_directory"], "real/loc");
    assert_eq!(a["inputs"], json!(["loclink", "real/loc"]));
    assert_ne!(a["content_key"], planned(&before, "a")["content_key"]);

    // Pointing the link elsewhere is a change of the location's inputs too.
    let base = t.git(&["rev-parse", "HEAD"]);
    t.write("other/loc/Dockerfile", "FROM scratch\n");
    t.symlink("other/loc", "loclink");
    t.commit("retarget");
    let plan = t.plan(&["--base", &base]);
    let a = planned(&plan, "a");
    assert_eq!(a["action"], "build", "{plan:#}");
    assert_eq!(a["build_directory"], "other/loc");
    assert!(
        a["changed_paths"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("loclink"))),
        "{a:#}"
    );
}

#[test]
fn symlinked_dependencies_watch_paths_and_dockerfiles_are_followed() {
    let t = TestRepo::new();
    t.write(
        "dagster_cloud.yaml",
        "locations:\n  - location_name: a\n    build:\n      directory: a\n",
    );
    t.write(
        "dagster-deploy.toml",
        "[locations.a]\nwatch = [\"sql\"]\ndockerfile = \"docker/a.Dockerfile\"\n",
    );
    t.write("a/requirements.txt", "-e ../liblink\n");
    t.write("libs/real/pyproject.toml", "[project]\nname = \"real\"\n");
    t.symlink("libs/real", "liblink");
    t.write("shared/sql/q.sql", "select 1;\n");
    t.symlink("shared/sql", "sql");
    t.write("docker/real.Dockerfile", "FROM scratch\n");
    t.symlink("real.Dockerfile", "docker/a.Dockerfile");
    let base = t.commit("init");
    let plan = t.plan(&["--base", &base, "--all"]);
    assert_eq!(
        planned(&plan, "a")["inputs"],
        json!([
            "a",
            "docker/a.Dockerfile",
            "docker/real.Dockerfile",
            "liblink",
            "libs/real",
            "shared/sql",
            "sql"
        ])
    );
    for (file, text) in [
        ("libs/real/m.py", "m = 1\n"),
        ("shared/sql/q.sql", "select 2;\n"),
        ("docker/real.Dockerfile", "FROM scratch\nENV X=1\n"),
    ] {
        let base = t.git(&["rev-parse", "HEAD"]);
        t.write(file, text);
        t.commit(file);
        let plan = t.plan(&["--base", &base]);
        assert_eq!(
            planned(&plan, "a")["changed_paths"],
            json!([file]),
            "{file}"
        );
    }
}

#[test]
fn a_link_leaving_the_repository_is_refused_with_the_location_and_position() {
    let t = TestRepo::new();
    let outside = tempfile::tempdir().expect("tempdir");
    t.write("dagster_cloud.yaml", &one_location("out"));
    t.symlink(&outside.path().display().to_string(), "out");
    t.commit("init");
    let ran = run(t.path(), &["plan", "--base", "HEAD"]);
    ran.exits(1);
    ran.says("dagster_cloud.yaml:6:18: locations[0].build.directory");
    ran.says("location `a`");
    ran.says("outside the repository");
}

#[test]
fn an_absolute_build_directory_inside_the_work_tree_is_mapped_and_others_are_refused() {
    let t = TestRepo::new();
    let root = t.path().canonicalize().expect("canonical");
    t.write("a/x.py", "x\n");
    t.write(
        "dagster_cloud.yaml",
        &one_location(&format!("{}/a", root.display())),
    );
    let base = t.commit("init");
    let plan = t.plan(&["--base", &base, "--all"]);
    assert_eq!(planned(&plan, "a")["build_directory"], "a");
    assert_eq!(planned(&plan, "a")["inputs"], json!(["a"]));

    t.write("dagster_cloud.yaml", &one_location("/etc"));
    let ran = run(t.path(), &["plan", "--base", "HEAD"]);
    ran.exits(1);
    ran.says("dagster_cloud.yaml:6:18: locations[0].build.directory: build directory `/etc` of location `a` is outside the repository");
    // `check` applies the same rule inside a git repository.
    let ran = run(t.path(), &["check"]);
    ran.exits(1);
    ran.says("build directory `/etc` of location `a` is outside the repository");
}

#[test]
fn absolute_paths_outside_the_work_tree_in_project_files_refer_to_the_image() {
    let t = TestRepo::new();
    t.write(
        "dagster_cloud.yaml",
        "locations:\n  - location_name: a\n    build:\n      directory: a\n  - location_name: b\n    build:\n      directory: b\n",
    );
    t.write(
        "a/requirements.txt",
        "--find-links /wheels\n-f file:///opt/wheels\n/opt/app/lib\n-e ../libs/common\n",
    );
    t.write(
        "b/pyproject.toml",
        "[project]\nname = \"b\"\ndependencies = [\"lib @ file:///opt/app/lib\"]\n[tool.uv.sources]\nother = { path = \"/srv/other\" }\n",
    );
    t.write(
        "libs/common/pyproject.toml",
        "[project]\nname = \"common\"\n",
    );
    let base = t.commit("init");
    let plan = t.plan(&["--base", &base, "--all"]);
    assert_eq!(planned(&plan, "a")["inputs"], json!(["a", "libs/common"]));
    assert_eq!(planned(&plan, "b")["inputs"], json!(["b"]));

    // A relative path that climbs out of the repository is still an error, naming the file
    // that says it and the location.
    t.write("b/requirements.txt", "-e ../../elsewhere\n");
    let ran = run(t.path(), &["plan", "--base", "HEAD"]);
    ran.exits(1);
    ran.says("location `b`");
    ran.says("../../elsewhere (in b/requirements.txt) is outside the repository");
}

#[test]
fn a_build_directory_missing_at_head_is_an_error_naming_the_location() {
    let t = TestRepo::new();
    t.write(
        "dagster_cloud.yaml",
        "locations:\n  - location_name: a\n    build:\n      directory: a\n  - location_name: gone\n    build:\n      directory: gone\n",
    );
    t.write("a/x.py", "x\n");
    let base = t.commit("init");
    let ran = run(t.path(), &["plan", "--base", &base]);
    ran.exits(1);
    ran.says("dagster_cloud.yaml:7:18: locations[1].build.directory: build directory `gone` of location `gone` does not exist");
    // With --head, the directory is looked up in that commit, not on disk.
    t.write("gone/x.py", "x\n");
    let ran = run(t.path(), &["plan", "--base", &base, "--head", &base]);
    ran.exits(1);
    ran.says("`gone` does not exist");
}

#[test]
fn paths_leaving_the_repository_name_the_location_and_position() {
    let t = TestRepo::new();
    t.write(
        "dagster_cloud.yaml",
        "locations:\n  - location_name: a\n    build:\n      directory: a\n  - location_name: b\n    build:\n      directory: ../outside\n",
    );
    t.write(
        "dagster-deploy.toml",
        "[locations.a]\nwatch = [\"../outside\"]\n",
    );
    t.write("a/x.py", "x\n");
    t.commit("init");
    for command in [&["plan", "--base", "HEAD"][..], &["check"][..]] {
        run(t.path(), command)
            .exits(1)
            .says("dagster_cloud.yaml:7:18: locations[1].build.directory: build directory `../outside` of location `b` is outside the repository")
            .says("dagster-deploy.toml:2:10: locations.a.watch[0]: watched path `../outside` of location `a` is outside the repository");
    }
}

#[test]
fn a_default_dockerfile_linking_out_of_the_repository_is_reported() {
    let t = TestRepo::new();
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("Dockerfile"), "FROM scratch\n").expect("write");
    t.write("dagster_cloud.yaml", &one_location("a"));
    t.write("a/x.py", "x\n");
    t.symlink(
        &outside.path().join("Dockerfile").display().to_string(),
        "a/Dockerfile",
    );
    t.commit("init");
    let ran = run(t.path(), &["plan", "--base", "HEAD"]);
    ran.exits(1);
    ran.says("dagster_cloud.yaml:6:18: locations[0].build.directory: Dockerfile `a/Dockerfile` of location `a` is outside the repository");
}
