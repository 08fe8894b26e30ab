//! One function per command: arguments in, results printed, an [`Error`] out.

mod build;
mod check;
mod ci;
mod compat;
mod deploy;
mod history;
mod plan;
mod serve;
mod serverless;

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command, ConfigArgs};
use crate::config::CONFIG_FILE_NAME;
use crate::error::Error;

/// Runs the command on the process's one async runtime; `Ok` carries the exit code of a
/// command that finished but has a verdict (e.g. a build that failed).
pub fn run(cli: Cli) -> Result<u8, Error> {
    crate::output::set_verbosity(match (cli.quiet, cli.verbose) {
        (true, _) => crate::output::Verbosity::Quiet,
        (_, true) => crate::output::Verbosity::Verbose,
        _ => crate::output::Verbosity::Normal,
    });
    // Library warnings (retries, maintenance waits) go through `tracing`, whose subscriber
    // `main` installs (src/logging.rs; `debug` with --verbose).
    crate::ci::github::mask_env_secrets(&process_env);
    let runtime = runtime()?;
    let code = runtime.block_on(dispatch(cli));
    // Blocking work (a build context walk after Ctrl-C) may still run: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

async fn dispatch(cli: Cli) -> Result<u8, Error> {
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Plan(args) => plan::run(&args).await,
        Command::Build(args) => build::run(&args).await,
        Command::Deploy(args) => deploy::run(&args).await,
        Command::Deployment(args) => compat::run_deployment(&args.command).await,
        Command::BranchDeployment(args) => compat::run_branch_deployment(&args.command).await,
        Command::Serve(args) => serve::run(&args).await,
        Command::History(args) => history::run_history(&args).await,
        Command::Rollback(args) => history::run_rollback(&args).await,
        Command::Ci(args) => ci::run(&args.command).await,
        Command::Serverless(args) => serverless::run(&args.command).await,
    }
}

/// Whether the command asked for JSON (errors are then JSON too).
pub fn wants_json(cli: &Cli) -> bool {
    match &cli.command {
        Command::Check(a) => a.json,
        Command::Plan(a) => a.json,
        Command::Build(a) => a.json,
        Command::Deploy(a) => a.json,
        Command::History(a) => a.json,
        Command::Rollback(a) => a.json,
        Command::Serverless(a) => match &a.command {
            crate::cli::serverless::ServerlessCommand::DeployPythonExecutable(d) => d.json,
        },
        Command::Deployment(_)
        | Command::BranchDeployment(_)
        | Command::Serve(_)
        | Command::Ci(_) => false,
    }
}

/// The process's one runtime: multi-threaded, since builds run in parallel and `serve`
/// answers requests concurrently.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed {
            message: format!("cannot start the async runtime: {e}"),
            hint: "check the process limits (threads, open files)".into(),
        })
}

/// Dagster+ settings from `flags`, the environment and the config file; on GitHub the token
/// is masked in the log first, wherever it came from.
fn resolve_settings(flags: &crate::api::SettingsFlags) -> Result<crate::api::Settings, Error> {
    let settings = crate::api::Settings::resolve(flags, &process_env)?;
    if let Some(token) = &settings.token {
        crate::ci::github::mask(&process_env, token.expose());
    }
    Ok(settings)
}

/// The current folder.
fn current_dir() -> Result<PathBuf, Error> {
    std::env::current_dir().map_err(|e| Error::Failed {
        message: format!("cannot read the current folder: {e}"),
        hint: "run from an existing folder".into(),
    })
}

/// The process environment, for templates and CI detection.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `--config`, else `dagster_cloud.yaml` in the current folder or the nearest folder above it
/// (stopping at the repository root).
pub fn locate_config(args: &ConfigArgs) -> Result<PathBuf, Error> {
    if let Some(path) = &args.config {
        return Ok(path.clone());
    }
    let cwd = current_dir()?;
    let mut dir: &Path = &cwd;
    loop {
        let candidate = dir.join(CONFIG_FILE_NAME);
        if candidate.is_file() {
            // Keep paths short in messages when the file is right here.
            return Ok(if dir == cwd {
                PathBuf::from(CONFIG_FILE_NAME)
            } else {
                candidate
            });
        }
        if dir.join(".git").exists() {
            break;
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => break,
        }
    }
    Err(Error::Usage {
        message: format!(
            "no {CONFIG_FILE_NAME} in {} or the folders above it",
            cwd.display()
        ),
        hint: "run from the monorepo that holds dagster_cloud.yaml, or pass --config PATH".into(),
    })
}
