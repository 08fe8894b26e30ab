//! What happened to each location: built, reused or failed (with the failing step, the message,
//! a hint and the last lines of its log). This is what `build --json` prints.

use serde::Serialize;

/// The steps of one location, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Reading the location's settings: registry, Dockerfile, tags.
    Configure,
    /// Finding registry credentials.
    Credentials,
    /// Asking the registry whether the image already exists.
    Check,
    /// Walking the build directory.
    Context,
    /// Reading the build secrets.
    Secrets,
    /// Pulling the cache image.
    Cache,
    Build,
    Push,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Configure => "configure",
            Step::Credentials => "credentials",
            Step::Check => "check",
            Step::Context => "context",
            Step::Secrets => "secrets",
            Step::Cache => "cache",
            Step::Build => "build",
            Step::Push => "push",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Built,
    /// The content-key tag was already in the registry: nothing built or pushed.
    Reused,
    Failed,
    /// Stopped by `--fail-fast` (another location failed) before it finished.
    Cancelled,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Built => "built",
            BuildStatus::Reused => "reused",
            BuildStatus::Failed => "failed",
            BuildStatus::Cancelled => "cancelled",
        }
    }
}

/// Why a location failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    #[serde(skip)]
    pub location: String,
    pub step: Step,
    pub message: String,
    pub hint: String,
    /// The last lines of the build or push output.
    pub log_tail: Vec<String>,
}

impl Failure {
    pub fn new(location: &str, step: Step, message: String, hint: &str) -> Failure {
        Failure {
            location: location.to_string(),
            step,
            message,
            hint: hint.to_string(),
            log_tail: Vec::new(),
        }
    }
}

/// The result of one location.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocationResult {
    pub location: String,
    pub status: BuildStatus,
    /// The image to register: `<registry>:<location>-<content key>`.
    pub image: Option<String>,
    /// Every tag pushed in this run; for a reused image, the human tag when it was new (set
    /// on the registry, no layer pushed).
    pub pushed_tags: Vec<String>,
    /// Manifest digest of the pushed image, when the engine reported it.
    pub digest: Option<String>,
    pub content_key: Option<String>,
    /// The engine's builder that built the image (`buildkit` or `classic`); none when reused.
    pub builder: Option<super::Builder>,
    /// Dockerfile steps of the build, and how many came from the layer cache (BuildKit).
    pub steps: Option<u32>,
    pub cached_steps: Option<u32>,
    /// The location whose build made this image (same context, Dockerfile and settings):
    /// built once, tagged and pushed for each.
    pub shared_build: Option<String>,
    pub seconds: f64,
    pub failure: Option<Failure>,
}

/// Counts per status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BuildSummary {
    pub built: usize,
    pub reused: usize,
    pub failed: usize,
    pub cancelled: usize,
}

/// Every location's result, in plan order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildReport {
    pub results: Vec<LocationResult>,
    pub summary: BuildSummary,
}

impl BuildReport {
    pub fn new(results: Vec<LocationResult>) -> BuildReport {
        let count = |s| results.iter().filter(|r| r.status == s).count();
        let summary = BuildSummary {
            built: count(BuildStatus::Built),
            reused: count(BuildStatus::Reused),
            failed: count(BuildStatus::Failed),
            cancelled: count(BuildStatus::Cancelled),
        };
        BuildReport { results, summary }
    }

    /// Every location ended with an image.
    pub fn success(&self) -> bool {
        self.summary.failed == 0 && self.summary.cancelled == 0
    }
}

impl BuildReport {
    /// The results as a table for people (stdout); failures name their step and message.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let width = self
            .results
            .iter()
            .map(|r| r.location.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for r in &self.results {
            let what = match (&r.image, &r.failure) {
                (Some(image), _) => match (r.builder, r.steps, r.cached_steps) {
                    (Some(builder), Some(steps), Some(cached)) => format!(
                        "{image} ({}: {cached} of {steps} steps cached)",
                        builder.as_str()
                    ),
                    (Some(builder), _, _) => format!("{image} ({})", builder.as_str()),
                    _ => image.clone(),
                },
                (None, Some(f)) => {
                    format!("at step `{}`: {}", f.step.as_str(), first_line(&f.message))
                }
                (None, None) => "cancelled (--fail-fast)".to_string(),
            };
            let _ = writeln!(
                out,
                "{:<width$}  {:<9}  {:>6.1} s  {what}",
                r.location,
                r.status.as_str(),
                r.seconds
            );
        }
        let s = &self.summary;
        let n = self.results.len();
        let _ = write!(
            out,
            "{n} location{}: {} built, {} reused, {} failed",
            if n == 1 { "" } else { "s" },
            s.built,
            s.reused,
            s.failed
        );
        if s.cancelled > 0 {
            let _ = write!(out, ", {} cancelled", s.cancelled);
        }
        out.push('\n');
        out
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
