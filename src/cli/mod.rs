//! Command-line types (clap derive only; no behaviour here).

mod build;
pub use build::{
    BranchDeploymentMode, BuildArgs, BuildFlags, DeployArgs, DeployStrategy, PlanSelection,
};

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
    /// Print only results, warnings and errors (no progress); wins over --verbose.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Also print details: retries, maintenance waits, each request's outcome.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
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
    #[arg(long, group = "format")]
    pub json: bool,
    #[command(flatten)]
    pub fan_out: FanOutArgs,
}

/// `plan`'s CI fan-out outputs: the locations a `ci` session builds (those `ci init` selects:
/// action `build` or `redeploy`), compared with the git base only, as `ci init` compares them.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "CI fan-out (imply --git-only)")]
pub struct FanOutArgs {
    /// Print `{"include":[{"location":NAME},...]}` on one line, for a GitHub Actions matrix
    /// (`{"include":[]}` when nothing is built: guard the matrix job).
    #[arg(long, group = "format")]
    pub github_matrix: bool,
    /// Print a GitLab child pipeline: one `ci build` job per location, then `ci deploy`.
    #[arg(long, group = "format")]
    pub gitlab_child_pipeline: bool,
    /// The build-session folder the child pipeline's jobs share, relative to the project
    /// directory.
    #[arg(long, value_name = "DIR", env = "DAGSTER_BUILD_STATEDIR")]
    pub statedir: Option<PathBuf>,
    /// The parent pipeline's job whose artifacts hold the state folder (and dagster-deploy in
    /// `.dagster-deploy-bin/`).
    #[arg(long, value_name = "JOB", default_value = "plan")]
    pub gitlab_plan_job: String,
    /// The image the child pipeline's jobs run in.
    #[arg(
        long,
        value_name = "IMAGE",
        env = "DAGSTER_DEPLOY_GITLAB_IMAGE",
        default_value = "alpine:3.20"
    )]
    pub gitlab_image: String,
    /// The Docker-in-Docker service of the build jobs; `none` when the runner has an engine.
    #[arg(
        long,
        value_name = "IMAGE",
        env = "DAGSTER_DEPLOY_GITLAB_DOCKER_SERVICE",
        default_value = "docker:27-dind"
    )]
    pub gitlab_docker_service: String,
}
