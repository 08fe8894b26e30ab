//! `deploy`, top to bottom: route → what is deployed → plan → build and push (Docker) or
//! build and upload (Python executables) → record the build session → register in one
//! `deployLocations` → wait → the report every output (stdout, CI feedback) is made from.
//! `--dry-run` runs the same code up to the first side effect.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use super::dry_run::DryRun;
use super::prepare::Prepared;
use super::python::{self, PexOptions, PexTarget};
use super::register::{self, LocationReport, RegisterOptions, RegisterReport, RegisterStatus};
use super::route::{self, BranchMode, Purpose, Route, RouteRequest};
use super::select::{self, Against};
use super::target::{self, Deployment, LocalStore, Remote};
use super::wait::WaitPolicy;
use crate::api::Settings;
use crate::api::document::{self, DocumentFlags, GitMetadata};
use crate::api::wait::LoadResult;
use crate::build::{BuildOptions, BuildReport, DockerEngine};
use crate::ci::context::CiContext;
use crate::ci::repo_facts;
use crate::config::{self, Env};
use crate::error::Error;
use crate::pex::{BuildMethod, Built};
use crate::plan::{self, Action, Plan, PlanRequest};
use crate::progress::Reporter;
use crate::registry::{ImageRef, Keychain};
use crate::server::{DEFAULT_DEPLOYMENT, RegistryAccess};

/// Everything `deploy` is asked to do.
pub struct DeployRequest {
    pub plan: PlanRequest,
    pub build: BuildOptions,
    /// The build-session folder to record results in (else `DAGSTER_BUILD_STATEDIR`).
    pub statedir: Option<PathBuf>,
    pub branch: BranchMode,
    pub dry_run: bool,
    /// Register even when the deployed commit is newer.
    pub force: bool,
    /// `Some`: Python executables for this Python (`None`: the one rule's default).
    pub python: Option<Option<String>>,
}

/// How a `deploy` ended.
pub enum Outcome {
    /// The pull request ended: its branch deployment was marked so.
    Ended {
        message: String,
    },
    /// A fork's pull request: planned and built, nothing pushed or registered, and why.
    BuildOnly {
        report: BuildReport,
        reason: String,
    },
    DryRun(DryRun),
    /// Ctrl-C during the builds.
    Interrupted,
    Deployed(Box<Deployed>),
}

/// What a deploy did (possibly nothing: every location up to date).
#[derive(Serialize)]
pub struct Deployed {
    pub schema_version: u32,
    pub head: String,
    #[serde(flatten)]
    pub report: BuildReport,
    pub statedir: Option<String>,
    pub registration: RegisterReport,
    /// Python executables built and uploaded (`--build-strategy python-executable`), under
    /// the key `serverless deploy-python-executable --json` uses.
    #[serde(rename = "locations", skip_serializing_if = "Option::is_none")]
    pub python: Option<Vec<Built>>,
    #[serde(skip)]
    pub plan: Plan,
    /// The branch deployment's pull request, when the deploy went to one.
    #[serde(skip)]
    pub pull_request: Option<String>,
}

impl Deployed {
    pub fn succeeded(&self) -> bool {
        self.report.success() && self.registration.succeeded()
    }
}

