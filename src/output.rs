//! How results reach people and machines: stdout carries results (a table, or JSON with
//! `--json`), stderr carries errors, warnings and progress. Rendering is pure: functions return
//! text; the printer below is the one place that writes it, as `--quiet`/`--verbose` say.

use std::fmt::Write as _;

use crate::ci::context::CiContext;
pub use crate::printer::{
    Verbosity, detail, progress, result, result_line, set_verbosity, verbosity, warn,
};
use crate::progress::{Mode, Reporter};

/// The build reporter for this run's context: bars, CI groups or plain lines, nothing with
/// `--quiet`.
pub fn reporter(ci: &CiContext) -> Reporter {
    match verbosity() {
        Verbosity::Quiet => Reporter::quiet(),
        _ => Reporter::new(Mode::detect(ci)),
    }
}

use serde::Serialize;

use crate::changes::short_sha;
use crate::config::Diagnostic;
use crate::error::Error;
use crate::plan::{ComparedSource, Plan, PlanBase, PlannedLocation, ReasonCode};

/// Pretty JSON with a trailing newline. Serialising our own types should not fail (paths are
/// written lossily); if it ever does, the command fails with exit code 1.
pub fn json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| Error::Failed {
            message: format!("cannot write the result as JSON: {e}"),
            hint: "this is a bug in dagster-deploy; please report it with the command you ran"
                .into(),
        })
}

/// The plan as a table for people. `deployment` names what the plan compared with, when it
/// read a deployment: each location's row then says which commit it was compared with.
pub fn plan_table(plan: &Plan, deployment: Option<&str>) -> String {
    let mut out = String::new();
    let by_deployment = |l: &&PlannedLocation| {
        l.compared_with
            .as_ref()
            .is_some_and(|c| c.source == ComparedSource::Deployment)
    };
    let base_users = plan.locations.len() - plan.locations.iter().filter(by_deployment).count();
    if let Some(deployment) = deployment {
        let _ = writeln!(
            out,
            "compared with what {deployment} runs: each deployed location with the commit it \
             was deployed from"
        );
    }
    let for_whom = match deployment {
        Some(_) if base_users == 0 => " (used by no location)",
        Some(_) => " (for locations deployed without a commit)",
        None => "",
    };
    match &plan.base {
        PlanBase::Found {
            commit,
            rev,
            source,
        } => {
            let source = serde_json::to_value(source).ok();
            let source = source.as_ref().and_then(|s| s.as_str()).unwrap_or("");
            let _ = writeln!(
                out,
                "base  {} ({rev}, {source}){for_whom}",
                short_sha(commit)
            );
        }
        PlanBase::Missing { reason } => {
            let _ = writeln!(out, "base  none: {reason}");
        }
    }
    let dirty = if plan.head.dirty {
        " + uncommitted changes"
    } else {
        ""
    };
    let _ = writeln!(out, "head  {}{dirty}\n", short_sha(&plan.head.commit));

    let width = plan
        .locations
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0);
    for l in &plan.locations {
        let compared = match (&l.compared_with, deployment) {
            (Some(c), Some(_)) if c.source == ComparedSource::Deployment => {
                format!(" (vs deployed {})", short_sha(&c.commit))
            }
            (Some(c), Some(_)) if l.reason.code != ReasonCode::NotDeployed => {
                format!(" (vs base {})", short_sha(&c.commit))
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<9} {:<width$}  {}{compared}",
            l.action.as_str(),
            l.name,
            l.reason.message
        );
    }
    for name in &plan.removed_locations {
        let _ = writeln!(
            out,
            "{:<9} {name:<width$}  removed from dagster_cloud.yaml (not deleted)",
            "removed"
        );
    }
    let s = &plan.summary;
    let n = plan.locations.len();
    let _ = writeln!(
        out,
        "\n{n} location{}: {} to build, {} to redeploy, {} unchanged",
        if n == 1 { "" } else { "s" },
        s.build,
        s.redeploy,
        s.skip
    );
    out
}

/// An error for people: the message, every config problem with its position, and the hint.
pub fn error_text(err: &Error) -> String {
    let mut out = format!("error: {err}\n");
    for d in err.diagnostics() {
        out.push_str(&diagnostic_text(d));
    }
    let hint = err.hint();
    if !hint.is_empty() {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}

pub fn diagnostic_text(d: &Diagnostic) -> String {
    let field = if d.field.is_empty() {
        String::new()
    } else {
        format!("{}: ", d.field)
    };
    let mut s = format!(
        "{}:{}:{}: {field}{}\n",
        d.file.display(),
        d.line,
        d.column,
        d.message
    );
    if !d.hint.is_empty() {
        let _ = writeln!(s, "    hint: {}", d.hint);
    }
    s
}

#[derive(Serialize)]
struct JsonError<'a> {
    error: JsonErrorBody<'a>,
}

#[derive(Serialize)]
struct JsonErrorBody<'a> {
    code: &'static str,
    message: String,
    hint: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    diagnostics: &'a [Diagnostic],
}

/// An error as JSON, with a stable `code` (for `--json` callers); JSON in any case.
pub fn error_json(err: &Error) -> String {
    let body = JsonError {
        error: JsonErrorBody {
            code: err.code(),
            message: err.to_string(),
            hint: err.hint(),
            diagnostics: err.diagnostics(),
        },
    };
    json(&body).unwrap_or_else(|e| {
        let fallback = serde_json::json!({"error": {"code": "internal", "message": e.to_string()}});
        format!("{fallback}\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value serde_json cannot write (a map with non-string keys).
    struct Unwritable;

    impl Serialize for Unwritable {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(&[1u8], &1u8)?;
            map.end()
        }
    }

    #[test]
    fn json_that_cannot_be_written_is_a_failure_not_an_exit_0() {
        let err = json(&Unwritable).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_FAILURE);
        assert!(
            err.to_string()
                .starts_with("cannot write the result as JSON")
        );
        // The error itself still reaches --json callers as JSON.
        let text = error_json(&err);
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(parsed["error"]["code"], "failed");
    }
}
