//! `deploy`: plan → build and push → record results → register in one `deployLocations` →
//! wait for load → per-location summary. `--dry-run` runs the same code up to the first side
//! effect and prints what would happen.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::build::Prepared;
use super::deploy_route::{self, Route};
use super::deployed;
use crate::api::{self, RegisterOptions, RegisterReport, RegisterStatus, Target};
use crate::build::{
    BuildReport, BuildTarget, DockerEngine, DockerfileSource, EXIT_INTERRUPTED, Failure, target,
};
use crate::changes::Repo;
use crate::ci::context::CiContext;
use crate::ci::feedback::{self, DeploySummary};
use crate::ci::{github, repo_facts};
use crate::cli::DeployArgs;
use crate::error::{EXIT_FAILURE, Error};
use crate::output;
use crate::plan::{self, Action, Plan};
use crate::progress::{Mode, Reporter};
use crate::registry::{ImageRef, Keychain};
use crate::server::RegistryAccess;

pub fn run(args: &DeployArgs) -> Result<u8, Error> {
    let mut settings = super::compat::settings(&args.connection, Some(&args.wait))?;
    let req = super::build::request(&args.plan)?;
    let repo = plan::open_repo(&req)?;
    let runtime = super::runtime()?;
    let env = &super::process_env;
    let ci = CiContext::detect(env);

    // 1. Where to: the named deployment, the pull request's branch deployment, or nowhere.
    let route = deploy_route::decide(
        args.branch_deployment,
        &mut settings,
        &ci,
        &repo.workdir,
        &runtime,
        !args.dry_run,
    )?;
    let (pull_request, new_branch) = match route {
        Route::Deploy {
            pull_request,
            new_branch,
        } => (pull_request, new_branch),
        Route::Ended { message } => {
            eprintln!("{message}");
            return Ok(0);
        }
        Route::BuildOnly { reason } => return build_only(args, &repo, &req, &reason),
    };

    // 2. What is deployed there, then the plan: nothing is changed yet.
    let read = match new_branch {
        true => None,
        false => deployed::existing_target(&settings, &repo.workdir)?,
    };
    let deployed = match &read {
        Some(_) => deployed::deployed(&runtime, read.as_ref(), &req)?,
        // The local store this deploy creates (or a new branch deployment) holds nothing yet:
        // every location is new.
        None if req.base.is_none() => Some(Default::default()),
        None => None,
    };
    let prepared = Prepared::in_repo(&repo, &req, &args.build, deployed.as_ref())?;
    if args.build_strategy == crate::cli::DeployStrategy::PythonExecutable {
        return super::serverless::deploy_plan(args, &settings, &prepared.plan, &runtime);
    }
    if args.dry_run {
        let destination = match (&read, &pull_request) {
            (None, Some(pr)) => Some(format!("a new branch deployment for pull request {pr}")),
            _ => None,
        };
        return dry_run(args, &prepared, read.as_ref(), destination, &repo);
    }

    // 3. Build and push.
    let reporter = Reporter::new(Mode::detect(&prepared.ci));
    let Some(report) = prepared.build(&reporter)? else {
        return Ok(EXIT_INTERRUPTED);
    };

    // 4. Record the results where a separate deploy job reads them.
    let statedir = prepared.save_state(&args.build, &settings, &report, &reporter)?;

    // 5. Register every built, reused and redeployed location at once (a location whose build
    //    failed is reported, never registered), and wait for them to load.
    if !report.success() {
        reporter.message("locations that failed to build are not registered");
    }
    let images = images_of(&report);
    let access = runtime.block_on(registry_access(&prepared.plan, &images))?;
    let target = deployed::registration_target(read, &settings, &repo.workdir, access)?;
    let options = RegisterOptions {
        force: args.force,
        git: repo_facts::discover(&repo.repo, &prepared.plan.head.commit, env),
    };
    let registration = runtime.block_on(api::register(
        &prepared.plan,
        &images,
        &target,
        &options,
        &|line: &str| reporter.message(line),
    ))?;

    if prepared.plan.head.dirty && !registration.registered().is_empty() {
        reporter.message(&format!(
            "deployed uncommitted changes: the deployment records commit {}, so reverting them \
             is not a change; run `dagster-deploy deploy --location NAME` to deploy the \
             committed code again",
            short(&prepared.plan.head.commit)
        ));
    }

    // 6. Tell people: stdout, then the CI's summary, outputs, comment or note.
    let result = DeployJson {
        schema_version: 1,
        head: &prepared.plan.head.commit,
        report: &report,
        statedir,
        registration: &registration,
    };
    if args.json {
        print!("{}", output::json(&result)?);
    } else {
        print!("{}{}", report.table(), registration_table(&registration));
    }
    let summary = DeploySummary {
        deployment: &registration.deployment,
        commit: &prepared.plan.head.commit,
        build: &report,
        registration: &registration,
        pull_request,
    };
    let dotenv = args
        .dotenv
        .as_deref()
        .map(|p| p.to_string_lossy().into_owned());
    let mut warnings = runtime.block_on(feedback::publish(env, &summary, dotenv.as_deref()));
    if let Err(e) = github::set_outputs(
        env,
        &[
            ("deployment", registration.deployment.clone()),
            ("plan", compact(&prepared.plan)),
            ("results", compact(&result)),
        ],
    ) {
        warnings.push(e);
    }
    for warning in warnings {
        reporter.message(&format!("warning: {warning}"));
    }
    Ok(if report.success() && registration.succeeded() {
        0
    } else {
        EXIT_FAILURE
    })
}

