//! The CI templates in `ci-templates/` and `.github/workflows/` pass the linters: GitHub
//! workflows pass actionlint (with shellcheck on their scripts), `action.yml` agrees with the
//! workflows using it, and the shell scripts pass shellcheck. tests/ci_templates_commands.rs
//! checks what the templates run; tests/ci_templates_install.rs checks `install.sh`.
//!
//! actionlint comes from `scripts/actionlint.sh` (`DAGSTER_DEPLOY_ACTIONLINT`); without it the
//! lint test skips with a notice, except under `CI`, where it fails.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::templates::{files, root, yaml};
use support::{git_in, in_ci};

// ---- actionlint -------------------------------------------------------------------------------

/// The actionlint executable: `DAGSTER_DEPLOY_ACTIONLINT`, else where `scripts/actionlint.sh`
/// installs it, else `actionlint` on PATH.
fn actionlint() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DAGSTER_DEPLOY_ACTIONLINT") {
        return Some(path.into());
    }
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/dagster-deploy/actionlint-venv/bin/actionlint"));
    if let Some(venv) = venv.filter(|p| p.is_file()) {
        return Some(venv);
    }
    let on_path = Command::new("actionlint").arg("-version").output();
    on_path
        .is_ok_and(|o| o.status.success())
        .then(|| "actionlint".into())
}

fn has_shellcheck() -> bool {
    Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg_attr(
    not(ci),
    ignore = "needs actionlint and shellcheck (scripts/actionlint.sh)"
)]
#[test]
fn github_workflows_and_templates_pass_actionlint_and_shellcheck() {
    let Some(actionlint) = actionlint() else {
        let why = "actionlint not found (DAGSTER_DEPLOY_ACTIONLINT, scripts/actionlint.sh)";
        assert!(!in_ci(), "{why}; CI is set, so this test must not skip");
        eprintln!("SKIPPED: {why}; run `scripts/actionlint.sh` to run this test");
        return;
    };
    // Without shellcheck actionlint silently leaves `run:` scripts unchecked.
    if !has_shellcheck() {
        assert!(
            !in_ci(),
            "shellcheck is missing: run `scripts/actionlint.sh`"
        );
        eprintln!("NOTE: shellcheck is missing: run: scripts are not checked");
    }
    let mut workflows = files(".github/workflows", ".yml");
    workflows.extend(files("ci-templates/github", ".yml"));
    let out = Command::new(&actionlint)
        .current_dir(root())
        .arg("-no-color")
        .args(&workflows)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {actionlint:?}: {e}"));
    assert!(
        out.status.success(),
        "actionlint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// actionlint checks a local action's inputs where a workflow uses it: with the templates'
/// `uses: dagster-deploy/dagster-deploy@v0` pointed at this checkout's action.yml, every `with:`
/// key must be an input of the action and every required input must be given. The action's
/// own `run:` scripts go through shellcheck (actionlint does not read action metadata).
#[cfg_attr(
    not(ci),
    ignore = "needs actionlint and shellcheck (scripts/actionlint.sh)"
)]
#[test]
fn the_action_and_the_workflows_using_it_agree() {
    let Some(actionlint) = actionlint() else {
        assert!(
            !in_ci(),
            "actionlint not found; CI is set, so this test must not skip"
        );
        eprintln!("SKIPPED: actionlint not found; run `scripts/actionlint.sh`");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("action.yml"), tmp.path().join("action.yml")).unwrap();
    let workflows = tmp.path().join(".github/workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    let mut using = 0;
    for template in files("ci-templates/github", ".yml") {
        let text = std::fs::read_to_string(&template).unwrap();
        let local = text.replace("dagster-deploy/dagster-deploy@v0", "./");
        using += usize::from(local != text);
        std::fs::write(workflows.join(template.file_name().unwrap()), local).unwrap();
    }
    assert!(using >= 2, "the templates no longer use the action");
    // actionlint finds its project through git.
    git_in(tmp.path(), &["init", "-q"]);
    let out = Command::new(&actionlint)
        .current_dir(tmp.path())
        .arg("-no-color")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "actionlint found problems with action.yml's inputs:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    if !has_shellcheck() {
        assert!(
            !in_ci(),
            "shellcheck is missing: run `scripts/actionlint.sh`"
        );
        return;
    }
    let action = yaml(&root().join("action.yml"));
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    for (i, step) in steps.iter().enumerate() {
        let script = step["run"].as_str().unwrap();
        assert!(
            !script.contains("${{"),
            "step {i}: expressions belong in env:"
        );
        let file = tmp.path().join(format!("step{i}.sh"));
        std::fs::write(&file, script).unwrap();
        let out = Command::new("shellcheck")
            .args(["-s", "bash"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "action.yml step {i}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[cfg_attr(
    not(ci),
    ignore = "needs actionlint and shellcheck (scripts/actionlint.sh)"
)]
#[test]
fn shell_scripts_pass_shellcheck() {
    if !has_shellcheck() {
        assert!(
            !in_ci(),
            "shellcheck is missing: run `scripts/actionlint.sh`"
        );
        eprintln!("SKIPPED: shellcheck is missing; run `scripts/actionlint.sh`");
        return;
    }
    for (script, shell) in [
        ("ci-templates/install.sh", "sh"),
        ("scripts/actionlint.sh", "bash"),
    ] {
        let out = Command::new("shellcheck")
            .args(["-s", shell])
            .arg(root().join(script))
            .output()
            .expect("run shellcheck");
        assert!(
            out.status.success(),
            "{script}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
