//! A build session's state files (`ci::state`, the reference's format) filled from the
//! workflow's values: new states from the plan, build results, and the `git` facts that
//! documents registered from a session carry.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::api::Settings;
use crate::api::document::GitMetadata;
use crate::build::{BuildReport, BuildStatus, LocationResult};
use crate::ci::state::{
    BuildConfig, BuildMetadata, BuildOutput, LocationState, LocationStatus, StateDir, StateError,
};
use crate::plan::Plan;
use crate::protocol::DEFAULT_DEPLOYMENT;

/// Session facts for state files this run creates (an existing file keeps its own).
#[derive(Debug, Clone, Default)]
pub struct SessionDefaults {
    pub url: String,
    pub deployment_name: String,
    /// The commit and repository facts recorded in `build`.
    pub git: GitMetadata,
}

impl SessionDefaults {
    /// The organisation URL and deployment the settings name (flags, environment, config
    /// file, as every command resolves them); no URL when none is named, deployment `prod`.
    pub fn from_settings(settings: &Settings, git: GitMetadata) -> SessionDefaults {
        SessionDefaults {
            git,
            url: settings.organization_url("").unwrap_or_default(),
            deployment_name: settings
                .deployment
                .clone()
                .unwrap_or_else(|| DEFAULT_DEPLOYMENT.to_string()),
        }
    }
}

/// The session's git facts, with the location's `build` settings.
pub fn build_metadata(git: &GitMetadata, build_config: Option<BuildConfig>) -> BuildMetadata {
    BuildMetadata {
        git_url: git.url.clone(),
        commit_hash: git.commit_hash.clone(),
        build_config,
        git_provider: git.provider.clone(),
        repo_owner: git.repo_owner.clone(),
        repo_name: git.repo_name.clone(),
        base_branch: git.base_branch.clone(),
        defs_base_path: git.defs_base_path.clone(),
    }
}

/// The `git` facts documents registered from a session carry.
pub fn git_metadata(build: &BuildMetadata) -> GitMetadata {
    GitMetadata {
        commit_hash: build.commit_hash.clone(),
        url: build.git_url.clone(),
        provider: build.git_provider.clone(),
        repo_owner: build.repo_owner.clone(),
        repo_name: build.repo_name.clone(),
        base_branch: build.base_branch.clone(),
        defs_base_path: build.defs_base_path.clone(),
    }
}

/// Records each result in its location's state file: the image as `build_output` for built
/// and reused locations, a history entry for every one. Returns the files written.
pub fn record_build(
    dir: &StateDir,
    plan: &Plan,
    report: &BuildReport,
    defaults: &SessionDefaults,
) -> Result<Vec<PathBuf>, StateError> {
    let mut written = Vec::new();
    for result in &report.results {
        let mut state = match dir.load(&result.location)? {
            Some(state) => state,
            None => new_state(plan, &result.location, defaults),
        };
        apply(&mut state, result);
        dir.save(&state)?;
        written.push(dir.file(&result.location));
    }
    Ok(written)
}

fn apply(state: &mut LocationState, result: &LocationResult) {
    match (&result.status, &result.image) {
        (BuildStatus::Built | BuildStatus::Reused, Some(image)) => {
            state.build_output = Some(BuildOutput::Docker {
                image: image.clone(),
                python_version: None,
                pex_bundle: false,
            });
            let verb = if result.status == BuildStatus::Built {
                "built and pushed"
            } else {
                "reused"
            };
            state.add_status(LocationStatus::Pending, format!("{verb} image {image}"));
        }
        _ => {
            let why = result
                .failure
                .as_ref()
                .map_or_else(|| result.status.as_str().to_string(), |f| f.message.clone());
            // An image from an earlier build in a reused session folder is not this build's:
            // `ci deploy` must not register it as if this one had succeeded.
            state.build_output = None;
            state.add_status(LocationStatus::Failed, format!("build failed: {why}"));
        }
    }
}

/// A new location's state from the plan: its build settings, the plan's head commit.
pub fn new_state(plan: &Plan, location: &str, defaults: &SessionDefaults) -> LocationState {
    let planned = plan.location(location);
    let build_config = planned.map(|l| BuildConfig {
        directory: l
            .entry
            .get("build")
            .and_then(|b| b.get("directory"))
            .and_then(Value::as_str)
            .map(str::to_string),
        registry: l.registry.clone(),
    });
    LocationState {
        url: defaults.url.clone(),
        deployment_name: defaults.deployment_name.clone(),
        location_file: plan.repository.join(&plan.config).display().to_string(),
        location_name: location.to_string(),
        is_branch_deployment: false,
        selected: true,
        build: build_metadata(&defaults.git, build_config),
        build_output: None,
        status_url: None,
        history: Vec::new(),
        project_dir: None,
        other: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SettingsFlags;

    #[test]
    fn new_states_take_the_settings_organisation_and_deployment() {
        let settings = Settings::resolve(&SettingsFlags::default(), &|name: &str| match name {
            "DAGSTER_CLOUD_ORGANIZATION" => Some("acme".to_string()),
            "DAGSTER_CLOUD_CLI_CONFIG" => Some("/nonexistent/config".to_string()),
            _ => None,
        })
        .unwrap();
        let defaults = SessionDefaults::from_settings(&settings, GitMetadata::default());
        assert_eq!(defaults.url, "https://acme.dagster.cloud");
        assert_eq!(defaults.deployment_name, "prod");
    }

    #[test]
    fn a_failed_build_takes_back_the_image_of_an_earlier_one() {
        let mut state = LocationState::example("a");
        let mut result = LocationResult {
            location: "a".into(),
            status: BuildStatus::Built,
            image: Some("r/a:ck-1".into()),
            pushed_tags: Vec::new(),
            digest: None,
            content_key: None,
            builder: None,
            steps: None,
            cached_steps: None,
            shared_build: None,
            seconds: 1.0,
            failure: None,
        };
        apply(&mut state, &result);
        assert!(state.build_output.is_some());
        result.status = BuildStatus::Failed;
        result.image = None;
        apply(&mut state, &result);
        assert_eq!(
            state.build_output, None,
            "ci deploy would register the old image"
        );
    }
}
