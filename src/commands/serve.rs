//! `serve`: the embedded deployment server until Ctrl-C (or SIGTERM), and `serve token
//! create | list | revoke`.

use std::io::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::cli::serve::{
    ServeArgs, ServeCommand, ServeRunArgs, TokenCommand, TokenCreateArgs, TokenListArgs,
    TokenRevokeArgs,
};
use crate::dagster::ui::{self, UiOptions};
use crate::error::Error;
use crate::output;
use crate::server::workspace::Webserver;
use crate::server::{
    self, AgentOptions, ConnectionLimits, Deployments, RegistryAccess, RegistryCredentials,
    ServeOptions, ServerError, TokenInfo, TokenScope,
};

/// The registry password for `--registry-user` (never a flag: argv is visible to others).
pub const REGISTRY_PASSWORD_ENV: &str = "DAGSTER_DEPLOY_REGISTRY_PASSWORD";

pub async fn run(args: &ServeArgs) -> Result<u8, Error> {
    match &args.command {
        Some(ServeCommand::Token(t)) => match &t.command {
            TokenCommand::Create(c) => token_create(c),
            TokenCommand::List(l) => token_list(l),
            TokenCommand::Revoke(r) => token_revoke(r),
        },
        None => serve(&args.run).await,
    }
}

async fn serve(a: &ServeRunArgs) -> Result<u8, Error> {
    let mut opts = ServeOptions::new(a.listen, &a.data.dir);
    opts.default_deployment = a.default_deployment.clone();
    opts.max_blob_bytes = a.max_file_size;
    opts.public_url = a.public_url.clone();
    opts.trusted_registries = a.registry.clone();
    opts.limits = ConnectionLimits {
        max_connections: a.max_connections.max(1),
        ..ConnectionLimits::default()
    };
    opts.registry = if a.no_image_checks {
        None
    } else {
        Some(registry_access(a)?)
    };
    opts.dagster_webservers = dagster_webservers(a)?;
    if !a.no_image_checks && !a.no_code_servers {
        let c = &a.code_servers;
        opts.agent = Some(AgentOptions {
            ports: c.code_server_ports.clone(),
            startup_timeout: Duration::from_secs(c.code_server_startup_timeout.max(1)),
            switch_grace: Duration::from_secs(c.code_server_grace),
            keep_code_servers: c.keep_code_servers,
            code_server_user: c.code_server_user.clone(),
            run_dir: c.code_server_dir.clone(),
            ..AgentOptions::default()
        });
    }
    // Listening for signals starts before the server answers: a SIGTERM sent as soon as it
    // answers must stop it gracefully, not kill it. A signal during start-up stops it there.
    let mut stop = std::pin::pin!(shutdown_signal());
    let running = tokio::select! {
        started = server::start(opts) => started?,
        () = &mut stop => return Ok(crate::build::EXIT_INTERRUPTED),
    };
    output::progress(&format!(
        "dagster-deploy serve: listening on {} (data: {}); Ctrl-C stops",
        running.url(),
        a.data.dir.display()
    ));
    let deployment = &a.default_deployment;
    let workspace =
        running
            .workspaces()
            .ensure(deployment)
            .map_err(|source| ServerError::DataDir {
                path: running.workspaces().file(deployment),
                source,
            })?;
    output::progress(&format!(
        "Dagster workspace of deployment {deployment}: {} (`dagster-webserver -w` it)",
        workspace.display()
    ));
    let (stop_ui, ui_stopped) = tokio::sync::watch::channel(false);
    let ui_task = a.dagster_ui.map(|addr| {
        let opts = UiOptions {
            deployment: deployment.clone(),
            addr,
            workspace,
            dir: running.workspaces().dir(deployment),
        };
        output::progress(&format!(
            "Dagster UI of deployment {deployment}: {} (starting; logs in {})",
            opts.url(),
            opts.dir.join("logs").display()
        ));
        tokio::spawn(ui::run(opts, ui_stopped))
    });
    stop.await;
    // Not `eprintln!`: stderr may be closed by now, which must not fail the shutdown.
    let _ = writeln!(std::io::stderr(), "dagster-deploy serve: shutting down");
    let _ = stop_ui.send(true);
    if let Some(task) = ui_task {
        let _ = task.await;
    }
    running.shutdown().await?;
    Ok(0)
}

