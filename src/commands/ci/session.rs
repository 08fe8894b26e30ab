//! The commands that only read or edit the session's state files: `status`,
//! `locations-list`, `locations-select`/`-deselect` and `set-build-output`.

use crate::ci::report;
use crate::ci::state::BuildOutput;
use crate::cli::ci::{SelectArgs, SetBuildOutputArgs, StatedirArgs, StatusArgs, StatusFormat};
use crate::error::Error;
use crate::output;

/// One JSON document per location and line (what the reference prints), or the markdown
/// table of the pull request comment.
pub fn status(args: &StatusArgs) -> Result<u8, Error> {
    let states = super::statedir(&args.statedir)?.list()?;
    match args.output_format {
        StatusFormat::Json => {
            for state in &states {
                let line = serde_json::to_string(state).map_err(|e| Error::Failed {
                    message: format!("cannot write the state as JSON: {e}"),
                    hint: "this is a bug in dagster-deploy; please report it".into(),
                })?;
                output::result_line(&line);
            }
        }
        StatusFormat::Markdown => output::result_line(&report::markdown(&states)),
    }
    Ok(0)
}

pub fn list(args: &StatedirArgs) -> Result<u8, Error> {
    for state in super::statedir(args)?.list()? {
        if state.selected {
            output::result_line(&state.location_name);
        } else {
            output::result_line(&format!("{} DESELECTED", state.location_name));
        }
    }
    Ok(0)
}

pub fn select(args: &SelectArgs, selected: bool) -> Result<u8, Error> {
    super::statedir(&args.statedir)?.set_selected(&args.location_names, selected)?;
    output::result_line(&format!(
        "{} locations: {}",
        if selected { "Selected" } else { "Deselected" },
        args.location_names.join(", ")
    ));
    Ok(0)
}

/// Records `{build.registry}:{tag}` as each selected location's image; nothing is written
/// unless every location has a registry.
pub fn set_build_output(args: &SetBuildOutputArgs) -> Result<u8, Error> {
    let dir = super::statedir(&args.statedir)?;
    let states = dir.selected(&args.location_names)?;
    if args.image_tag.trim().is_empty() || args.image_tag.contains(['/', ' ']) {
        return Err(Error::Usage {
            message: format!("--image-tag {:?} is not an image tag", args.image_tag),
            hint: "pass only the tag (e.g. `--image-tag abc123`); the repository comes from \
                   `build.registry` in dagster_cloud.yaml"
                .into(),
        });
    }
    output::progress("Going to update the following locations:");
    for s in &states {
        output::progress(&format!("- {}", s.location_name));
    }
    let entries = crate::deploy::session_deploy::entries(&states, &super::super::process_env)?;
    let mut images = Vec::new();
    for state in &states {
        let registry = entries
            .get(&state.location_name)
            .and_then(|l| l.registry.clone())
            .ok_or_else(|| Error::Failed {
                message: format!(
                    "no build.registry for location `{}` in {}",
                    state.location_name, state.location_file
                ),
                hint: "add `build: {registry: ...}` to the location (or to `defaults`)".into(),
            })?;
        images.push(format!("{registry}:{}", args.image_tag));
    }
    for (mut state, image) in states.into_iter().zip(images) {
        state.build_output = Some(BuildOutput::Docker {
            image: image.clone(),
            python_version: None,
            pex_bundle: false,
        });
        dir.save(&state)?;
        output::result_line(&format!(
            "Recorded image {image} for location {}",
            state.location_name
        ));
    }
    output::progress("Use 'ci deploy' to register them.");
    Ok(0)
}
