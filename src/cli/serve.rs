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
    /// Registry (`host[:port]`) the server may check registered images in; repeatable. Images
    /// anywhere else (except Docker Hub) are reported as not checkable, and never contacted.
    #[arg(long, value_name = "HOST")]
    pub registry: Vec<String>,
    /// User name for logging in to the first --registry; the password comes from
    /// DAGSTER_DEPLOY_REGISTRY_PASSWORD.
    #[arg(long, value_name = "USER", requires = "registry")]
    pub registry_user: Option<String>,
    /// Registry spoken to over plain HTTP (besides localhost and 127.0.0.1); repeatable.
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Do not check that registered images exist, and run nothing: every location loads at
    /// once.
    #[arg(long)]
    pub no_image_checks: bool,
    /// Also run the Dagster UI (dagster-webserver and dagster-daemon) of the
    /// --default-deployment on ADDR [ADDR: 127.0.0.1:3001]. dagster and dagster-webserver are
    /// taken from PATH, else installed from PyPI into ~/.cache/dagster-deploy on first use.
    #[arg(
        long,
        num_args = 0..=1,
        default_missing_value = DEFAULT_DAGSTER_UI,
        value_name = "ADDR",
        conflicts_with_all = ["no_image_checks", "no_code_servers"]
    )]
    pub dagster_ui: Option<SocketAddr>,
    /// A Dagster webserver you run on a deployment's workspace file (`serve` prints where the
    /// default deployment's is), told to reload when locations are added or removed:
    /// `[DEPLOYMENT=]URL`, the --default-deployment when unnamed; repeatable.
    #[arg(long, value_name = "[DEPLOYMENT=]URL")]
    pub dagster_webserver: Vec<String>,
    /// Check that registered images and Python-executable files exist, but run no code
    /// servers: a location is LOADED once what it names exists.
    #[arg(long, conflicts_with = "no_image_checks")]
    pub no_code_servers: bool,
    #[command(flatten)]
    pub code_servers: CodeServerArgs,
    /// The deployment of requests that name none.
    #[arg(long, default_value = "prod", value_name = "NAME")]
    pub default_deployment: String,
    /// Largest Python-executable file accepted at a generateServerlessPexUrl URL, in bytes.
    #[arg(long, default_value_t = crate::server::DEFAULT_MAX_BLOB_BYTES, value_name = "BYTES")]
    pub max_file_size: u64,
    /// The URL clients reach this server at (behind a proxy: the proxy's), the base of the
    /// file URLs handed out [default: http:// and the --listen address].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Open connections at once; more are answered 503 (clients retry).
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub max_connections: usize,
    /// Log lines (one per request, on stderr) as text or JSON; the level comes from RUST_LOG
    /// (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Where `--dagster-ui` listens when given no address (the server itself has 3000).
pub const DEFAULT_DAGSTER_UI: &str = "127.0.0.1:3001";
/// How the agent runs each location's Dagster code server.
#[derive(Debug, Args, Clone)]
pub struct CodeServerArgs {
    /// Host ports given to code servers (on 127.0.0.1), as START-END.
    #[arg(long, value_name = "START-END", default_value = "44000-44999", value_parser = parse_port_range)]
    pub code_server_ports: std::ops::RangeInclusive<u16>,
    /// How long a code server may take to answer and load its code, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub code_server_startup_timeout: u64,
    /// How long a replaced code server keeps running once its successor is LOADED, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub code_server_grace: u64,
    /// Leave code servers running when serve stops (a restarted serve adopts them).
    #[arg(long)]
    pub keep_code_servers: bool,
    /// Run Python-executable code servers as this user [default when serve runs as root:
    /// nobody; otherwise serve's own user].
    #[arg(long, value_name = "USER")]
    pub code_server_user: Option<String>,
    /// Folder for Python-executable code servers' files [default: a folder in the system's
    /// temporary folder named by this server's id].
    #[arg(long, value_name = "DIR")]
    pub code_server_dir: Option<PathBuf>,
}

fn parse_port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let bad = || format!("{text:?} is not a port range such as 44000-44999");
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start: u16 = start.trim().parse().map_err(|_| bad())?;
    let end: u16 = end.trim().parse().map_err(|_| bad())?;
    if start == 0 || start > end {
        return Err(bad());
    }
    Ok(start..=end)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// List tokens: id, label, scope, created, last used, revoked (never the secret).
    List(TokenListArgs),
    /// Revoke a token by id (see `list`): requests with it fail from then on.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// One JSON object per token, in a list, on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataDirArgs,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id, as `serve token list` shows it.
    #[arg(value_name = "ID")]
    pub id: i64,
    #[command(flatten)]
    pub data: DataDirArgs,
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