/// Runs `deploy` against the deployment `settings` name (or the local store).
pub async fn deploy(
    req: DeployRequest,
    mut settings: Settings,
    env: Env<'_>,
    reporter: &Reporter,
) -> Result<Outcome, Error> {
    let repo = plan::open_repo(&req.plan)?;
    let ci = CiContext::detect(env);

    // 1. Where to: the named deployment, the pull request's branch deployment, or nowhere.
    let route = route::route(
        &RouteRequest {
            mode: req.branch,
            purpose: Purpose::Deploy {
                create: !req.dry_run,
            },
            condition: None,
            ci: &ci,
            env,
            workdir: &repo.workdir,
        },
        &mut settings,
    )
    .await?;
    let (pull_request, new_branch) = match route {
        Route::Deploy {
            pull_request,
            new_branch,
            ..
        } => (pull_request, new_branch),
        Route::Ended { message } => return Ok(Outcome::Ended { message }),
        Route::BuildOnly { reason } => {
            let mut options = req.build.clone();
            options.push = false;
            let prepared = Prepared::new(&repo, &req.plan, options, None, env)?;
            // A dry run touches no engine, here too (a fork's pull request in CI).
            if req.dry_run {
                return Ok(Outcome::DryRun(DryRun::docker(
                    &prepared.plan,
                    &prepared.targets,
                    format!("no deployment (build only: {reason})"),
                )));
            }
            return Ok(match prepared.build(reporter, env).await? {
                Some(report) => Outcome::BuildOnly { report, reason },
                None => Outcome::Interrupted,
            });
        }
    };

    // 2. What is deployed there, then the plan: nothing is changed yet.
    let existing = match new_branch {
        true => None,
        false => target::existing(&settings, &repo.workdir, false, "deploy")?,
    };
    // The local store this deploy creates (or a new branch deployment) holds nothing yet.
    let against = match &existing {
        Some(d) => Against::Deployment(d.as_ref()),
        None => Against::Empty,
    };
    let deployed = select::deployed(&against, &req.plan).await?;
    let prepared = Prepared::new(&repo, &req.plan, req.build.clone(), deployed.as_ref(), env)?;
    let destination = match (&existing, &pull_request) {
        (Some(d), _) => d.describe(),
        (None, Some(pr)) => format!("a new branch deployment for pull request {pr}"),
        (None, None) => format!(
            "local store {} (created on first deploy)",
            repo.workdir.join(target::LOCAL_STORE_DIR).display()
        ),
    };
    let git = repo_facts::discover(&repo.repo, &prepared.plan.head.commit, env);
    let options = RegisterOptions {
        force: req.force,
        git,
        wait: WaitPolicy::ci_deploy(&settings),
    };
    if let Some(python_version) = &req.python {
        return python_executables(
            &prepared.plan,
            python_version.as_deref(),
            &settings,
            &options,
            destination,
            req.dry_run,
            pull_request,
            env,
            reporter,
        )
        .await;
    }
    if req.dry_run {
        return Ok(Outcome::DryRun(DryRun::docker(
            &prepared.plan,
            &prepared.targets,
            destination,
        )));
    }

    // 3. Build and push.
    let Some(report) = prepared.build(reporter, env).await? else {
        return Ok(Outcome::Interrupted);
    };

    // 4. Record the results where a separate deploy job reads them.
    let statedir =
        prepared.save_state(req.statedir.as_deref(), &settings, &report, reporter, env)?;

    // 5. Register every built, reused and redeployed location at once (a location whose build
    //    failed is reported, never registered), and wait for them to load.
    if !report.success() {
        reporter.message("locations that failed to build are not registered");
    }
    let images: BTreeMap<String, String> = report
        .results
        .iter()
        .filter_map(|r| Some((r.location.clone(), r.image.clone()?)))
        .collect();
    let store;
    let target: &dyn Deployment = match &existing {
        Some(d) if settings.has_remote() => d.as_ref(),
        _ => {
            let access = registry_access(&prepared.plan, &images, env).await?;
            let deployment = settings.deployment.as_deref().unwrap_or(DEFAULT_DEPLOYMENT);
            store = LocalStore::create(&repo.workdir, deployment, Some(access))?;
            &store
        }
    };
    let say = |line: &str| reporter.message(line);
    let registration = register::register(&prepared.plan, &images, target, &options, &say).await?;

    if prepared.plan.head.dirty && !registration.registered().is_empty() {
        reporter.message(&format!(
            "deployed uncommitted changes: the deployment records commit {}, so reverting them \
             is not a change; run `dagster-deploy deploy --location NAME` to deploy the \
             committed code again",
            short(&prepared.plan.head.commit)
        ));
    }
    Ok(Outcome::Deployed(Box::new(Deployed {
        schema_version: 1,
        head: prepared.plan.head.commit.clone(),
        report,
        statedir,
        registration,
        python: None,
        plan: prepared.plan,
        pull_request,
    })))
}

