//! `ci ...`: the build-session commands of `dagster-cloud ci`, with its flags, aliases and
//! environment variables, so a pipeline can mix both tools step by step on one state folder.
//! `DAGSTER_CLOUD_*` settings are resolved by `api::Settings`, not clap (the reference's
//! precedence); only the state folder's variable is clap's.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::api::{SnapshotBaseCondition, WaitArgs};
use super::build::BuildFlags;

#[derive(Debug, Args)]
pub struct CiArgs {
    #[command(subcommand)]
    pub command: CiCommand,
}

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Start a build session: one state file per location, the changed ones selected.
    Init(Box<InitArgs>),
    /// Validate dagster_cloud.yaml and the connection to the deployment API.
    Check(CheckArgs),
    /// Print the session's state (one JSON document per location, or a markdown table).
    Status(StatusArgs),
    /// Build and push the selected locations; record their images in the session.
    Build(Box<BuildArgs>),
    /// Record an image built elsewhere (`{build.registry}:{TAG}`) for the selected locations.
    SetBuildOutput(SetBuildOutputArgs),
    /// Register every selected location in one request and wait for them to load.
    Deploy(DeployArgs),
    /// List the session's locations (unselected ones marked DESELECTED).
    LocationsList(StatedirArgs),
    /// Include locations in the session.
    LocationsSelect(SelectArgs),
    /// Exclude locations from the session.
    LocationsDeselect(SelectArgs),
    /// Print the branch deployment of the current pull request, creating or updating it.
    BranchDeployment(BranchDeploymentArgs),
    /// Create or update the pull request comment with the session's status (GitHub Actions).
    Notify(NotifyArgs),
}

/// The session folder.
#[derive(Debug, Args, Clone, Default)]
pub struct StatedirArgs {
    /// The build session folder (`location-<name>.json` files) [env: DAGSTER_BUILD_STATEDIR].
    #[arg(long, value_name = "DIR")]
    pub statedir: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct InitArgs {
    #[command(flatten)]
    pub statedir: StatedirArgs,
    /// Organization [env: DAGSTER_CLOUD_ORGANIZATION].
    #[arg(long, short = 'o', value_name = "NAME")]
    pub organization: Option<String>,
    /// Deployment to deploy to outside a pull request; the base of a branch deployment
    /// [env: DAGSTER_CLOUD_DEPLOYMENT].
    #[arg(long, short = 'd', value_name = "NAME")]
    pub deployment: Option<String>,
    /// API token, used to create the branch deployment; never stored
    /// [env: DAGSTER_CLOUD_API_TOKEN].
    #[arg(long, short = 'u', visible_alias = "user-token", value_name = "TOKEN")]
    pub api_token: Option<String>,
    /// The folder holding dagster_cloud.yaml.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub project_dir: PathBuf,
    /// dagster_cloud.yaml, relative to --project-dir.
    #[arg(long, value_name = "PATH", default_value = "dagster_cloud.yaml")]
    pub dagster_cloud_yaml_path: PathBuf,
    /// Remove the folder's location files first (default).
    #[arg(long, overrides_with = "no_clean_statedir")]
    pub clean_statedir: bool,
    /// Keep existing location files (those of this run are rewritten).
    #[arg(long)]
    pub no_clean_statedir: bool,
    /// Only these locations (repeatable); they are selected whatever changed.
    #[arg(long = "location-name", value_name = "NAME")]
    pub location_names: Vec<String>,
    /// Select every location, changed or not (the reference's behaviour).
    #[arg(long)]
    pub all: bool,
    /// Revision to compare against to decide what changed [default: from the CI event, else
    /// the merge-base with the default branch].
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Link to the commit's source [default: from the CI, e.g. GitHub's tree URL].
    #[arg(long, value_name = "URL")]
    pub git_url: Option<String>,
    /// The commit being deployed [default: HEAD].
    #[arg(long, value_name = "SHA")]
    pub commit_hash: Option<String>,
    /// Link to the CI run, shown in status reports until the deploy succeeds.
    #[arg(long, value_name = "URL")]
    pub status_url: Option<String>,
    #[arg(long, value_enum)]
    pub snapshot_base_condition: Option<SnapshotBaseCondition>,
    /// Fail unless a branch deployment is used (outside CI: the local branch's).
    #[arg(long, overrides_with = "no_require_branch_deployment")]
    pub require_branch_deployment: bool,
    #[arg(long, hide = true)]
    pub no_require_branch_deployment: bool,
    /// Write a dotenv file with the session's deployment (`DAGSTER_CLOUD_DEPLOYMENT=...`),
    /// whether it is a branch deployment, and the commit, for later CI jobs (GitLab
    /// `artifacts: reports: dotenv`) [env: DAGSTER_DEPLOY_DOTENV].
    #[arg(long, value_name = "PATH", env = "DAGSTER_DEPLOY_DOTENV")]
    pub dotenv: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckLevel {
    Error,
    Warn,
    Skip,
}

#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    /// Organization [env: DAGSTER_CLOUD_ORGANIZATION].
    #[arg(long, short = 'o', value_name = "NAME")]
    pub organization: Option<String>,
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub project_dir: PathBuf,
    #[arg(long, value_name = "PATH", default_value = "dagster_cloud.yaml")]
    pub dagster_cloud_yaml_path: PathBuf,
    #[arg(long, value_enum, default_value = "error")]
    pub dagster_cloud_yaml_check: CheckLevel,
    #[arg(long, value_enum, default_value = "error")]
    pub dagster_cloud_connect_check: CheckLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Json,
    Markdown,
}

