//! The one place that writes to stdout (results) and stderr (progress, details, warnings),
//! as `--quiet` and `--verbose` decide. Below every module that reports, so the workflow and
//! the commands print through it alike.

use std::io::Write as _;
use std::sync::OnceLock;

/// How much people see on stderr; results on stdout are never held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    /// `--quiet`: warnings and errors only.
    Quiet,
    #[default]
    Normal,
    /// `--verbose`: also the details (each request retried, each file read...).
    Verbose,
}

static VERBOSITY: OnceLock<Verbosity> = OnceLock::new();

/// Decided once per process, before any output.
pub fn set_verbosity(v: Verbosity) {
    let _ = VERBOSITY.set(v);
}

pub fn verbosity() -> Verbosity {
    VERBOSITY.get().copied().unwrap_or_default()
}

/// A result on stdout (as given: end it with a newline).
pub fn result(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// A result line on stdout.
pub fn result_line(text: &str) {
    result(&format!("{text}\n"));
}

/// A progress line on stderr (not with `--quiet`).
pub fn progress(text: &str) {
    if verbosity() > Verbosity::Quiet {
        eprintln!("{text}");
    }
}

/// A detail line on stderr (only with `--verbose`).
pub fn detail(text: &str) {
    if verbosity() == Verbosity::Verbose {
        eprintln!("{text}");
    }
}

/// A warning on stderr, whatever the verbosity.
pub fn warn(text: &str) {
    eprintln!("warning: {text}");
}
