//! The dagster-cloud-compatible command tree (`deployment ...`, `branch-deployment ...`) and
//! `history` / `rollback`. Flag names, aliases and short forms follow the reference CLI so its
//! command lines work unchanged. Environment variables and the config file are resolved by
//! `api::Settings` (not clap), so precedence is the reference's.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Where requests go and with which token.
#[derive(Debug, Args, Clone, Default)]
pub struct ConnectionArgs {
    /// Organization to target [env: DAGSTER_CLOUD_ORGANIZATION].
    #[arg(long, short = 'o', value_name = "NAME")]
    pub organization: Option<String>,
    /// Deployment to target [env: DAGSTER_CLOUD_DEPLOYMENT].
    #[arg(long, short = 'd', value_name = "NAME")]
    pub deployment: Option<String>,
    /// API token [env: DAGSTER_CLOUD_API_TOKEN].
    #[arg(long, short = 'u', visible_alias = "user-token", value_name = "TOKEN")]
    pub api_token: Option<String>,
    /// The deployment URL (organization URL for branch deployments) [env: DAGSTER_CLOUD_URL].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

/// How long to wait for locations to load.
#[derive(Debug, Args, Clone, Default)]
pub struct WaitArgs {
    /// Seconds to wait for the locations to load [env: DAGSTER_CLOUD_LOCATION_LOAD_TIMEOUT;
    /// default 3600].
    #[arg(long, visible_alias = "agent-timeout", value_name = "SECONDS")]
    pub location_load_timeout: Option<u64>,
    /// Seconds to wait for an agent to heartbeat [env: DAGSTER_CLOUD_AGENT_HEARTBEAT_TIMEOUT].
    #[arg(long, value_name = "SECONDS")]
    pub agent_heartbeat_timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DeploymentArgs {
    #[command(subcommand)]
    pub command: DeploymentCommand,
}

#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Add or update a code location (as `dagster-cloud deployment add-location`).
    AddLocation(Box<LocationArgs>),
    /// Update a code location (as `dagster-cloud deployment update-location`).
    UpdateLocation(Box<LocationArgs>),
    /// Delete a code location from the deployment.
    DeleteLocation(DeleteLocationArgs),
    /// List the deployment's code locations.
    ListLocations(ConnectionOnlyArgs),
    /// Print the deployment's code locations as a workspace YAML document.
    PullLocations(ConnectionOnlyArgs),
    /// Make the deployment's code locations exactly those of a workspace file.
    SyncLocations(SyncLocationsArgs),
}

#[derive(Debug, Args)]
pub struct ConnectionOnlyArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct LocationArgs {
    /// Code location name.
    pub location: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Docker image.
    #[arg(long)]
    pub image: Option<String>,
    /// Location name.
    #[arg(long)]
    pub location_name: Option<String>,
    #[command(flatten)]
    pub code: CodeSourceArgs,
    /// YAML file with the location's settings (one location, or `locations:`).
    #[arg(long, visible_alias = "from", value_name = "PATH")]
    pub location_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeleteLocationArgs {
    /// Code location name.
    pub location: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct SyncLocationsArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Path to the workspace file.
    #[arg(long, short = 'w', default_value = "workspace.yaml")]
    pub workspace: PathBuf,
}

#[derive(Debug, Args)]
pub struct BranchDeploymentArgs {
    #[command(subcommand)]
    pub command: BranchDeploymentCommand,
}

#[derive(Debug, Subcommand)]
pub enum BranchDeploymentCommand {
    /// Create or update the branch deployment of a git branch; prints its name.
    CreateOrUpdate(Box<BranchCreateArgs>),
    /// Delete a branch deployment by name.
    Delete(ConnectionOnlyArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SnapshotBaseCondition {
    OnCreate,
    OnUpdate,
}

#[derive(Debug, Args)]
pub struct BranchCreateArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The name of the git repository.
    #[arg(long = "git-repo-name", visible_alias = "repo-name")]
    pub repo_name: String,
    /// The name of the branch.
    #[arg(long)]
    pub branch_name: String,
    /// The latest commit hash.
    #[arg(long)]
    pub commit_hash: Option<String>,
    /// The latest commit timestamp (seconds since the epoch).
    #[arg(long)]
    pub timestamp: Option<f64>,
    #[arg(long)]
    pub branch_url: Option<String>,
    /// The URL of the pull (merge) request.
    #[arg(long = "code-review-url", visible_alias = "pull-request-url")]
    pub pull_request_url: Option<String>,
    #[arg(long)]
    pub pull_request_status: Option<String>,
    /// The pull request number (sent as a string).
    #[arg(long = "code-review-id", visible_alias = "pull-request-id")]
    pub pull_request_number: Option<String>,
    #[arg(long)]
    pub commit_message: Option<String>,
    #[arg(long)]
    pub author_name: Option<String>,
    #[arg(long)]
    pub author_email: Option<String>,
    #[arg(long)]
    pub author_avatar_url: Option<String>,
    /// Read the commit facts (hash, author, timestamp, subject) from HEAD of the current
    /// repository.
    #[arg(long, overrides_with = "no_read_git_state")]
    pub read_git_state: bool,
    #[arg(long, hide = true)]
    pub no_read_git_state: bool,
    #[arg(long)]
    pub base_deployment_name: Option<String>,
    #[arg(long, value_enum)]
    pub snapshot_base_condition: Option<SnapshotBaseCondition>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The location whose revisions to list.
    pub location: String,
    /// How many revisions, the newest (1 to 1000).
    #[arg(long, default_value_t = 100, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// Only revisions older than this one (to page back through a long history).
    #[arg(long, value_name = "REVISION")]
    pub before: Option<i64>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print the revisions as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The location to roll back.
    pub location: String,
    /// The revision whose document to register again [default: the latest earlier document
    /// that differs from the current one].
    #[arg(long, value_name = "REVISION")]
    pub to: Option<i64>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where a location's code is and what it records (the `dagster-cloud` flags shared by
/// `deployment add-location` and `serverless deploy-python-executable`).
#[derive(Debug, Args, Clone, Default)]
pub struct CodeSourceArgs {
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
}

impl CodeSourceArgs {
    /// `--python-file`, `--package-name`, `--module-name`, `--autoload-defs-module-name`: how
    /// many were given (a location has exactly one code source).
    pub fn sources_given(&self) -> usize {
        [
            &self.python_file,
            &self.package_name,
            &self.module_name,
            &self.autoload_defs_module_name,
        ]
        .iter()
        .filter(|s| s.is_some())
        .count()
    }
}
