//! Where `tracing` events go: stderr, filtered by `RUST_LOG` (e.g. `RUST_LOG=debug`,
//! `RUST_LOG=dagster_deploy::server=warn`). `serve` logs from `info` (one line per request) as
//! text with timestamps or, with `--log-format json`, one JSON object per line; every other
//! command shows warnings and errors only (retries, maintenance waits), as short lines
//! between its own output.

use tracing_subscriber::EnvFilter;

use crate::cli::serve::LogFormat;
use crate::cli::{Cli, Command};

/// Installs the subscriber for this run of the binary; call once, before running `cli`.
pub fn init(cli: &Cli) {
    let serve_format = match &cli.command {
        Command::Serve(args) if args.command.is_none() => Some(args.run.log_format),
        _ => None,
    };
    let default_level = if serve_format.is_some() {
        "info"
    } else {
        "warn"
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed stderr (a server started by a script that stopped reading it) must not
        // turn every log line into a panic: tracing-subscriber reports write errors with
        // `eprintln!`, which panics then.
        .log_internal_errors(false)
        .with_ansi(false);
    // `try_init`: a second call (tests driving `main`'s code) keeps the first subscriber.
    let _ = match serve_format {
        Some(LogFormat::Json) => builder.json().flatten_event(true).try_init(),
        Some(LogFormat::Text) => builder.try_init(),
        None => builder.without_time().with_target(false).try_init(),
    };
}
