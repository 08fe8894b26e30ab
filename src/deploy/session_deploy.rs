//! `ci deploy`: a build session's selected locations registered in ONE `deployLocations`,
//! then waited for; the outcome is recorded in each location's history (as the reference
//! client does, so either tool may run each step).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::api::Settings;
use crate::api::document::{self, DocumentFlags};
use crate::api::wait::failures_to_error;
use crate::ci::state::{BuildOutput, LocationState, LocationStatus, StateDir};
use crate::config::{self, Env, Location};
use crate::error::Error;
use crate::printer;

use super::register::send_documents;
use super::{Deployment, Remote, WaitPolicy};

/// Deploys `states` (the session's selected locations, from `dir`) with `settings`; the
/// session decides the deployment. Every location must have been built, and all must target
/// one deployment; nothing is sent otherwise.
pub async fn deploy_session(
    dir: &StateDir,
    states: Vec<LocationState>,
    settings: &Settings,
    env: Env<'_>,
) -> Result<(), Error> {
    printer::progress("Going to deploy the following locations:");
    for s in &states {
        let ready = if s.build_output.is_some() {
            "Ready to deploy"
        } else {
            "Not ready to deploy"
        };
        printer::progress(&format!("- {} [{ready}]", s.location_name));
    }
    check_built(dir, &states)?;
    let Some(first) = states.first() else {
        printer::result_line("No locations to deploy");
        return Ok(());
    };
    check_one_deployment(&states)?;
    let entries = entries(&states, env)?;
    let documents: Vec<(String, Value)> = states
        .iter()
        .map(|s| {
            let doc = location_document(s, entries.get(&s.location_name));
            (s.location_name.clone(), doc)
        })
        .collect();
    let deployment = first.deployment_name.as_str();
    // The session decides where it deploys (as with dagster-cloud); a different deployment in
    // the environment usually means a state folder left from another pipeline.
    if let Some(named) = settings.deployment.as_deref()
        && named != deployment
        && !first.is_branch_deployment
    {
        printer::warn(&format!(
            "the session in {} deploys to `{deployment}`, not to `{named}` \
             (DAGSTER_CLOUD_DEPLOYMENT); start a new session with `ci init --deployment {named}` \
             to deploy there",
            dir.path.display()
        ));
    }
    // A session written by `build --statedir` without Dagster+ settings has no URL: use ours.
    let remote = Remote {
        client: settings.client_for(Some(&first.url), deployment, "ci deploy")?,
    };
    let names: Vec<&str> = states.iter().map(|s| s.location_name.as_str()).collect();
    let announce = format!(
        "Updated code location{} {} in dagster-cloud.",
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    let outcome = async {
        let sent = send_documents(&remote, documents).await?;
        printer::result_line(&announce);
        let policy = WaitPolicy::ci_deploy(settings);
        let results = remote
            .wait(&sent, &policy, &|l| printer::progress(l))
            .await?;
        Ok::<_, Error>(failures_to_error(&results)?)
    }
    .await;
    record(dir, states, outcome.is_ok())?;
    outcome?;
    printer::result_line(&format!(
        "View the status of your locations at {}/locations.",
        remote.client.base_url()
    ));
    Ok(())
}

/// Every location of the session has a build output.
fn check_built(dir: &StateDir, states: &[LocationState]) -> Result<(), Error> {
    let unbuilt: Vec<&str> = states
        .iter()
        .filter(|s| s.build_output.is_none())
        .map(|s| s.location_name.as_str())
        .collect();
    if unbuilt.is_empty() {
        return Ok(());
    }
    Err(Error::Failed {
        message: format!(
            "cannot deploy: {} not been built: {}",
            if unbuilt.len() == 1 {
                "this location has"
            } else {
                "these locations have"
            },
            unbuilt.join(", ")
        ),
        hint: format!(
            "build them with `ci build --statedir {0}` (or `dagster-deploy build --statedir \
             {0}`), record an image built elsewhere with `ci set-build-output --image-tag \
             TAG`, or leave them out with `ci locations-deselect NAME`",
            dir.path.display()
        ),
    })
}

/// All locations target the same organisation and deployment.
fn check_one_deployment(states: &[LocationState]) -> Result<(), Error> {
    let Some(first) = states.first() else {
        return Ok(());
    };
    let Some(other) = states.iter().find(|s| {
        (s.url.as_str(), s.deployment_name.as_str())
            != (first.url.as_str(), first.deployment_name.as_str())
    }) else {
        return Ok(());
    };
    Err(Error::Failed {
        message: format!(
            "the session mixes deployments: {} targets {}/{}, {} targets {}/{}",
            first.location_name,
            first.url,
            first.deployment_name,
            other.location_name,
            other.url,
            other.deployment_name
        ),
        hint: "deploy them separately with --location-name, or start one session per \
               deployment"
            .into(),
    })
}

/// Each state's dagster_cloud.yaml entry (templates rendered with `env`, `defaults` merged,
/// as every command reads it), loading each file once.
pub fn entries<'a>(
    states: impl IntoIterator<Item = &'a LocationState>,
    env: Env,
) -> Result<BTreeMap<String, Location>, Error> {
    let mut files: BTreeMap<String, config::Workspace> = BTreeMap::new();
    let mut found = BTreeMap::new();
    for state in states {
        if !files.contains_key(&state.location_file) {
            let ws = config::load(Path::new(&state.location_file), env)?;
            files.insert(state.location_file.clone(), ws);
        }
        let location = files
            .get(&state.location_file)
            .and_then(|ws| ws.locations.iter().find(|l| l.name == state.location_name))
            .ok_or_else(|| Error::Failed {
                message: format!(
                    "location `{}` is not in {} (the session's location_file)",
                    state.location_name, state.location_file
                ),
                hint: "the file changed since `ci init`: run `ci init` again, or \
                       `ci locations-deselect NAME` to leave the location out"
                    .into(),
            })?;
        found.insert(state.location_name.clone(), location.clone());
    }
    Ok(found)
}

