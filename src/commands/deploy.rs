//! `deploy`: the arguments as a [`DeployRequest`], the workflow (`crate::deploy::flow`), its
//! outcome on stdout, then the CI feedback.

use crate::build::EXIT_INTERRUPTED;
use crate::ci::github;
use crate::cli::{BranchDeploymentMode, DeployArgs, DeployStrategy};
use crate::deploy::route::BranchMode;
use crate::deploy::{self, DeployRequest, Deployed, Outcome, feedback};
use crate::error::{EXIT_FAILURE, Error};
use crate::output;

pub async fn run(args: &DeployArgs) -> Result<u8, Error> {
    let env = &super::process_env;
    let settings = super::compat::settings(&args.connection, Some(&args.wait))?;
    let req = DeployRequest {
        plan: super::build::request(&args.plan)?,
        build: super::build::options(&args.build)?,
        statedir: args.build.statedir.clone(),
        branch: match args.branch_deployment {
            BranchDeploymentMode::Auto => BranchMode::Auto,
            BranchDeploymentMode::True => BranchMode::Always,
            BranchDeploymentMode::False => BranchMode::Never,
        },
        dry_run: args.dry_run,
        force: args.force,
        python: (args.build_strategy == DeployStrategy::PythonExecutable)
            .then(|| args.python_version.clone()),
    };
    let reporter = output::reporter(&crate::ci::context::CiContext::detect(env));
    if !args.plan.locations.is_empty() {
        reporter.message(&format!(
            "--location {}: built whatever changed, beside every location the plan selects \
             (changed, or not deployed yet); the others keep what is deployed",
            args.plan.locations.join(", ")
        ));
    }
    match deploy::deploy(req, settings, env, &reporter).await? {
        Outcome::Ended { message } => {
            reporter.message(&message);
            Ok(0)
        }
        Outcome::Interrupted => Ok(EXIT_INTERRUPTED),
        Outcome::BuildOnly { report, reason } => {
            if args.json {
                output::result(&output::json(&report)?);
            } else {
                output::result(&report.table());
            }
            output::warn(&reason);
            let note = format!("> **dagster-deploy:** {reason}.\n");
            if let Err(e) = github::append_summary(env, &note) {
                output::warn(&e);
            }
            Ok(if report.success() { 0 } else { EXIT_FAILURE })
        }
        Outcome::DryRun(dry) => {
            if args.json {
                output::result(&output::json(&dry)?);
            } else {
                output::result(&dry.text());
            }
            Ok(if dry.failures.is_empty() {
                0
            } else {
                EXIT_FAILURE
            })
        }
        Outcome::Deployed(deployed) => {
            output::result(&render(args, &deployed)?);
            let dotenv = args
                .dotenv
                .as_deref()
                .map(|p| p.to_string_lossy().into_owned());
            for warning in feedback::after_deploy(env, &deployed, dotenv.as_deref()).await {
                output::warn(&warning);
            }
            Ok(if deployed.succeeded() {
                0
            } else {
                EXIT_FAILURE
            })
        }
    }
}

/// stdout: the JSON result, or the build and registration tables.
fn render(args: &DeployArgs, deployed: &Deployed) -> Result<String, Error> {
    if args.json {
        return output::json(deployed);
    }
    let mut out = String::new();
    if let Some(built) = &deployed.python {
        for b in built {
            let deps = if b.deps_built {
                "uploaded"
            } else {
                "on the server"
            };
            out.push_str(&format!("{}\t{}\tdeps {deps}\n", b.location, b.pex_tag));
        }
    } else {
        out.push_str(&deployed.report.table());
    }
    out.push_str(&deployed.registration.table());
    Ok(out)
}
