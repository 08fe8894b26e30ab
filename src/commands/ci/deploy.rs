//! `ci deploy`: every selected location in ONE `deployLocations`, then wait for them to load;
//! the outcome is recorded in each location's history.

use serde_json::Value;

use crate::api::document::{self, DocumentFlags};
use crate::api::wait::failures_to_error;
use crate::ci::state::{BuildOutput, LocationState, LocationStatus, StateDir};
use crate::cli::api::ConnectionArgs;
use crate::cli::ci::DeployArgs;
use crate::config::Location;
use crate::deploy::register::send_documents;
use crate::deploy::{Deployment, Remote, WaitPolicy};
use crate::error::Error;
use crate::output;

pub async fn run(args: &DeployArgs) -> Result<u8, Error> {
    let dir = super::statedir(&args.statedir)?;
    let states = dir.selected(&args.location_names)?;
    output::progress("Going to deploy the following locations:");
    for s in &states {
        let ready = if s.build_output.is_some() {
            "Ready to deploy"
        } else {
            "Not ready to deploy"
        };
        output::progress(&format!("- {} [{ready}]", s.location_name));
    }
    let unbuilt: Vec<&str> = states
        .iter()
        .filter(|s| s.build_output.is_none())
        .map(|s| s.location_name.as_str())
        .collect();
    if !unbuilt.is_empty() {
        return Err(Error::Failed {
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
        });
    }
    let Some(first) = states.first() else {
        output::result_line("No locations to deploy");
        return Ok(0);
    };
    if let Some(other) = states.iter().find(|s| {
        (s.url.as_str(), s.deployment_name.as_str())
            != (first.url.as_str(), first.deployment_name.as_str())
    }) {
        return Err(Error::Failed {
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
        });
    }
    let entries = super::entries(&states)?;
    let documents: Vec<(String, Value)> = states
        .iter()
        .map(|s| {
            let doc = location_document(s, entries.get(&s.location_name));
            (s.location_name.clone(), doc)
        })
        .collect();
    let settings = super::super::compat::settings(&ConnectionArgs::default(), Some(&args.wait))?;
    let deployment = first.deployment_name.clone();
    let deployment = deployment.as_str();
    // The session decides where it deploys (as with dagster-cloud); a different deployment in
    // the environment usually means a state folder left from another pipeline.
    if let Some(named) = settings.deployment.as_deref()
        && named != deployment
        && !first.is_branch_deployment
    {
        output::warn(&format!(
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
        output::result_line(&announce);
        let policy = WaitPolicy::ci_deploy(&settings);
        let results = remote
            .wait(&sent, &policy, &|l| output::progress(l))
            .await?;
        Ok::<_, Error>(failures_to_error(&results)?)
    }
    .await;
    record(&dir, states, outcome.is_ok())?;
    outcome?;
    output::result_line(&format!(
        "View the status of your locations at {}/locations.",
        remote.client.base_url()
    ));
    Ok(0)
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
            url: "https://acme.dagster.cloud".into(),
            deployment_name: "prod".into(),
            location_file: "/r/dagster_cloud.yaml".into(),
            location_name: "a".into(),
            is_branch_deployment: false,
            selected: true,
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
            status_url: None,
            history: Vec::new(),
            project_dir: None,
            other: Default::default(),
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