/// `--build-strategy python-executable`: the plan's locations to build or redeploy as
/// Python executables, registered at once (only after every upload succeeded) with the head
/// commit, then waited for. Nothing to deploy is a deploy too (the CI feedback says so).
#[allow(clippy::too_many_arguments)]
async fn python_executables(
    plan: &Plan,
    python_version: Option<&str>,
    settings: &Settings,
    options: &RegisterOptions,
    destination: String,
    dry_run: bool,
    pull_request: Option<String>,
    env: Env<'_>,
    reporter: &Reporter,
) -> Result<Outcome, Error> {
    let picked: Vec<_> = plan
        .locations
        .iter()
        .filter(|l| l.action != Action::Skip)
        .collect();
    let say = |line: &str| reporter.message(line);
    let targets: Vec<PexTarget> = picked
        .iter()
        .map(|l| {
            PexTarget::of(
                &l.name,
                &plan.repository.join(&l.build_directory),
                &l.entry,
                &say,
            )
        })
        .collect();
    if dry_run {
        let folders: Vec<(String, String)> = targets
            .iter()
            .map(|t| (t.name.clone(), t.dir.display().to_string()))
            .collect();
        return Ok(Outcome::DryRun(DryRun::python(plan, &folders, destination)));
    }
    let nothing = || Deployed {
        schema_version: 1,
        head: plan.head.commit.clone(),
        report: BuildReport::new(Vec::new()),
        statedir: None,
        registration: RegisterReport {
            target: destination.clone(),
            deployment: settings
                .deployment
                .clone()
                .unwrap_or_else(|| DEFAULT_DEPLOYMENT.into()),
            commit: plan.head.commit.clone(),
            locations: Vec::new(),
        },
        python: Some(Vec::new()),
        plan: plan.clone(),
        pull_request: pull_request.clone(),
    };
    if targets.is_empty() {
        reporter.message("Nothing to deploy: no location changed.");
        return Ok(Outcome::Deployed(Box::new(nothing())));
    }
    if !settings.has_remote() {
        return Err(Error::Usage {
            message: "--build-strategy python-executable needs a deployment API to upload to"
                .into(),
            hint: "set DAGSTER_CLOUD_URL (or --url) and DAGSTER_CLOUD_API_TOKEN: Dagster+ or \
                   `dagster-deploy serve`"
                .into(),
        });
    }
    let remote = Remote::from_settings(settings, "deploy")?;
    // A location never moves backwards here either (see `register`), unless --force.
    let current = remote.current_documents().await?;
    let previous = |name: &str| current.get(name).and_then(document::commit_hash);
    let mut repo = None;
    let mut skipped = Vec::new();
    let mut kept = Vec::new();
    for (l, t) in picked.into_iter().zip(targets) {
        let commit = &plan.head.commit;
        match register::backwards(&mut repo, plan, previous(&l.name), commit, options.force)? {
            Some(why) => {
                reporter.message(&format!("{}: {why}", l.name));
                skipped.push(LocationReport {
                    location: l.name.clone(),
                    action: l.action,
                    status: RegisterStatus::SkippedBackwards,
                    image: None,
                    previous_commit: previous(&l.name).map(str::to_string),
                    message: why,
                    load_error: None,
                });
            }
            None => kept.push((l, t)),
        }
    }
    // What was registered in the remote deployment, after the skipped locations.
    let registered = |locations: Vec<LocationReport>, built: Vec<Built>| {
        let mut deployed = nothing();
        deployed.registration.target = remote.describe();
        deployed.registration.deployment = remote.name().to_string();
        deployed.registration.locations = skipped.iter().cloned().chain(locations).collect();
        deployed.python = Some(built);
        Ok(Outcome::Deployed(Box::new(deployed)))
    };
    if kept.is_empty() {
        return registered(Vec::new(), Vec::new());
    }
    let (picked, targets): (Vec<_>, Vec<_>) = kept.into_iter().unzip();
    let ws = config::load(&plan.repository.join(&plan.config), env)?;
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let opts = PexOptions {
        python_version: python::python_version(python_version, Some(&ws), &names),
        deps_cache_from: None,
        deps_cache_to: None,
        build_method: BuildMethod::Local,
    };
    let flags = |b: &Built| DocumentFlags {
        git: GitMetadata {
            commit_hash: Some(plan.head.commit.clone()),
            ..options.git.clone()
        },
        pex_tag: Some(b.pex_tag.clone()),
        python_version: Some(b.python_version.clone()),
        ..Default::default()
    };
    let (built, results) = python::deploy(
        &remote,
        &targets,
        &opts,
        &flags,
        false,
        &options.wait,
        reporter,
    )
    .await?;
    let locations: Vec<LocationReport> = picked
        .iter()
        .zip(&built)
        .map(|(l, b)| {
            let result = results.iter().find(|(n, _)| n == &l.name).map(|(_, r)| r);
            let (status, message, load_error) = match result {
                Some(LoadResult::Failed(f)) => (
                    RegisterStatus::LoadFailed,
                    format!("registered, but failed to load: {}", f.message),
                    Some(f.clone()),
                ),
                _ => (
                    RegisterStatus::Loaded,
                    "registered and loaded".to_string(),
                    None,
                ),
            };
            LocationReport {
                location: l.name.clone(),
                action: l.action,
                status,
                image: Some(b.pex_tag.clone()),
                previous_commit: previous(&l.name).map(str::to_string),
                message,
                load_error,
            }
        })
        .collect();
    registered(locations, built)
}

/// How the local store checks that images exist: with the credentials the build pushed
/// with, and plain HTTP where the engine uses it (its insecure registries; none when no
/// engine answers, as when nothing was built).
async fn registry_access(
    plan: &Plan,
    images: &BTreeMap<String, String>,
    env: Env<'_>,
) -> Result<RegistryAccess, Error> {
    let keychain = Keychain::from_env(env).map_err(crate::build::RunError::from)?;
    let deployed = plan
        .locations
        .iter()
        .filter_map(|l| l.entry.get("image").and_then(|v| v.as_str()));
    let registries: BTreeSet<String> = images
        .values()
        .map(String::as_str)
        .chain(deployed)
        .filter_map(|image| ImageRef::parse(image).ok())
        .map(|r| r.registry)
        .collect();
    let mut access = RegistryAccess::default();
    for registry in registries {
        if let Some(credentials) = keychain
            .get(&registry)
            .map_err(crate::build::RunError::from)?
        {
            access.credentials.push(credentials);
        }
    }
    if let Ok(engine) = DockerEngine::connect().await {
        access.insecure_registries = engine.insecure_registries().await;
    }
    Ok(access)
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}
