//! `serverless ...`: the dagster-cloud `serverless` commands dagster-deploy implements, with the
//! reference's flags (`dagster-cloud serverless deploy-python-executable --help`).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::api::{ConnectionArgs, WaitArgs};

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
    /// Python file where the definitions live.
    #[arg(long, short = 'f')]
    pub python_file: Option<String>,
    /// Base directory for local imports when loading the definitions.
    #[arg(long)]
    pub working_directory: Option<String>,
    /// Local or installed Python package where the definitions live.
    #[arg(long, short = 'p')]
    pub package_name: Option<String>,
    /// Python module where the definitions live.
    #[arg(long, short = 'm')]
    pub module_name: Option<String>,
    /// Python module to recurse over and load Definitions from automatically.
    #[arg(long)]
    pub autoload_defs_module_name: Option<String>,
    /// Python executable to load the definitions with.
    #[arg(long)]
    pub executable_path: Option<String>,
    /// Attribute that is a repository or a function returning one.
    #[arg(long, short = 'a')]
    pub attribute: Option<String>,
    /// The commit the location's code comes from (metadata).
    #[arg(long)]
    pub commit_hash: Option<String>,
    /// A link to the location's source code (metadata).
    #[arg(long)]
    pub git_url: Option<String>,
    /// dagster_cloud.yaml (or a one-location file) with the locations' settings.
    #[arg(long, visible_alias = "from", value_name = "PATH")]
    pub location_file: Option<PathBuf>,
    /// Target Python version, `major.minor`.
    #[arg(long, default_value = "3.11", value_name = "X.Y")]
    pub python_version: String,
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
