//! `check`: validate dagster_cloud.yaml and dagster-deploy.toml, every problem at once.

use serde::Serialize;

use crate::changes::Repo;
use crate::cli::CheckArgs;
use crate::config::{self, ConfigError, Diagnostic, Workspace};
use crate::error::Error;
use crate::output;
use crate::plan::locate;

#[derive(Serialize)]
struct CheckResult<'a> {
    valid: bool,
    file: String,
    locations: Vec<&'a str>,
}

pub fn run(args: &CheckArgs) -> Result<u8, Error> {
    let file = super::locate_config(&args.config)?;
    let inspected = config::inspect(&file, &super::process_env)?;
    let ws = inspected.workspace;
    let mut diagnostics = inspected.diagnostics;
    diagnostics.extend(path_problems(&ws));
    if !diagnostics.is_empty() {
        config::sort_diagnostics(&mut diagnostics);
        return Err(ConfigError::Invalid { file, diagnostics }.into());
    }
    let names: Vec<&str> = ws.locations.iter().map(|l| l.name.as_str()).collect();
    if args.json {
        output::result(&output::json(&CheckResult {
            valid: true,
            file: file.to_string_lossy().into_owned(),
            locations: names,
        })?);
    } else {
        let n = names.len();
        output::result_line(&format!(
            "{} is valid: {n} location{} ({})",
            file.display(),
            if n == 1 { "" } else { "s" },
            names.join(", ")
        ));
    }
    Ok(0)
}

/// Build directories, Dockerfiles and watched paths: in a git repository as `plan` sees them
/// in the work tree (inside the repository, symlinks followed, directories present); outside
/// one, each build directory must exist on disk.
fn path_problems(ws: &Workspace) -> Vec<Diagnostic> {
    let in_repo = Repo::discover(&ws.root)
        .ok()
        .and_then(|repo| Some((repo.relative_path(&ws.root).ok()?, repo)));
    match in_repo {
        Some((yaml_dir, repo)) => {
            let files = repo.worktree_source();
            locate::locate(&repo, &files, &yaml_dir, ws).1
        }
        None => locate::check_on_disk(ws),
    }
}
