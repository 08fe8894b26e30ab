//! The session's status as a markdown table (`ci status --output-format markdown`, the pull
//! request comment of `ci notify`), laid out as the reference prints it so existing PR
//! comments keep their look.

use super::state::{LocationState, LocationStatus};

const IMAGE_BASE: &str =
    "https://raw.githubusercontent.com/dagster-io/dagster-cloud-action/main/assets";

fn image(status: LocationStatus) -> String {
    let name = match status {
        LocationStatus::Success => "success",
        LocationStatus::Pending => "pending",
        LocationStatus::Failed => "failed",
    };
    format!("{IMAGE_BASE}/{name}.png")
}

fn message(status: LocationStatus) -> &'static str {
    match status {
        LocationStatus::Success => "View in Cloud",
        LocationStatus::Pending => "Building...",
        LocationStatus::Failed => "Deploy failed",
    }
}

/// One row per selected location with history: its last status, a link (the deployment's
/// locations page once deployed, else the CI run's `status_url` when known) and the time.
pub fn markdown(states: &[LocationState]) -> String {
    let mut out = String::from(
        "\n| Location          | Status          | Link    | Updated         |\n\
         | ----------------- | --------------- | ------- | --------------- | \n",
    );
    for state in states {
        let Some(last) = state.history.last().filter(|_| state.selected) else {
            continue;
        };
        let link = match (&state.status_url, last.status) {
            (Some(url), status) if status != LocationStatus::Success => url.clone(),
            _ => format!("{}/{}/locations", state.url, state.deployment_name),
        };
        out.push_str(&format!(
            "| {} | [<img src=\"{}\" width=25 height=25/>]({link})  | [{}]({link})  | {} |\n",
            state.location_name,
            image(last.status),
            message(last.status),
            display_time(&last.timestamp),
        ));
    }
    out
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `2024-01-05T13:04:00.1+00:00` → `Jan 05, 2024 at 01:04 PM (UTC)` (Python's
/// `%b %d, %Y at %I:%M %p (%Z)`), in the timestamp's own offset; text we cannot read is shown
/// as it is.
pub fn display_time(timestamp: &str) -> String {
    parse_time(timestamp).unwrap_or_else(|| timestamp.to_string())
}

fn parse_time(t: &str) -> Option<String> {
    let num = |range: std::ops::Range<usize>| t.get(range)?.parse::<u32>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute) = (num(11..13)?, num(14..16)?);
    let month_name = MONTHS.get(usize::try_from(month).ok()?.checked_sub(1)?)?;
    let rest = t.get(16..)?;
    let offset = rest
        .find(['Z', 'z', '+', '-'])
        .map(|i| &rest[i..])
        .unwrap_or("");
    let zone = match offset {
        "" => String::new(),
        "Z" | "z" | "+00:00" | "-00:00" => " (UTC)".into(),
        other => format!(" (UTC{other})"),
    };
    let (h12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    Some(format!(
        "{month_name} {day:02}, {year} at {h12:02}:{minute:02} {ampm}{zone}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::state::{BuildMetadata, StatusChange};

    fn state(name: &str, selected: bool, history: &[(LocationStatus, &str)]) -> LocationState {
        LocationState {
            url: "https://acme.dagster.cloud".into(),
            deployment_name: "prod".into(),
            location_file: "/r/dagster_cloud.yaml".into(),
            location_name: name.into(),
            is_branch_deployment: false,
            selected,
            build: BuildMetadata::default(),
            build_output: None,
            status_url: Some("https://ci.example/run/7".into()),
            history: history
                .iter()
                .map(|(status, ts)| StatusChange {
                    timestamp: ts.to_string(),
                    status: *status,
                    log: String::new(),
                })
                .collect(),
            project_dir: None,
            other: Default::default(),
        }
    }

    #[test]
    fn rows_for_selected_locations_with_history() {
        let states = [
            state(
                "a",
                true,
                &[(LocationStatus::Success, "2024-01-05T13:04:59.123456+00:00")],
            ),
            state(
                "b",
                true,
                &[(LocationStatus::Pending, "2024-12-31T00:30:00Z")],
            ),
            state(
                "c",
                false,
                &[(LocationStatus::Failed, "2024-01-01T00:00:00Z")],
            ),
            state("d", true, &[]),
        ];
        let md = markdown(&states);
        let expected = "\n| Location          | Status          | Link    | Updated         |\n\
| ----------------- | --------------- | ------- | --------------- | \n\
| a | [<img src=\"https://raw.githubusercontent.com/dagster-io/dagster-cloud-action/main/assets/success.png\" width=25 height=25/>](https://acme.dagster.cloud/prod/locations)  | [View in Cloud](https://acme.dagster.cloud/prod/locations)  | Jan 05, 2024 at 01:04 PM (UTC) |\n\
| b | [<img src=\"https://raw.githubusercontent.com/dagster-io/dagster-cloud-action/main/assets/pending.png\" width=25 height=25/>](https://ci.example/run/7)  | [Building...](https://ci.example/run/7)  | Dec 31, 2024 at 12:30 AM (UTC) |\n";
        assert_eq!(md, expected);
    }

    #[test]
    fn odd_timestamps_are_shown_as_they_are() {
        assert_eq!(display_time("yesterday"), "yesterday");
        assert_eq!(
            display_time("2024-07-01T12:00:00+02:00"),
            "Jul 01, 2024 at 12:00 PM (UTC+02:00)"
        );
        assert_eq!(display_time("2024-13-01T12:00:00Z"), "2024-13-01T12:00:00Z");
    }
}