/// A fork's pull request: the plan and the builds, nothing pushed or registered, and why.
fn build_only(
    args: &DeployArgs,
    repo: &Repo,
    req: &plan::PlanRequest,
    reason: &str,
) -> Result<u8, Error> {
    let mut flags = args.build.clone();
    flags.no_push = true;
    let prepared = Prepared::in_repo(repo, req, &flags, None)?;
    let reporter = Reporter::new(Mode::detect(&prepared.ci));
    let Some(report) = prepared.build(&reporter)? else {
        return Ok(EXIT_INTERRUPTED);
    };
    if args.json {
        print!("{}", output::json(&report)?);
    } else {
        print!("{}", report.table());
    }
    let env = &super::process_env;
    reporter.message(&format!("warning: {reason}"));
    if let Err(e) = github::append_summary(env, &format!("> **dagster-deploy:** {reason}.\n")) {
        reporter.message(&format!("warning: {e}"));
    }
    Ok(if report.success() { 0 } else { EXIT_FAILURE })
}

/// One-line JSON for a step output.
fn compact<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The image to register for every location that has one after the build.
fn images_of(report: &BuildReport) -> BTreeMap<String, String> {
    report
        .results
        .iter()
        .filter_map(|r| Some((r.location.clone(), r.image.clone()?)))
        .collect()
}

/// How the local store checks that images exist: with the credentials the build pushed
/// with, and plain HTTP where the engine uses it (its insecure registries; none when no
/// engine answers, as when nothing was built).
async fn registry_access(
    plan: &Plan,
    images: &BTreeMap<String, String>,
) -> Result<RegistryAccess, Error> {
    let keychain = Keychain::from_env(&super::process_env).map_err(crate::build::RunError::from)?;
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

fn dry_run(
    args: &DeployArgs,
    prepared: &Prepared,
    read: Option<&Target>,
    destination: Option<String>,
    repo: &Repo,
) -> Result<u8, Error> {
    let destination = match (read, destination) {
        (_, Some(d)) => d,
        (Some(t), None) => t.describe(),
        (None, None) => format!(
            "local store {} (created on first deploy)",
            repo.workdir.join(api::register::LOCAL_STORE_DIR).display()
        ),
    };
    let dry = DryRun::new(&prepared.plan, &prepared.targets, destination);
    if args.json {
        print!("{}", output::json(&dry)?);
    } else {
        print!("{}", dry.text());
    }
    Ok(if dry.failures.is_empty() {
        0
    } else {
        EXIT_FAILURE
    })
}

/// The registration summary for people: one row per location, load errors in full.
fn registration_table(r: &RegisterReport) -> String {
    let mut out = String::new();
    if r.locations.is_empty() {
        let _ = writeln!(out, "\nnothing to register: every location is up to date");
        return out;
    }
    let _ = writeln!(
        out,
        "\nregistration in {} at commit {}:",
        r.target,
        short(&r.commit)
    );
    let width = r
        .locations
        .iter()
        .map(|l| l.location.len())
        .max()
        .unwrap_or(0);
    for l in &r.locations {
        let status = match l.status {
            RegisterStatus::Loaded => "loaded",
            RegisterStatus::LoadFailed => "LOAD FAILED",
            RegisterStatus::SkippedBackwards => "skipped",
            RegisterStatus::NotRegistered => "not registered",
        };
        let _ = writeln!(
            out,
            "  {:width$}  {:8}  {:14}  {}",
            l.location,
            l.action.as_str(),
            status,
            l.image.as_deref().unwrap_or("-"),
        );
        if !matches!(l.status, RegisterStatus::Loaded) {
            let _ = writeln!(out, "  {:width$}  {}", "", l.message);
        }
        if let Some(error) = &l.load_error {
            for line in error.render().lines() {
                let _ = writeln!(out, "  {:width$}    {line}", "");
            }
        }
    }
    out
}

#[derive(Serialize)]
struct DeployJson<'a> {
    schema_version: u32,
    head: &'a str,
    #[serde(flatten)]
    report: &'a crate::build::BuildReport,
    statedir: Option<String>,
    registration: &'a RegisterReport,
}

