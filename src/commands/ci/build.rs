//! `ci build`: the selected locations through our build engine (`dagster-deploy build`'s
//! `Prepared`), each result recorded as the location's `build_output` and history.

use crate::api::{Settings, SettingsFlags};
use crate::build::EXIT_INTERRUPTED;
use crate::cli::ci::{BuildArgs, BuildStrategy};
use crate::cli::{ConfigArgs, PlanSelection};
use crate::error::{EXIT_FAILURE, Error};
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
    if args.build_strategy != BuildStrategy::Docker {
        return refuse(
            "--build-strategy python-executable",
            "run this step with `dagster-cloud ci build` (the session files are shared)",
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
    if args.python_version.is_some() {
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
