//! Command-line types (clap derive only; no behaviour here).

mod build;
pub use build::{BuildArgs, BuildFlags, DeployArgs, PlanSelection};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod api;
pub mod serve;

#[derive(Debug, Parser)]
#[command(
    name = "dagster-deploy",
    version,
    about = "Plan, build, push and register Dagster code locations: only what changed.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate dagster_cloud.yaml (and dagster-deploy.toml) and report every problem at once.
    Check(CheckArgs),
    /// Show, for every location, whether it must be built, redeployed or skipped, and why.
    Plan(PlanArgs),
    /// Build and push one image per location to build, in parallel (reusing existing ones).
    Build(BuildArgs),
    /// Plan, build and push; registering with the deployment API comes in a later version.
    Deploy(DeployArgs),
    /// Manage a deployment's code locations (the dagster-cloud `deployment` commands).
    Deployment(Box<api::DeploymentArgs>),
    /// Manage branch deployments (the dagster-cloud `branch-deployment` commands).
    BranchDeployment(api::BranchDeploymentArgs),
    /// Run the embedded deployment server (Dagster+ protocol), or manage its tokens.
    Serve(serve::ServeArgs),
    /// List every revision of a location's document (dagster-deploy servers and the local store).
    History(api::HistoryArgs),
    /// Register an earlier document of a location again.
    Rollback(api::RollbackArgs),
}

#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Path to dagster_cloud.yaml [default: ./dagster_cloud.yaml, else the nearest one above]
    #[arg(long, value_name = "PATH", visible_alias = "location-file")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Revision to compare against [default: from the CI event, else the merge-base with the
    /// default branch].
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Revision to plan for [default: HEAD, plus uncommitted changes outside CI].
    #[arg(long, value_name = "REV")]
    pub head: Option<String>,
    /// Count uncommitted changes in the work tree [default: on outside CI, off in CI].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub include_dirty: Option<bool>,
    /// Build this location whatever changed (repeatable).
    #[arg(long = "location", value_name = "NAME")]
    pub locations: Vec<String>,
    /// Build every location.
    #[arg(long)]
    pub all: bool,
    /// Print the plan as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}