/// What `deploy` would do.
#[derive(Serialize)]
struct DryRun {
    dry_run: bool,
    head: String,
    /// Where the locations would be registered.
    target: String,
    builds: Vec<PlannedBuild>,
    redeploy: Vec<String>,
    skip: Vec<String>,
    failures: Vec<PlannedFailure>,
}

#[derive(Serialize)]
struct PlannedBuild {
    location: String,
    /// Checked first: when the registry has it, nothing is built or pushed.
    image: String,
    push_tags: Vec<String>,
    cache_from: Option<String>,
    directory: String,
    /// A path, or `generated`.
    dockerfile: String,
    build_args: BTreeMap<String, String>,
    target: Option<String>,
    platform: Option<String>,
}

#[derive(Serialize)]
struct PlannedFailure {
    location: String,
    message: String,
    hint: String,
}

impl DryRun {
    fn new(plan: &Plan, targets: &[Result<BuildTarget, Failure>], target: String) -> DryRun {
        let names = |action| {
            plan.locations
                .iter()
                .filter(|l| l.action == action)
                .map(|l| l.name.clone())
                .collect()
        };
        let mut builds = Vec::new();
        let mut failures = Vec::new();
        for target in targets {
            match target {
                Ok(t) => builds.push(PlannedBuild {
                    location: t.location.clone(),
                    image: t.image.to_string(),
                    push_tags: std::iter::once(&t.image)
                        .chain(&t.extra_tags)
                        .chain(&t.cache_image)
                        .map(ToString::to_string)
                        .collect(),
                    cache_from: t.cache_image.as_ref().map(ToString::to_string),
                    directory: target::display_path(plan, &t.context.directory),
                    dockerfile: match &t.dockerfile {
                        DockerfileSource::File(path) => target::display_path(plan, path),
                        DockerfileSource::Generated(_) => "generated".into(),
                    },
                    build_args: t.request.build_args.clone(),
                    target: t.request.target.clone(),
                    platform: t.request.platform.clone(),
                }),
                Err(f) => failures.push(PlannedFailure {
                    location: f.location.clone(),
                    message: f.message.clone(),
                    hint: f.hint.clone(),
                }),
            }
        }
        DryRun {
            dry_run: true,
            head: plan.head.commit.clone(),
            target,
            builds,
            redeploy: names(Action::Redeploy),
            skip: names(Action::Skip),
            failures,
        }
    }

    fn text(&self) -> String {
        let mut out = String::from("dry run: nothing is built, pushed or registered\n");
        for b in &self.builds {
            let _ = writeln!(out, "\nbuild {}", b.location);
            let _ = writeln!(
                out,
                "  image       {} (reused if the registry has it)",
                b.image
            );
            let _ = writeln!(out, "  push        {}", b.push_tags.join(", "));
            if let Some(cache) = &b.cache_from {
                let _ = writeln!(out, "  cache from  {cache}");
            }
            let _ = writeln!(out, "  context     {}", b.directory);
            let _ = writeln!(out, "  dockerfile  {}", b.dockerfile);
            if let Some(t) = &b.target {
                let _ = writeln!(out, "  target      {t}");
            }
            if let Some(p) = &b.platform {
                let _ = writeln!(out, "  platform    {p}");
            }
            for (k, v) in &b.build_args {
                let _ = writeln!(out, "  build arg   {k}={v}");
            }
        }
        for f in &self.failures {
            let _ = writeln!(
                out,
                "\ncannot build {}: {}\n  hint: {}",
                f.location, f.message, f.hint
            );
        }
        let _ = writeln!(out);
        if !self.redeploy.is_empty() {
            let _ = writeln!(out, "redeploy (no new image): {}", self.redeploy.join(", "));
        }
        if !self.skip.is_empty() {
            let _ = writeln!(out, "unchanged: {}", self.skip.join(", "));
        }
        let _ = writeln!(
            out,
            "{} to build, {} to redeploy, {} unchanged",
            self.builds.len() + self.failures.len(),
            self.redeploy.len(),
            self.skip.len()
        );
        out
    }
}
