//! `ci build`: the selected locations through our build engine (`dagster-deploy build`'s
//! `Prepared`), each result recorded as the location's `build_output` and history.

use std::path::Path;

use crate::api::{Client, ClientOptions, Settings, SettingsFlags};
use crate::build::EXIT_INTERRUPTED;
use crate::ci::state::{BuildOutput, LocationState, LocationStatus, StateDir};
use crate::cli::api::ConnectionArgs;
use crate::cli::ci::{BuildArgs, BuildStrategy};
use crate::cli::{ConfigArgs, PlanSelection};
use crate::error::{EXIT_FAILURE, Error};
use crate::pex::{self, PexLocation};
use crate::progress::{Mode, Reporter};

use super::super::build::Prepared;

pub fn run(args: &BuildArgs) -> Result<u8, Error> {
    refuse_unsupported(args)?;
    let dir = super::statedir(&super::StatedirArgs {
        statedir: args.build.statedir.clone(),
    })?;
    let states = dir.selected(&args.location_names)?;
    let Some(first) = states.first() else {
        println!("No locations to build");
        return Ok(0);
    };
    if args.build_strategy == BuildStrategy::PythonExecutable {
        return python_executable(args, &dir, states);
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
    eprintln!(
        "Going to build the following locations: {}",
        super::names(&states)
    );
    // Forcing the selected locations makes the plan build them whatever changed (the session
    // chose them); other changed locations are left out below.
    let selection = PlanSelection {
        config: ConfigArgs {
            config: Some(first.location_file.clone().into()),
        },
        base: None,
        head: None,
        include_dirty: None,
        locations: states.iter().map(|s| s.location_name.clone()).collect(),
        all: false,
    };
    let mut flags = args.build.clone();
    flags.statedir = Some(dir.path.clone());
    flags.build_args.extend(args.docker_env.iter().cloned());
    let mut prepared = Prepared::new(&selection, &flags)?;
    prepared.targets.retain(|t| {
        let name = match t {
            Ok(target) => &target.location,
            Err(failure) => &failure.location,
        };
        selection.locations.contains(name)
    });
    let reporter = Reporter::new(Mode::detect(&prepared.ci));
    let Some(report) = prepared.build(&reporter)? else {
        return Ok(EXIT_INTERRUPTED);
    };
    let settings = Settings::resolve(&SettingsFlags::default(), &super::super::process_env)?;
    prepared.save_state(&flags, &settings, &report, &reporter)?;
    print!("{}", report.table());
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

/// `--build-strategy python-executable`: each selected location's PEX files built and
/// uploaded to the session's deployment; the pex tag recorded as its build output, for
/// `ci deploy` (ours or the reference's) to register.
fn python_executable(
    args: &BuildArgs,
    dir: &StateDir,
    mut states: Vec<LocationState>,
) -> Result<u8, Error> {
    let entries = super::entries(&states)?;
    let settings = super::super::compat::settings(&ConnectionArgs::default(), None)?;
    let mut locations = Vec::new();
    let mut python_version = args.python_version.clone();
    for s in &states {
        let Some(loc) = entries.get(&s.location_name) else {
            continue;
        };
        let file = Path::new(&s.location_file);
        let root = file.parent().unwrap_or(Path::new("."));
        if python_version.is_none()
            && let Ok(ws) = crate::config::load(file, &super::super::process_env)
        {
            python_version = ws.settings.for_location(&s.location_name).python_version;
        }
        let recorded = s
            .build
            .build_config
            .as_ref()
            .and_then(|c| c.directory.as_ref());
        let build_dir = match recorded {
            Some(d) => root.join(d),
            None => root.join(&loc.build_directory),
        };
        locations.push(PexLocation {
            name: s.location_name.clone(),
            dir: super::super::serverless::project_dir(&build_dir, &loc.entry),
        });
    }
    let first = &states[0];
    let org_url = if first.url.is_empty() {
        settings.organization_url("ci build")?
    } else {
        first.url.trim_end_matches('/').to_string()
    };
    let deployment = first.deployment_name.clone();
    let client = Client::new(
        &format!("{org_url}/{deployment}"),
        settings.token("ci build")?.clone(),
        Some(&deployment),
        ClientOptions::default(),
    )?;
    let opts = pex::Options {
        python_version: python_version
            .unwrap_or_else(|| pex::platform::DEFAULT_PYTHON_VERSION.into()),
        deps_cache_from: None,
        deps_cache_to: None,
        build_method: pex::BuildMethod::Local,
    };
    let say = |m: &str| eprintln!("{m}");
    let built = super::super::runtime()?
        .block_on(pex::build_and_upload(&client, &locations, &opts, &say))?;
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
        println!("{}\t{}", b.location, b.pex_tag);
    }
    Ok(0)
}
