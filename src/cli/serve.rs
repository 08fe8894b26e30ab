//! `dagster-deploy serve`: the embedded deployment server, and its tokens.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
    #[command(flatten)]
    pub run: ServeRunArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ServeRunArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000", value_name = "ADDR")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Registry (`host[:port]`) to log in to when checking images; the user name is
    /// `--registry-user`, the password comes from DAGSTER_DEPLOY_REGISTRY_PASSWORD.
    #[arg(long, value_name = "HOST", requires = "registry_user")]
    pub registry: Option<String>,
    #[arg(long, value_name = "USER", requires = "registry")]
    pub registry_user: Option<String>,
    /// Registry spoken to over plain HTTP (besides localhost and 127.0.0.1); repeatable.
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Do not check that registered images exist: every location loads at once.
    #[arg(long)]
    pub no_image_checks: bool,
    /// The deployment of requests that name none.
    #[arg(long, default_value = "prod", value_name = "NAME")]
    pub default_deployment: String,
    /// Largest Python-executable file accepted at a generateServerlessPexUrl URL, in bytes.
    #[arg(long, default_value_t = crate::server::DEFAULT_MAX_BLOB_BYTES, value_name = "BYTES")]
    pub max_file_size: u64,
}

#[derive(Debug, Args, Clone)]
pub struct DataDirArgs {
    /// Folder holding the server's SQLite database.
    #[arg(
        long = "data",
        visible_alias = "data-dir",
        default_value = ".dagster-deploy-server",
        value_name = "DIR"
    )]
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// Manage API tokens.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create(TokenCreateArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["deployment", "organization"])))]
pub struct TokenCreateArgs {
    /// A token for this deployment only.
    #[arg(long, value_name = "NAME")]
    pub deployment: Option<String>,
    /// A token for every deployment and organization-level operations.
    #[arg(long)]
    pub organization: bool,
    /// A label recorded with every change made with the token.
    #[arg(long)]
    pub label: Option<String>,
    #[command(flatten)]
    pub data: DataDirArgs,
}
