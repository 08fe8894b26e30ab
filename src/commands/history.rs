//! `history LOCATION` and `rollback LOCATION [--to REVISION]`: against a dagster-deploy server
//! (our `locationHistory`/`rollbackLocation` extension) when Dagster+ settings are present,
//! else against the local store `deploy` uses (`.dagster-deploy/` at the repository root),
//! both through `deploy::Deployment`.

use serde::Serialize;

use crate::api::ops::HistoryEntry;
use crate::cli::api::{HistoryArgs, RollbackArgs};
use crate::deploy::target::{self, Deployment};
use crate::error::Error;
use crate::output;

/// The deployment the settings name, else the repository's local store, which must exist:
/// reading or rolling back never creates a store or a deployment.
fn deployment(
    conn: &crate::cli::api::ConnectionArgs,
    what: &str,
) -> Result<Box<dyn Deployment>, Error> {
    let settings = super::compat::settings(conn, None)?;
    target::existing_or_explain(&settings, &super::current_dir()?, what)
}

pub async fn run_history(a: &HistoryArgs) -> Result<u8, Error> {
    let target = deployment(&a.connection, "history")?;
    let revisions = target
        .history(&a.location, usize::from(a.limit), a.before)
        .await?;
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            location: &'a str,
            deployment: &'a str,
            revisions: &'a [HistoryEntry],
        }
        output::result(&output::json(&Out {
            location: &a.location,
            deployment: target.name(),
            revisions: &revisions,
        })?);
    } else {
        output::result(&history_table(&revisions));
    }
    Ok(0)
}

pub async fn run_rollback(a: &RollbackArgs) -> Result<u8, Error> {
    let target = deployment(&a.connection, "rollback")?;
    let (revision, document) = target.rollback(&a.location, a.to).await?;
    if a.json {
        output::result(&output::json(&serde_json::json!({
            "location": a.location,
            "deployment": target.name(),
            "revision": revision,
            "document": document,
        }))?);
    } else {
        output::result_line(&format!(
            "Rolled back location {} in {}: revision {revision} registers image {} (commit {}).",
            a.location,
            target.describe(),
            document["image"].as_str().unwrap_or("none"),
            document["git"]["commit_hash"].as_str().unwrap_or("none"),
        ));
    }
    Ok(0)
}

fn history_table(revisions: &[HistoryEntry]) -> String {
    let mut rows = vec![[
        "REVISION".to_string(),
        "WHEN (UTC)".into(),
        "ACTION".into(),
        "COMMIT".into(),
        "BY".into(),
        "IMAGE".into(),
    ]];
    for r in revisions {
        let action = match (r.kind.as_str(), r.rolled_back_from) {
            ("ROLLED_BACK", Some(from)) => format!("rollback to {from}"),
            (k, _) => k.to_ascii_lowercase(),
        };
        let commit = r.commit_hash.as_deref().unwrap_or("-");
        rows.push([
            r.id.to_string(),
            utc(r.timestamp),
            action,
            commit.get(..7).unwrap_or(commit).to_string(),
            r.actor.clone(),
            r.document
                .as_ref()
                .and_then(|d| d["image"].as_str())
                .unwrap_or("-")
                .to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` for seconds since the epoch (UTC).
fn utc(seconds: f64) -> String {
    let secs = seconds.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000.5), "2023-11-14 22:13:20");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00");
    }
}