/// The reference does not know which locations of a failed request failed: all are marked.
fn record(dir: &StateDir, states: Vec<LocationState>, ok: bool) -> Result<(), Error> {
    for mut state in states {
        if ok {
            state.add_status(LocationStatus::Success, "deploy successful");
        } else {
            state.add_status(LocationStatus::Failed, "deploy failed");
        }
        dir.save(&state)?;
    }
    Ok(())
}

/// The location's entry with the session's build output and git facts over it.
fn location_document(state: &LocationState, entry: Option<&Location>) -> Value {
    let mut flags = DocumentFlags {
        git: crate::deploy::session::git_metadata(&state.build),
        defs_state_info: state
            .other
            .get("defs_state_info")
            .filter(|v| !v.is_null())
            .cloned(),
        ..Default::default()
    };
    match &state.build_output {
        Some(BuildOutput::Docker {
            image, pex_bundle, ..
        }) => {
            flags.image = Some(image.clone());
            flags.pex_bundle = pex_bundle.then_some(true);
        }
        Some(BuildOutput::PythonExecutable {
            python_version,
            image,
            pex_tag,
        }) => {
            flags.image = image.clone();
            flags.pex_tag = Some(pex_tag.clone());
            flags.python_version = Some(python_version.clone());
        }
        None => {}
    }
    document::location_document(&state.location_name, entry.map(|l| &l.entry), &flags)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ci::state::BuildMetadata;

    #[test]
    fn documents_carry_the_build_output_and_git_facts() {
        let state = LocationState {
            build: BuildMetadata {
                commit_hash: Some("abc".into()),
                repo_name: Some("mono".into()),
                ..Default::default()
            },
            build_output: Some(BuildOutput::PythonExecutable {
                python_version: "3.11".into(),
                image: None,
                pex_tag: "files=deps-1.pex:source-2.pex".into(),
            }),
            ..LocationState::example("a")
        };
        assert_eq!(
            location_document(&state, None),
            json!({"location_name": "a", "code_source": {},
                   "git": {"commit_hash": "abc", "repo_name": "mono"},
                   "pex_metadata": {"pex_tag": "files=deps-1.pex:source-2.pex",
                                    "python_version": "3.11"}})
        );
    }
}
