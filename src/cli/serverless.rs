//! `serverless ...`: the dagster-cloud `serverless` commands dagster-deploy implements, with the
//! reference's flags (`dagster-cloud serverless deploy-python-executable --help`).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::api::{CodeSourceArgs, ConnectionArgs, WaitArgs};

#[derive(Debug, Args)]
pub struct ServerlessArgs {
    #[command(subcommand)]
    pub command: ServerlessCommand,
}

#[derive(Debug, Subcommand)]
pub enum ServerlessCommand {
    /// Deploy code locations as Python executables (PEX): no Docker; dependencies are built
    /// once per requirement set and reused, so a code-only change uploads only the source.
    DeployPythonExecutable(Box<PexDeployArgs>),
}

/// Where the dependencies are built (accepted for compatibility: builds target Linux x86_64
/// wheels and run here in every case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildMethodArg {
    DockerFallback,
    Local,
    Docker,
}

#[derive(Debug, Args)]
pub struct PexDeployArgs {
    /// The location's folder (its requirements.txt / pyproject.toml / setup.py and code).
    #[arg(default_value = ".", value_name = "SOURCE_DIRECTORY")]
    pub source_directory: PathBuf,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Environment used to build the dependencies.
    #[arg(long, value_enum, default_value = "docker-fallback")]
    pub build_method: BuildMethodArg,
    /// Docker image to run the Python executable on (instead of the standard base image).
    #[arg(long)]
    pub image: Option<String>,
    /// Location name; `*` deploys every location of --location-file.
    #[arg(long)]
    pub location_name: Option<String>,
    #[command(flatten)]
    pub code: CodeSourceArgs,
    /// dagster_cloud.yaml (or a one-location file) with the locations' settings.
    #[arg(long, visible_alias = "from", value_name = "PATH")]
    pub location_file: Option<PathBuf>,
    /// Target Python version, `major.minor` [default: `python_version` in dagster-deploy.toml,
    /// else 3.11].
    #[arg(long, value_name = "X.Y")]
    pub python_version: Option<String>,
    /// Reuse the dependencies recorded under this tag (by --deps-cache-to) when the
    /// requirements match. Dependencies already on the server are reused without it.
    #[arg(long, value_name = "TAG")]
    pub deps_cache_from: Option<String>,
    /// Record the dependencies under this tag for --deps-cache-from.
    #[arg(long, value_name = "TAG")]
    pub deps_cache_to: Option<String>,
    /// Not supported by dagster-deploy (a custom base image uploaded to Dagster+).
    #[arg(long, value_name = "TAG")]
    pub base_image_tag: Option<String>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}
