//! `deploy`: plan → build → record results → (registration, with the deployment API issue).
//! `--dry-run` runs the same code up to the first side effect and prints what would happen.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::build::Prepared;
use crate::build::{BuildTarget, DockerfileSource, EXIT_INTERRUPTED, Failure, target};
use crate::cli::DeployArgs;
use crate::error::{EXIT_FAILURE, Error};
use crate::output;
use crate::plan::{Action, Plan};
use crate::progress::{Mode, Reporter};

pub fn run(args: &DeployArgs) -> Result<u8, Error> {
    // 1. Plan (and resolve what building means): no side effect yet.
    let prepared = Prepared::new(&args.plan, &args.build)?;
    if args.dry_run {
        let dry = DryRun::new(&prepared.plan, &prepared.targets);
        if args.json {
            print!("{}", output::json(&dry)?);
        } else {
            print!("{}", dry.text());
        }
        return Ok(if dry.failures.is_empty() {
            0
        } else {
            EXIT_FAILURE
        });
    }

    // 2. Build and push.
    let reporter = Reporter::new(Mode::detect(&prepared.ci));
    let Some(report) = prepared.build(&reporter)? else {
        return Ok(EXIT_INTERRUPTED);
    };

    // 3. Record the results where a separate deploy job reads them.
    let statedir = prepared.save_state(&args.build, &report, &reporter)?;

    // 4. Registration goes here (deployment API issue): send one `deployLocations` with every
    //    built or reused location (image from `report`) and every `redeploy` location, then
    //    wait for them to load. Until then `deploy` stops after building.
    if !report.success() {
        reporter.message("not registering anything: some locations failed to build");
    }

    if args.json {
        print!(
            "{}",
            output::json(&DeployJson {
                schema_version: 1,
                head: &prepared.plan.head.commit,
                report: &report,
                statedir,
                registered: false,
            })?
        );
    } else {
        print!("{}", report.table());
    }
    Ok(if report.success() { 0 } else { EXIT_FAILURE })
}

#[derive(Serialize)]
struct DeployJson<'a> {
    schema_version: u32,
    head: &'a str,
    #[serde(flatten)]
    report: &'a crate::build::BuildReport,
    statedir: Option<String>,
    /// Whether the locations were registered (not yet implemented).
    registered: bool,
}

/// What `deploy` would do.
#[derive(Serialize)]
struct DryRun {
    dry_run: bool,
    head: String,
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
    fn new(plan: &Plan, targets: &[Result<BuildTarget, Failure>]) -> DryRun {
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
