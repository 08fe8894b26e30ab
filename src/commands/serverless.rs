//! `serverless deploy-python-executable`: the arguments mapped onto `deploy::python`, which
//! builds and uploads each location's Python executable, then registers the locations (only
//! once every upload succeeded) and waits for them to load.

use crate::api::document::DocumentFlags;
use crate::api::wait::failures_to_error;
use crate::cli::serverless::{BuildMethodArg, PexDeployArgs, ServerlessCommand};
use crate::deploy::python::{self, LocationQuery, PexOptions};
use crate::deploy::{Remote, WaitPolicy};
use crate::error::Error;
use crate::output;
use crate::pex::BuildMethod;

pub async fn run(command: &ServerlessCommand) -> Result<u8, Error> {
    match command {
        ServerlessCommand::DeployPythonExecutable(a) => deploy_python_executable(a).await,
    }
}

async fn deploy_python_executable(a: &PexDeployArgs) -> Result<u8, Error> {
    let env = &super::process_env;
    let s = super::compat::settings(&a.connection, Some(&a.wait))?;
    if a.base_image_tag.is_some() {
        return Err(Error::Usage {
            message: "--base-image-tag is not supported by dagster-deploy".into(),
            hint: "pass the full image with --image instead".into(),
        });
    }
    let say = |m: &str| output::progress(m);
    let query = LocationQuery {
        name: a.location_name.as_deref(),
        sources_given: a.code.sources_given(),
        location_file: a.location_file.as_deref(),
        source_directory: &a.source_directory,
    };
    let targets = python::resolve(&query, env, &say)?;
    let remote = Remote {
        client: s.deployment_client("serverless deploy-python-executable")?,
    };
    let file = a
        .location_file
        .as_deref()
        .and_then(|f| crate::config::load(f, env).ok());
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let opts = PexOptions {
        python_version: python::python_version(a.python_version.as_deref(), file.as_ref(), &names),
        deps_cache_from: a.deps_cache_from.clone(),
        deps_cache_to: a.deps_cache_to.clone(),
        build_method: match a.build_method {
            BuildMethodArg::Local => BuildMethod::Local,
            BuildMethodArg::Docker => BuildMethod::Docker,
            BuildMethodArg::DockerFallback => BuildMethod::DockerFallback,
        },
    };
    output::progress(&format!(
        "Deploying {} as Python executables (Python {})",
        names.join(", "),
        opts.python_version
    ));
    let flags = |b: &crate::pex::Built| DocumentFlags {
        pex_tag: Some(b.pex_tag.clone()),
        // As the reference: a given image pins its own Python.
        python_version: a.image.is_none().then(|| b.python_version.clone()),
        ..super::compat::document_flags(&a.code, a.image.clone())
    };
    let policy = WaitPolicy::deployment_command(&s);
    let reporter = output::reporter(&crate::ci::context::CiContext::detect(env));
    let (built, results) =
        python::deploy(&remote, &targets, &opts, &flags, true, &policy, &reporter).await?;
    failures_to_error(&results)?;
    if a.json {
        // With --json, stdout carries the result document only.
        output::result(&output::json(&serde_json::json!({ "locations": built }))?);
    } else if policy.waits() {
        output::result_line(&format!(
            "Agent synced changes to {}. Changes should now be visible.",
            names.join(", ")
        ));
    }
    Ok(0)
}
