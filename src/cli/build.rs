//! Arguments of `build` and `deploy`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::ConfigArgs;
use super::api::{ConnectionArgs, WaitArgs};

/// How `deploy` builds what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DeployStrategy {
    /// One image per location, pushed to its registry.
    #[default]
    Docker,
    /// PEX files uploaded to the deployment (Dagster+ Serverless or `serve`): no Docker.
    #[value(name = "python-executable")]
    PythonExecutable,
}

/// Which locations: the plan's flags (shared by `build` and `deploy`).
#[derive(Debug, Args, Clone)]
pub struct PlanSelection {
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
}

/// How to build and push.
#[derive(Debug, Args, Clone)]
pub struct BuildFlags {
    /// Builds at once [default: twice the cores, between 2 and 8].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Stop every build at the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// The human tag pushed beside the content-key tag; placeholders {location}, {sha} (short
    /// commit), {commit}, {content_key}.
    #[arg(long, value_name = "TEMPLATE", default_value = "{location}-{sha}")]
    pub tag_template: String,
    /// Push no human tag (only `<location>-<content key>` and the cache tag).
    #[arg(long)]
    pub no_human_tag: bool,
    /// Neither pull `<location>-latest` as layer cache nor push it.
    #[arg(long)]
    pub no_cache_from: bool,
    /// Build the images but push nothing and read nothing from the registry (a test build;
    /// what a fork's pull request without secrets gets).
    #[arg(long)]
    pub no_push: bool,
    /// Build argument for every location, over dagster-deploy.toml's (repeatable); changes the
    /// image tag. DAGSTER_DEPLOY_BUILD_ARGS holds one per line (for CI variables).
    #[arg(
        long = "build-arg",
        value_name = "KEY=VALUE",
        env = "DAGSTER_DEPLOY_BUILD_ARGS",
        value_delimiter = '\n',
        hide_env_values = true
    )]
    pub build_args: Vec<String>,
    /// Largest build context (`500M`, `2G`, bytes).
    #[arg(
        long,
        value_name = "SIZE",
        env = "DAGSTER_DEPLOY_MAX_CONTEXT_SIZE",
        default_value = "2G"
    )]
    pub max_context_size: String,
    /// Network for RUN steps (`none`, `host`, ...) [default: the engine's].
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// The engine's builder: `auto` (BuildKit when the engine has it), `buildkit` or `classic`.
    #[arg(long, value_enum, value_name = "BUILDER", default_value = "auto")]
    pub builder: crate::build::Builder,
    /// Build secret for `RUN --mount=type=secret,id=ID` (repeatable), as for `docker buildx
    /// build --secret`: `id=ID,env=VAR` or `id=ID,src=FILE` (`id=ID` alone: the variable ID).
    /// Over dagster-deploy.toml's `secrets`; never part of the image or its tag.
    /// DAGSTER_DEPLOY_SECRETS holds one per line.
    #[arg(
        long = "secret",
        value_name = "id=ID,env=VAR|src=FILE",
        env = "DAGSTER_DEPLOY_SECRETS",
        value_delimiter = '\n',
        hide_env_values = true
    )]
    pub secrets: Vec<String>,
    /// Where the CI build session state lives (`location-<name>.json`); results are written
    /// there for the deploy step [env: DAGSTER_BUILD_STATEDIR].
    #[arg(long, value_name = "DIR")]
    pub statedir: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct BuildArgs {
    #[command(flatten)]
    pub plan: PlanSelection,
    #[command(flatten)]
    pub build: BuildFlags,
    /// Print each location's Dockerfile (its own, or the generated default) and build nothing.
    #[arg(long)]
    pub print_dockerfile: bool,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct DeployArgs {
    #[command(flatten)]
    pub plan: PlanSelection,
    #[command(flatten)]
    pub build: BuildFlags,
    /// Where to register (Dagster+ or `dagster-deploy serve`); with no setting at all (flags,
    /// environment or ~/.dagster_cloud_cli/config), the local store in `.dagster-deploy/` at
    /// the repository root.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Register even where the deployed commit is newer than the one being deployed.
    #[arg(long)]
    pub force: bool,
    /// `docker`, or `python-executable`: the changed locations as PEX files (dependencies
    /// built once per requirement set), no Docker engine or registry.
    #[arg(long, value_enum, default_value = "docker")]
    pub build_strategy: DeployStrategy,
    /// Python for `--build-strategy python-executable` [default: `python_version` in
    /// dagster-deploy.toml, else 3.11].
    #[arg(long, value_name = "X.Y")]
    pub python_version: Option<String>,
    /// Deploy to the pull (merge) request's branch deployment, created or updated from the CI
    /// context; when the request is closed or merged, mark it so and build nothing. `auto`:
    /// only when the run builds a pull request.
    #[arg(
        long,
        value_name = "WHEN",
        env = "DAGSTER_DEPLOY_BRANCH_DEPLOYMENT",
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true"
    )]
    pub branch_deployment: BranchDeploymentMode,
    /// Write a dotenv file with the deployment's name (`DAGSTER_CLOUD_DEPLOYMENT=...`) for
    /// later CI jobs (GitLab `artifacts: reports: dotenv`).
    #[arg(long, value_name = "PATH", env = "DAGSTER_DEPLOY_DOTENV")]
    pub dotenv: Option<PathBuf>,
    /// Print what would be built, pushed and registered, and touch nothing (no engine, no
    /// registry, no registration).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// When `deploy` goes to a branch deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BranchDeploymentMode {
    /// When the CI run builds a pull (merge) request.
    Auto,
    /// Always: a run that builds no pull request is an error.
    True,
    /// Never: deploy to `--deployment`.
    False,
}
