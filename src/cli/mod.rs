//! Command-line types (clap derive only; no behaviour here).

mod build;
pub use build::{BuildArgs, BuildFlags, DeployArgs, DeployStrategy, PlanSelection};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod api;
pub mod ci;
pub mod serve;
pub mod serverless;

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
    /// Plan, build and push what changed, then register it and wait for it to load.
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
    /// CI build sessions (the dagster-cloud `ci` commands, on the same state files).
    Ci(ci::CiArgs),
    /// Docker-free deploys (the dagster-cloud `serverless deploy-python-executable` command).
    Serverless(serverless::ServerlessArgs),
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
    pub selection: PlanSelection,
    /// Where `deploy` registers: each deployed location is compared with the commit it was
    /// deployed from (Dagster+ / `serve` settings, else the local store when it exists).
    #[command(flatten)]
    pub connection: api::ConnectionArgs,
    /// Compare every location with the git base only; read nothing deployed.
    #[arg(long)]
    pub git_only: bool,
    /// Print the plan as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}
