//! One build run as a command performs it: credentials and engine set up once, the targets
//! built on a fresh runtime, and Ctrl-C (SIGINT) turned into [`Outcome::Interrupted`] after
//! every in-flight engine request has been dropped (so nothing more is pushed).

use std::path::Path;
use std::time::Duration;

use super::docker::DockerEngine;
use super::engine::EngineError;
use super::outcome::{BuildReport, Failure};
use super::run::{Services, report_failures, run};
use super::target::{BuildOptions, BuildTarget};
use crate::config::Env;
use crate::progress::Reporter;
use crate::registry::{Keychain, RegistryClient, RegistryError};

/// Exit code after Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Finished(BuildReport),
    /// Ctrl-C: in-flight builds and pushes were abandoned; no result is complete.
    Interrupted,
}

/// What stops a whole run (a single location's problem is a [`Failure`] instead).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    State(#[from] crate::ci::state::StateError),
}

impl RunError {
    pub fn code(&self) -> &'static str {
        match self {
            RunError::Engine(EngineError::Unavailable { .. }) => "engine-unavailable",
            RunError::Engine(_) => "engine",
            RunError::Registry(e) => e.code(),
            RunError::Runtime(_) => "runtime",
            RunError::State(e) => e.code(),
        }
    }

    pub fn hint(&self) -> String {
        match self {
            // The engine's message carries its own hint.
            RunError::Engine(_) => String::new(),
            RunError::Registry(e) => e.hint(),
            RunError::Runtime(_) => "check the process limits (threads, open files)".into(),
            RunError::State(e) => e.hint().into(),
        }
    }
}

/// Builds the targets; connects to the engine only when at least one target can be built.
pub fn execute(
    targets: Vec<Result<BuildTarget, Failure>>,
    options: &BuildOptions,
    reporter: &Reporter,
    env: Env,
) -> Result<Outcome, RunError> {
    let keychain = Keychain::from_env(env)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let outcome = runtime.block_on(async {
        // Registered before any work, so an early Ctrl-C is ours too.
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let work = async {
            if !targets.iter().any(Result::is_ok) {
                // Nothing can be built: no engine needed to report the failures.
                let failures = targets.into_iter().filter_map(Result::err).collect();
                return Ok(report_failures(failures, reporter));
            }
            let engine = DockerEngine::connect().await?;
            let registry = RegistryClient::new(engine.insecure_registries().await);
            let services = Services {
                engine: &engine,
                registry: &registry,
                keychain: &keychain,
                env,
            };
            Ok::<_, RunError>(run(&services, targets, options, reporter).await)
        };
        tokio::select! {
            report = work => report.map(Outcome::Finished),
            _ = &mut ctrl_c => Ok(Outcome::Interrupted),
        }
    });
    // Blocking work (a context walk) may still run after Ctrl-C: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(200));
    outcome
}

/// `org.opencontainers.image.source`: the CI's repository URL, else the `origin` remote
/// (without any user name or token in it).
pub fn source_url(repository: &Path, env: Env) -> Option<String> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    if let (Some(server), Some(repo)) = (var("GITHUB_SERVER_URL"), var("GITHUB_REPOSITORY")) {
        return Some(format!("{}/{repo}", server.trim_end_matches('/')));
    }
    if let Some(url) = var("CI_PROJECT_URL") {
        return Some(url);
    }
    let repo = git2::Repository::open(repository).ok()?;
    let remote = repo.find_remote("origin").ok()?;
    remote.url().map(strip_userinfo)
}

fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}/{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_remote_urls_are_dropped() {
        assert_eq!(
            strip_userinfo("https://gitlab-ci-token:secret@gitlab.example/acme/repo.git"),
            "https://gitlab.example/acme/repo.git"
        );
        assert_eq!(
            strip_userinfo("git@github.com:acme/repo.git"),
            "git@github.com:acme/repo.git"
        );
    }

    #[test]
    fn ci_urls_win() {
        let env = |name: &str| match name {
            "GITHUB_SERVER_URL" => Some("https://github.com/".to_string()),
            "GITHUB_REPOSITORY" => Some("acme/repo".to_string()),
            _ => None,
        };
        assert_eq!(
            source_url(Path::new("/nonexistent"), &env).as_deref(),
            Some("https://github.com/acme/repo")
        );
    }
}