#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub statedir: StatedirArgs,
    #[arg(long, value_enum, default_value = "json")]
    pub output_format: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildStrategy {
    Docker,
    #[value(name = "python-executable")]
    PythonExecutable,
    #[value(name = "python-executable-image")]
    PythonExecutableImage,
}

/// `ci build`: our build engine's flags (`--statedir` among them), plus the reference's.
#[derive(Debug, Args, Clone)]
pub struct BuildArgs {
    #[command(flatten)]
    pub build: BuildFlags,
    /// Only these selected locations (repeatable) [default: every selected one].
    #[arg(long = "location-name", value_name = "NAME")]
    pub location_names: Vec<String>,
    /// `docker` images, or `python-executable` (PEX files uploaded to the deployment, no
    /// Docker; `ci deploy` registers them).
    #[arg(long, value_enum, default_value = "docker")]
    pub build_strategy: BuildStrategy,
    /// `KEY=VALUE` build argument for every location (repeatable; as --build-arg).
    #[arg(long = "docker-env", value_name = "KEY=VALUE")]
    pub docker_env: Vec<String>,
    /// Not supported: images are tagged by content (see `dagster-deploy build`).
    #[arg(long, value_name = "TAG")]
    pub docker_image_tag: Option<String>,
    /// Not supported: set `base_image` in dagster-deploy.toml.
    #[arg(long, value_name = "IMAGE")]
    pub docker_base_image: Option<String>,
    /// Not supported: set `dockerfile` in dagster-deploy.toml.
    #[arg(long, value_name = "PATH")]
    pub dockerfile_path: Option<String>,
    /// Python for `--build-strategy python-executable` [default: `python_version` in
    /// dagster-deploy.toml, else 3.11]; for docker builds set it in dagster-deploy.toml.
    #[arg(long, value_name = "X.Y")]
    pub python_version: Option<String>,
    /// Not supported: the build directory comes from dagster_cloud.yaml.
    #[arg(long, value_name = "DIR")]
    pub build_directory: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct SetBuildOutputArgs {
    #[command(flatten)]
    pub statedir: StatedirArgs,
    /// Only these selected locations (repeatable) [default: every selected one].
    #[arg(long = "location-name", value_name = "NAME")]
    pub location_names: Vec<String>,
    /// The tag of the image pushed to the location's `build.registry`.
    #[arg(long, value_name = "TAG")]
    pub image_tag: String,
}

#[derive(Debug, Args, Clone)]
pub struct DeployArgs {
    #[command(flatten)]
    pub statedir: StatedirArgs,
    /// Only these selected locations (repeatable) [default: every selected one].
    #[arg(long = "location-name", value_name = "NAME")]
    pub location_names: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args, Clone)]
pub struct SelectArgs {
    /// Location names.
    #[arg(required = true, value_name = "LOCATION_NAMES")]
    pub location_names: Vec<String>,
    #[command(flatten)]
    pub statedir: StatedirArgs,
}