/// The webservers to reload when a deployment's locations change: ours (the default
/// deployment's) and the user's (`[DEPLOYMENT=]URL`, the default deployment when unnamed).
fn dagster_webservers(a: &ServeRunArgs) -> Result<Vec<Webserver>, Error> {
    if a.dagster_ui == Some(a.listen) {
        return Err(Error::Usage {
            message: format!(
                "--dagster-ui {} is the server's own --listen address",
                a.listen
            ),
            hint: format!(
                "give the UI another port, e.g. --dagster-ui {}",
                crate::cli::serve::DEFAULT_DAGSTER_UI
            ),
        });
    }
    let mut webservers = Vec::new();
    for value in &a.dagster_webserver {
        let (deployment, url) = match value.split_once('=') {
            Some((d, url)) if !d.contains(['/', ':']) => (d.to_string(), url),
            _ => (a.default_deployment.clone(), value.as_str()),
        };
        let bad = |what: String| Error::Usage {
            message: format!("--dagster-webserver {value:?}: {what}"),
            hint: "give [DEPLOYMENT=]URL, the webserver's base URL, e.g. --dagster-webserver \
                   http://127.0.0.1:3001 or --dagster-webserver staging=http://127.0.0.1:3002"
                .into(),
        };
        server::check_deployment_name(&deployment).map_err(|e| bad(e.to_string()))?;
        let parsed = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        if parsed.is_none() {
            return Err(bad(format!("{url:?} is not an http(s) URL")));
        }
        webservers.push(Webserver {
            deployment,
            url: url.trim_end_matches('/').to_string(),
        });
    }
    webservers.extend(a.dagster_ui.map(|addr| Webserver {
        deployment: a.default_deployment.clone(),
        url: format!("http://{addr}"),
    }));
    Ok(webservers)
}

fn registry_access(a: &ServeRunArgs) -> Result<RegistryAccess, Error> {
    let mut access = RegistryAccess {
        credentials: Vec::new(),
        insecure_registries: a.insecure_registry.clone(),
    };
    if let (Some(registry), Some(user)) = (a.registry.first(), &a.registry_user) {
        let password = super::process_env(REGISTRY_PASSWORD_ENV).ok_or_else(|| Error::Usage {
            message: format!("--registry-user needs the password in {REGISTRY_PASSWORD_ENV}"),
            hint: format!("export {REGISTRY_PASSWORD_ENV}=... before starting the server"),
        })?;
        access.credentials.push(RegistryCredentials {
            registry: registry.clone(),
            username: user.clone(),
            password: password.into(),
        });
    }
    Ok(access)
}

/// Ctrl-C, or SIGTERM (what process managers and `kill` send). The handlers are installed
/// by this call, not when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        let next = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = next(interrupt) => {}
            () = next(terminate) => {}
        }
    }
}

#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn token_create(a: &TokenCreateArgs) -> Result<u8, Error> {
    let deployments = Deployments::open(&a.data.dir)?;
    let scope = match &a.deployment {
        Some(name) => {
            if deployments.deployment(name).is_err() {
                deployments.create_deployment(name)?;
                output::progress(&format!("Created deployment {name}."));
            }
            TokenScope::Deployment(name.clone())
        }
        None => TokenScope::Organization,
    };
    let (info, token) = deployments.create_token(scope, a.label.as_deref())?;
    let what = match &info.scope {
        TokenScope::Deployment(d) => format!("a token for deployment {d}"),
        TokenScope::Organization => "an organization token".to_string(),
    };
    output::progress(&format!(
        "Created {what} (id {}, label {}). It is shown only once; store it now (e.g. as \
         DAGSTER_CLOUD_API_TOKEN).",
        info.id, info.label
    ));
    output::result_line(&token);
    Ok(0)
}

/// What `token list` shows of a token (never its secret, which is not stored).
#[derive(Serialize)]
struct TokenRow {
    id: i64,
    label: String,
    /// `organization` or the deployment's name.
    scope: String,
    created: String,
    last_used: Option<String>,
    revoked: bool,
}

impl From<TokenInfo> for TokenRow {
    fn from(t: TokenInfo) -> Self {
        TokenRow {
            id: t.id,
            label: t.label,
            scope: match t.scope {
                TokenScope::Deployment(d) => d,
                TokenScope::Organization => "organization".into(),
            },
            created: utc(t.created_at_ms),
            last_used: t.last_used_at_ms.map(utc),
            revoked: t.revoked,
        }
    }
}

fn utc(ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

fn token_list(a: &TokenListArgs) -> Result<u8, Error> {
    let deployments = Deployments::open(&a.data.dir)?;
    let rows: Vec<TokenRow> = deployments
        .tokens()?
        .into_iter()
        .map(TokenRow::from)
        .collect();
    if a.json {
        output::result(&output::json(&rows)?);
        return Ok(0);
    }
    output::result_line("ID\tLABEL\tSCOPE\tCREATED\tLAST USED\tSTATE");
    for r in rows {
        output::result_line(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            r.id,
            r.label,
            r.scope,
            r.created,
            r.last_used.as_deref().unwrap_or("never"),
            if r.revoked { "revoked" } else { "active" }
        ));
    }
    Ok(0)
}

fn token_revoke(a: &TokenRevokeArgs) -> Result<u8, Error> {
    let deployments = Deployments::open(&a.data.dir)?;
    if deployments.revoke_token(a.id)? {
        output::progress(&format!(
            "Revoked token {}: requests with it are refused from now on.",
            a.id
        ));
        Ok(0)
    } else {
        Err(Error::Usage {
            message: format!("no active token has id {}", a.id),
            hint: "see the ids with `dagster-deploy serve token list`".into(),
        })
    }
}
