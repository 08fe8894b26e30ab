//! `ci build`: the selected locations through our build engine (`dagster-deploy build`'s
//! `Prepared`), each result recorded as the location's `build_output` and history.

use std::path::Path;

use crate::api::SettingsFlags;
use crate::build::EXIT_INTERRUPTED;
use crate::ci::state::{BuildOutput, LocationState, LocationStatus, StateDir};
use crate::cli::api::ConnectionArgs;
use crate::cli::ci::{BuildArgs, BuildStrategy};
use crate::deploy::Remote;
use crate::deploy::prepare::Prepared;
use crate::deploy::python::{self, PexOptions, PexTarget};
use crate::error::{EXIT_FAILURE, Error};
use crate::output;
use crate::pex::BuildMethod;
use crate::plan::{self, PlanRequest};

pub async fn run(args: &BuildArgs) -> Result<u8, Error> {
    let env = &super::super::process_env;
    refuse_unsupported(args)?;
    let dir = super::statedir(&super::StatedirArgs {
        statedir: args.build.statedir.clone(),
    })?;
    let states = dir.selected(&args.location_names)?;
    let Some(first) = states.first() else {
        output::result_line("No locations to build");
        return Ok(0);
    };
    if args.build_strategy == BuildStrategy::PythonExecutable {
        return python_executable(args, &dir, states).await;
    }
    if let Some(other) = states
        .iter()
        .find(|s| s.location_file != first.location_file)
    {
        return Err(Error::Failed {
            message: format!(
                "the session's locations come from two files: {} and {}",
                first.location_file, other.location_file
            ),
            hint: "build each file's locations separately with --location-name".into(),
        });
    }
    output::progress(&format!(
        "Going to build the following locations: {}",
        super::names(&states)
    ));
    // Naming the selected locations makes the plan build them whatever changed (the session
    // chose them); other changed locations are left out below.
    let names: Vec<String> = states.iter().map(|s| s.location_name.clone()).collect();
    let req = PlanRequest {
        config: first.location_file.clone().into(),
        force: names.clone(),
        ..PlanRequest::default()
    };
    let mut flags = args.build.clone();
    flags.build_args.extend(args.docker_env.iter().cloned());
    let options = super::super::build::options(&flags)?;
    let repo = plan::open_repo(&req)?;
    let mut prepared = Prepared::new(&repo, &req, options, None, env)?;
    prepared.targets.retain(|t| {
        let name = match t {
            Ok(target) => &target.location,
            Err(failure) => &failure.location,
        };
        names.contains(name)
    });
    let reporter = output::reporter(&prepared.ci);
    let Some(report) = prepared.build(&reporter, env).await? else {
        return Ok(EXIT_INTERRUPTED);
    };
    let settings = super::super::resolve_settings(&SettingsFlags::default())?;
    prepared.save_state(Some(&dir.path), &settings, &report, &reporter, env)?;
    output::result(&report.table());
    Ok(if report.success() { 0 } else { EXIT_FAILURE })
}

/// The reference's flags we accept but cannot honour: say what to do instead.
fn refuse_unsupported(args: &BuildArgs) -> Result<(), Error> {
    let refuse = |flag: &str, hint: &str| {
        Err(Error::Usage {
            message: format!("{flag} is not supported by `dagster-deploy ci build`"),
            hint: hint.to_string(),
        })
    };
    if args.build_strategy == BuildStrategy::PythonExecutableImage {
        return refuse(
            "--build-strategy python-executable-image",
            "use --build-strategy python-executable (no image needed), or docker",
        );
    }
    if args.docker_image_tag.is_some() {
        return refuse(
            "--docker-image-tag",
            "images are tagged by content (`<location>-<content key>`); use --tag-template for \
             the human tag",
        );
    }
    if args.docker_base_image.is_some() {
        return refuse(
            "--docker-base-image",
            "set `base_image` in dagster-deploy.toml",
        );
    }
    if args.dockerfile_path.is_some() {
        return refuse(
            "--dockerfile-path",
            "set `dockerfile` in dagster-deploy.toml",
        );
    }
    if args.python_version.is_some() && args.build_strategy == BuildStrategy::Docker {
        return refuse(
            "--python-version",
            "set `python_version` in dagster-deploy.toml",
        );
    }
    if args.build_directory.is_some() {
        return refuse(
            "--build-directory",
            "set `build.directory` of the location in dagster_cloud.yaml",
        );
    }
    Ok(())
}

/// `--build-strategy python-executable`: each selected location's Python executable built
/// and uploaded to the session's deployment (`deploy::python`); the pex tag recorded as its
/// build output, for `ci deploy` (ours or the reference's) to register.
async fn python_executable(
    args: &BuildArgs,
    dir: &StateDir,
    mut states: Vec<LocationState>,
) -> Result<u8, Error> {
    let env = &super::super::process_env;
    let entries = crate::deploy::session_deploy::entries(&states, &super::super::process_env)?;
    let say = |m: &str| output::progress(m);
    let mut targets = Vec::new();
    for s in &states {
        let Some(loc) = entries.get(&s.location_name) else {
            continue;
        };
        let root = Path::new(&s.location_file)
            .parent()
            .unwrap_or(Path::new("."));
        let recorded = s
            .build
            .build_config
            .as_ref()
            .and_then(|c| c.directory.as_ref());
        let build_dir = root.join(recorded.unwrap_or(&loc.build_directory));
        targets.push(PexTarget::of(
            &s.location_name,
            &build_dir,
            &loc.entry,
            &say,
        ));
    }
    let first = &states[0];
    let ws = crate::config::load(Path::new(&first.location_file), env).ok();
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let opts = PexOptions {
        python_version: python::python_version(args.python_version.as_deref(), ws.as_ref(), &names),
        deps_cache_from: None,
        deps_cache_to: None,
        build_method: BuildMethod::Local,
    };
    let settings = super::super::compat::settings(&ConnectionArgs::default(), None)?;
    let remote = Remote {
        client: settings.client_for(Some(&first.url), &first.deployment_name, "ci build")?,
    };
    let reporter = output::reporter(&crate::ci::context::CiContext::detect(env));
    let built = python::build(&remote, &targets, &opts, &reporter).await?;
    for state in &mut states {
        let Some(b) = built.iter().find(|b| b.location == state.location_name) else {
            continue;
        };
        state.build_output = Some(BuildOutput::PythonExecutable {
            python_version: b.python_version.clone(),
            image: None,
            pex_tag: b.pex_tag.clone(),
        });
        state.add_status(
            LocationStatus::Pending,
            format!("built and uploaded Python executable: {}", b.pex_tag),
        );
        dir.save(state)?;
        output::result_line(&format!("{}\t{}", b.location, b.pex_tag));
    }
    Ok(0)
}
