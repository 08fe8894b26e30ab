//! `ci init`: one state file per location. Unlike the reference, only the locations the plan
//! says changed are selected (`--all`: every one; `--location-name`: those named), so later
//! steps build and deploy just those. In a pull request the session targets its branch
//! deployment, created or updated here.

use std::path::{Path, PathBuf};

use crate::api::{ApiToken, SettingsFlags};
use crate::changes::Repo;
use crate::ci::context::CiContext;
use crate::ci::repo_facts;
use crate::ci::state::{LocationStatus, StateDir, StateError};
use crate::cli::ci::InitArgs;
use crate::config::{self, Workspace};
use crate::deploy::Remote;
use crate::deploy::route::{self, BranchMode, Purpose, Route, RouteRequest};
use crate::deploy::select::{self, Against};
use crate::deploy::session::{self, SessionDefaults};
use crate::error::Error;
use crate::output;
use crate::plan::{self, Action, PlanRequest};

pub async fn run(args: &InitArgs) -> Result<u8, Error> {
    let env = &super::super::process_env;
    let dir =
        StateDir::choose(args.statedir.statedir.as_deref(), env).ok_or(StateError::NoFolder)?;
    let project_dir = absolute(&args.project_dir)?;
    let yaml_path = project_dir.join(&args.dagster_cloud_yaml_path);
    if !yaml_path.is_file() {
        return Err(Error::Usage {
            message: format!("no dagster_cloud.yaml at {}", yaml_path.display()),
            hint: "pass --project-dir (the folder holding it) or --dagster-cloud-yaml-path".into(),
        });
    }
    // Bad input fails before the branch deployment is created.
    check_names(
        &config::load(&yaml_path, env)?,
        &yaml_path,
        &args.location_names,
    )?;
    let settings = super::super::resolve_settings(&SettingsFlags {
        organization: args.organization.clone(),
        deployment: args.deployment.clone(),
        api_token: args.api_token.clone().and_then(ApiToken::new),
        ..Default::default()
    })?;
    let url = settings.organization_url("ci init")?;

    // Where the session deploys (deploy::route), then the plan against what it runs there
    // (deploy::select), so a location the deployment lacks is always selected.
    let ci = CiContext::detect(env);
    let required = args.require_branch_deployment && !args.no_require_branch_deployment;
    let condition = super::super::compat::snapshot_base(args.snapshot_base_condition);
    let mut settings = settings;
    let routed = route::route(
        &RouteRequest {
            mode: if required {
                BranchMode::Always
            } else {
                BranchMode::Auto
            },
            purpose: Purpose::Session,
            condition,
            ci: &ci,
            env,
            workdir: &project_dir,
        },
        &mut settings,
    )
    .await?;
    let deployment = settings.deployment.clone().unwrap_or_default();
    let is_branch = match routed {
        Route::Deploy {
            pull_request: Some(_),
            base,
            ..
        } => {
            output::result_line(&format!(
                "Deploying to branch deployment {deployment}{}",
                base.map(|b| format!(", using base deployment {b}"))
                    .unwrap_or_default()
            ));
            true
        }
        _ => {
            output::result_line(&format!(
                "Deploying to {deployment}. No branch deployment (this run builds no pull \
                 request)."
            ));
            false
        }
    };
    let req = PlanRequest {
        config: yaml_path.clone(),
        base: args.base.clone(),
        head: None,
        include_dirty: None,
        force: args.location_names.clone(),
        all: args.all,
    };
    let remote = match (&settings.token, req.base.is_none() && !req.all) {
        (Some(_), true) => Some(Remote {
            client: settings.client_for(None, &deployment, "ci init")?,
        }),
        (None, true) => {
            output::warn(&format!(
                "no API token, so what {deployment} runs is unknown: locations are \
                 selected by what changed in git alone"
            ));
            None
        }
        (_, false) => None,
    };
    let against = remote
        .as_ref()
        .map_or(Against::Git, |r| Against::Deployment(r));
    let deployed = select::deployed(&against, &req).await?;
    let repo = plan::open_repo(&req)?;
    let facts = select::ci_facts(&ci, &req)?;
    let plan = plan::plan_in(&repo, &req, &facts, env, deployed.as_ref())?;

    if !args.no_clean_statedir {
        dir.clear()?;
    }
    let repo = Repo::discover(&project_dir)?;
    let commit = args
        .commit_hash
        .clone()
        .unwrap_or_else(|| plan.head.commit.clone());
    let mut git = repo_facts::discover(&repo.repo, &commit, env);
    if let Some(url) = &args.git_url {
        git.url = Some(url.clone());
    }
    if let Some(path) = &args.dotenv {
        crate::deploy::feedback::write_dotenv(
            &path.to_string_lossy(),
            &deployment,
            is_branch,
            &commit,
        )
        .map_err(|message| Error::Usage {
            message,
            hint: "pass --dotenv a path in a writable folder".into(),
        })?;
    }
    let defaults = SessionDefaults {
        url,
        deployment_name: deployment,
        git,
    };
    output::result_line(&format!("Initializing {}", dir.path.display()));
    for planned in &plan.locations {
        if !args.location_names.is_empty() && !args.location_names.contains(&planned.name) {
            continue;
        }
        let mut s = session::new_state(&plan, &planned.name, &defaults);
        s.location_file = yaml_path.display().to_string();
        s.is_branch_deployment = is_branch;
        s.selected = planned.action != Action::Skip;
        s.status_url = args.status_url.clone();
        s.project_dir = Some(project_dir.display().to_string());
        s.add_status(LocationStatus::Pending, "initialized");
        dir.save(&s)?;
        let verdict = if s.selected {
            "selected"
        } else {
            "not selected"
        };
        output::result_line(&format!(
            "- {} ({verdict}: {})",
            planned.name, planned.reason.message
        ));
    }
    Ok(0)
}

/// `--location-name` values must name locations of the file (the flag, not `--location`).
fn check_names(ws: &Workspace, yaml_path: &Path, names: &[String]) -> Result<(), Error> {
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !ws.locations.iter().any(|l| &l.name == *n))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let known: Vec<&str> = ws.locations.iter().map(|l| l.name.as_str()).collect();
    Err(Error::Usage {
        message: format!(
            "--location-name {}: not in {}",
            unknown.join(", "),
            yaml_path.display()
        ),
        hint: format!("known locations: {}", known.join(", ")),
    })
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(|e| Error::Usage {
        message: format!("--project-dir {}: {e}", path.display()),
        hint: "pass an existing folder".into(),
    })
}
