//! `serve`: the embedded deployment server until Ctrl-C (or SIGTERM), and `serve token create`.

use crate::cli::serve::{ServeArgs, ServeCommand, ServeRunArgs, TokenCommand, TokenCreateArgs};
use crate::error::Error;
use crate::output;
use crate::server::{
    self, Deployments, RegistryAccess, RegistryCredentials, ServeOptions, TokenScope,
};

/// The registry password for `--registry-user` (never a flag: argv is visible to others).
pub const REGISTRY_PASSWORD_ENV: &str = "DAGSTER_DEPLOY_REGISTRY_PASSWORD";

pub async fn run(args: &ServeArgs) -> Result<u8, Error> {
    match &args.command {
        Some(ServeCommand::Token(t)) => match &t.command {
            TokenCommand::Create(c) => token_create(c),
        },
        None => serve(&args.run).await,
    }
}

async fn serve(a: &ServeRunArgs) -> Result<u8, Error> {
    let mut opts = ServeOptions::new(a.listen, &a.data.dir);
    opts.default_deployment = a.default_deployment.clone();
    opts.max_blob_bytes = a.max_file_size;
    opts.registry = if a.no_image_checks {
        None
    } else {
        Some(registry_access(a)?)
    };
    let running = server::start(opts).await?;
    output::progress(&format!(
        "dagster-deploy serve: listening on {} (data: {}); Ctrl-C stops",
        running.url(),
        a.data.dir.display()
    ));
    shutdown_signal().await;
    output::progress("dagster-deploy serve: shutting down");
    running.shutdown().await?;
    Ok(0)
}

fn registry_access(a: &ServeRunArgs) -> Result<RegistryAccess, Error> {
    let mut access = RegistryAccess {
        credentials: Vec::new(),
        insecure_registries: a.insecure_registry.clone(),
    };
    if let (Some(registry), Some(user)) = (&a.registry, &a.registry_user) {
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

/// Ctrl-C, or SIGTERM (what process managers and `kill` send).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
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
