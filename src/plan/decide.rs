//! The decision table: from the facts gathered about one location, its action and why.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{Action, Reason, ReasonCode};
use crate::config::{self, Location, LocationSettings};

/// The reason of a skipped location.
const UNCHANGED: &str = "no changes in its build inputs or entry";

/// How many changed paths a reason lists.
const MAX_PATHS_SHOWN: usize = 3;

/// What the base revision says about one location.
pub(super) enum BaseEntry<'a> {
    /// There is no base revision (the reason says why): everything is built.
    NoBase(&'a str),
    /// The location is not in the base's dagster_cloud.yaml (or there is no such file).
    Absent,
    /// The deployment planned against does not hold the location.
    NotDeployed,
    /// The base's dagster_cloud.yaml does not load: entries cannot be compared.
    Unknown,
    /// The config files are the same at the base: so are the entry and its settings.
    Same,
    Known {
        location: &'a Location,
        /// Boxed: the settings are large next to the other variants.
        settings: Box<LocationSettings>,
    },
}

/// Whether the command line forces a build, and how (the reason says which).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Forced {
    No,
    /// Named with `--location` / `--location-name`.
    Named,
    /// `--all`.
    All,
}

pub(super) struct Facts<'a> {
    pub(super) forced: Forced,
    pub(super) base: BaseEntry<'a>,
    pub(super) location: &'a Location,
    pub(super) settings: &'a LocationSettings,
    /// Changed paths that count as build inputs of this location.
    pub(super) changed: &'a [&'a String],
}

/// The decision table, first match wins.
pub(super) fn decide(f: &Facts) -> (Action, Reason) {
    let (action, code, message) = match &f.base {
        _ if f.forced != Forced::No => (
            Action::Build,
            ReasonCode::Forced,
            match f.forced {
                Forced::All => "--all: every location is built whatever changed",
                _ => "named on the command line: built whatever changed",
            }
            .to_string(),
        ),
        BaseEntry::NoBase(why) => (
            Action::Build,
            ReasonCode::NoBase,
            format!("no base revision: {why}"),
        ),
        BaseEntry::Absent => (
            Action::Build,
            ReasonCode::NewLocation,
            "new location".into(),
        ),
        BaseEntry::NotDeployed => (
            Action::Build,
            ReasonCode::NotDeployed,
            "not deployed yet".into(),
        ),
        _ if !f.changed.is_empty() => (
            Action::Build,
            ReasonCode::InputsChanged,
            describe_paths(f.changed),
        ),
        // Without the base's settings nothing proves the last image was built with today's
        // (a new registry, build arguments, ...): building is the safe choice.
        BaseEntry::Unknown => (
            Action::Build,
            ReasonCode::BaseConfigUnreadable,
            "dagster_cloud.yaml at the base revision does not load, so its build settings \
             cannot be compared; building"
                .into(),
        ),
        BaseEntry::Same => (Action::Skip, ReasonCode::Unchanged, UNCHANGED.into()),
        BaseEntry::Known { location, settings } => {
            let build_keys = build_setting_changes(location, settings, f.location, f.settings);
            let entry_keys = changed_keys(
                &without_build(&location.entry),
                &without_build(&f.location.entry),
            );
            if !build_keys.is_empty() {
                (
                    Action::Build,
                    ReasonCode::BuildSettingsChanged,
                    format!("build settings changed: {}", build_keys.join(", ")),
                )
            } else if !entry_keys.is_empty() {
                (
                    Action::Redeploy,
                    ReasonCode::EntryChanged,
                    format!(
                        "dagster_cloud.yaml entry changed: {}",
                        entry_keys.join(", ")
                    ),
                )
            } else {
                (Action::Skip, ReasonCode::Unchanged, UNCHANGED.into())
            }
        }
    };
    (action, Reason { code, message })
}

fn describe_paths(paths: &[&String]) -> String {
    let shown: Vec<&str> = paths
        .iter()
        .take(MAX_PATHS_SHOWN)
        .map(|p| p.as_str())
        .collect();
    let mut s = format!("changed: {}", shown.join(", "));
    if paths.len() > MAX_PATHS_SHOWN {
        s.push_str(&format!(" (+{} more)", paths.len() - MAX_PATHS_SHOWN));
    }
    s
}

/// Names of the build settings that differ (`build.registry`, `dockerfile`, ...), comparing
/// meanings rather than spellings (`./a/` is `a`). `ignore` globs are a trigger policy, not a
/// setting of the image: changing them builds nothing.
fn build_setting_changes(
    base: &Location,
    base_settings: &LocationSettings,
    head: &Location,
    settings: &LocationSettings,
) -> Vec<String> {
    // A missing `build` or `directory` means the yaml's folder, as `directory: .` does.
    let build = |l: &Location| {
        let mut b = match l.entry.get("build") {
            Some(Value::Object(b)) => b.clone(),
            _ => Map::new(),
        };
        b.insert("directory".into(), Value::String(l.build_directory.clone()));
        b
    };
    let mut keys: Vec<String> = changed_keys(&build(base), &build(head))
        .into_iter()
        .map(|k| format!("build.{k}"))
        .collect();
    let a = image_settings(base_settings);
    let b = image_settings(settings);
    keys.extend(
        changed_keys(&a, &b)
            .into_iter()
            .map(|k| format!("{}:{k}", config::SETTINGS_FILE_NAME)),
    );
    let sorted = |w: &[String]| -> BTreeSet<String> { w.iter().cloned().collect() };
    if sorted(&base_settings.watch) != sorted(&settings.watch) {
        keys.push(format!("{}:watch", config::SETTINGS_FILE_NAME));
    }
    // The context's files are in the key already; a moved context may change none of them.
    if base_settings.context != settings.context {
        keys.push(format!("{}:context", config::SETTINGS_FILE_NAME));
    }
    keys
}

/// Top-level keys whose values differ between two maps, sorted.
fn changed_keys(a: &Map<String, Value>, b: &Map<String, Value>) -> Vec<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

fn without_build(entry: &Map<String, Value>) -> Map<String, Value> {
    let mut e = entry.clone();
    e.remove("build");
    e
}

/// The settings that change what image is built (not where it goes): part of the content key.
fn image_settings(s: &LocationSettings) -> Map<String, Value> {
    let v = serde_json::json!({
        "dockerfile": s.dockerfile,
        "build_args": s.build_args,
        "target": s.target,
        "platform": s.platform,
        "python_version": s.python_version,
        "base_image": s.base_image,
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// Bytes mixed into the content key besides the input trees: the image-shaping settings.
/// The registry is left out on purpose: the same content pushed elsewhere keeps its tag.
pub(super) fn content_salt(settings: &LocationSettings) -> Vec<u8> {
    // serde_json keeps insertion order and `image_settings` builds a fixed order: stable bytes.
    serde_json::to_vec(&Value::Object(image_settings(settings))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_summarised_after_three() {
        let paths: Vec<String> = (1..=5).map(|i| format!("etl/f{i}.py")).collect();
        let refs: Vec<&String> = paths.iter().collect();
        assert_eq!(
            describe_paths(&refs),
            "changed: etl/f1.py, etl/f2.py, etl/f3.py (+2 more)"
        );
    }
}
