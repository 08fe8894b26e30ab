//! The one support module of the integration tests: temporary git repositories, running the
//! binary, fixture trees, the real services (Docker engine, registry, base image), `serve` as
//! a process, an in-process server, and what the CI pipeline tests stand on (the template
//! files, a GitLab runner, a `ci` session project, a server for Python-executable deploys).
//!
//! Tests that need a real component (Docker, the registry, the reference CLI, actionlint,
//! pex, gitlab-ci-local) carry `#[cfg_attr(not(ci), ignore = "needs ...")]`: `build.rs` sets
//! `ci` when `CI` is set at build time. So a plain `cargo test` lists them as ignored, and under
//! CI they run and fail when the component is missing (see [`missing`]).
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod ci;
pub mod dagster;
pub mod files;
pub mod git;
pub mod gitlab;
pub mod mono;
pub mod pex;
pub mod run;
pub mod serve;
pub mod server;
pub mod services;
pub mod session;
pub mod templates;

pub use files::*;
pub use git::*;
pub use run::*;
pub use services::*;

/// Whether the tests run under CI (`CI` set and not `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

/// A component a test needs is missing (`reason`; `fix` says how to get it): under CI the test
/// fails; run by hand (with `--include-ignored`) it says so on stderr and gets `None`.
pub fn missing<T>(reason: &str, fix: &str) -> Option<T> {
    if in_ci() {
        panic!("{reason}\nCI is set, so this test must not skip: {fix}");
    }
    eprintln!("SKIPPED: {reason}; {fix} to run this test");
    None
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
