//! The one place that writes to stdout (results) and stderr (progress, details, warnings),
//! as `--quiet` and `--verbose` decide. Below every module that reports, so the workflow and
//! the commands print through it alike.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::{Mutex, OnceLock};

use crate::config::Env;

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
        line_to_stderr(text);
    }
}

/// A detail line on stderr (only with `--verbose`).
pub fn detail(text: &str) {
    if verbosity() == Verbosity::Verbose {
        line_to_stderr(text);
    }
}

/// A warning on stderr, whatever the verbosity.
pub fn warn(text: &str) {
    line_to_stderr(&format!("warning: {text}"));
}

/// Not `eprintln!`: a closed stderr (a stopped log reader) must not abort the command.
fn line_to_stderr(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Secrets already masked by this process (each is announced once).
static MASKED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// On GitHub Actions, asks the runner to hide `secret` in every later log line (a workflow
/// command on stderr). Secrets from `secrets.*` are masked by GitHub already; tokens and
/// build secrets read from files, flags or other variables are not.
pub fn mask(env: Env, secret: &str) {
    let secret = secret.trim();
    if env("GITHUB_ACTIONS").as_deref() != Some("true") || secret.is_empty() {
        return;
    }
    let Ok(mut masked) = MASKED.lock() else {
        return;
    };
    if masked.insert(secret.to_string()) {
        line_to_stderr(&format!("::add-mask::{}", escape_data(secret)));
    }
}

/// A GitHub workflow command's data, escaped.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}