#[derive(Debug, Args, Clone)]
pub struct BranchDeploymentArgs {
    /// The checked-out repository (for the commit's facts).
    #[arg(value_name = "PROJECT_DIR", default_value = ".")]
    pub project_dir: PathBuf,
    /// Organization [env: DAGSTER_CLOUD_ORGANIZATION; else DAGSTER_CLOUD_URL is used].
    #[arg(long, short = 'o', value_name = "NAME")]
    pub organization: Option<String>,
    /// Mark the pull request closed (its branch deployment is then torn down).
    #[arg(long, overrides_with = "no_mark_closed")]
    pub mark_closed: bool,
    #[arg(long, hide = true)]
    pub no_mark_closed: bool,
    /// Only print the existing branch deployment's name; create nothing.
    #[arg(long, overrides_with = "no_read_only")]
    pub read_only: bool,
    #[arg(long, hide = true)]
    pub no_read_only: bool,
    #[arg(long, value_name = "NAME")]
    pub base_deployment_name: Option<String>,
    #[arg(long, value_enum)]
    pub snapshot_base_condition: Option<SnapshotBaseCondition>,
}

#[derive(Debug, Args, Clone)]
pub struct NotifyArgs {
    #[command(flatten)]
    pub statedir: StatedirArgs,
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub project_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn ci(args: &[&str]) -> CiCommand {
        let argv = ["dagster-deploy", "ci"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Ci(a)) => a.command,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn the_reference_command_lines_parse() {
        let CiCommand::Init(a) = ci(&[
            "init",
            "--project-dir",
            "p",
            "--statedir",
            "s",
            "-d",
            "prod",
            "--user-token",
            "t",
            "--location-name",
            "a",
            "--location-name",
            "b",
            "--no-clean-statedir",
            "--git-url",
            "u",
            "--commit-hash",
            "c",
            "--status-url",
            "r",
            "--snapshot-base-condition",
            "on-update",
            "--require-branch-deployment",
        ]) else {
            panic!("not init")
        };
        assert_eq!(a.statedir.statedir, Some(PathBuf::from("s")));
        assert_eq!(a.deployment.as_deref(), Some("prod"));
        assert_eq!(a.api_token.as_deref(), Some("t"));
        assert_eq!(a.location_names, ["a", "b"]);
        assert!(a.no_clean_statedir && a.require_branch_deployment && !a.all);
        assert_eq!(
            a.snapshot_base_condition,
            Some(SnapshotBaseCondition::OnUpdate)
        );

        let CiCommand::Deploy(d) = ci(&["deploy", "--agent-timeout", "30", "--location-name", "a"])
        else {
            panic!("not deploy")
        };
        assert_eq!(d.wait.location_load_timeout, Some(30));
        assert_eq!(
            d.statedir.statedir, None,
            "the variable is read later, by StateDir"
        );

        let CiCommand::Status(s) =
            ci(&["status", "--statedir", "s", "--output-format", "markdown"])
        else {
            panic!("not status")
        };
        assert_eq!(s.output_format, StatusFormat::Markdown);

        let CiCommand::LocationsDeselect(sel) = ci(&["locations-deselect", "a", "b"]) else {
            panic!("not deselect")
        };
        assert_eq!(sel.location_names, ["a", "b"]);

        let CiCommand::BranchDeployment(b) = ci(&["branch-deployment", "repo", "--mark-closed"])
        else {
            panic!("not branch-deployment")
        };
        assert!(b.mark_closed && !b.read_only);
        assert_eq!(b.project_dir, PathBuf::from("repo"));

        let CiCommand::Build(b) = ci(&[
            "build",
            "--statedir",
            "s",
            "--build-strategy",
            "docker",
            "--docker-env",
            "A=1",
        ]) else {
            panic!("not build")
        };
        assert_eq!(b.build.statedir, Some(PathBuf::from("s")));
        assert_eq!(b.docker_env, ["A=1"]);
    }

    #[test]
    fn set_build_output_needs_a_tag_and_select_needs_names() {
        let argv = [
            "dagster-deploy",
            "ci",
            "set-build-output",
            "--statedir",
            "s",
        ];
        assert!(Cli::try_parse_from(argv).is_err());
        assert!(Cli::try_parse_from(["dagster-deploy", "ci", "locations-select"]).is_err());
    }
}
