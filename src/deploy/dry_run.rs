//! What `deploy --dry-run` would do: the same route and plan as `deploy`, stopped before the
//! first side effect, with where it would register.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::build::{BuildTarget, DockerfileSource, Failure, target};
use crate::plan::{Action, Plan};

#[derive(Debug, Serialize)]
pub struct DryRun {
    pub dry_run: bool,
    pub head: String,
    /// Where the locations would be registered.
    pub target: String,
    /// `docker` or `python-executable`.
    pub strategy: &'static str,
    pub builds: Vec<PlannedBuild>,
    pub redeploy: Vec<String>,
    pub skip: Vec<String>,
    pub failures: Vec<PlannedFailure>,
}

#[derive(Debug, Serialize)]
pub struct PlannedBuild {
    pub location: String,
    /// Why the plan builds it.
    pub reason: String,
    /// Checked first: when the registry has it, nothing is built or pushed (Docker); the
    /// project folder (Python executables).
    pub image: String,
    pub push_tags: Vec<String>,
    pub cache_from: Option<String>,
    pub directory: String,
    /// A path, or `generated`.
    pub dockerfile: String,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub platform: Option<String>,
}

/// The plan's reason for a location.
fn reason(plan: &Plan, location: &str) -> String {
    plan.location(location)
        .map(|l| l.reason.message.clone())
        .unwrap_or_default()
}

#[derive(Debug, Serialize)]
pub struct PlannedFailure {
    pub location: String,
    pub message: String,
    pub hint: String,
}

impl DryRun {
    /// Docker builds: each target as it would be built and pushed.
    pub fn docker(
        plan: &Plan,
        targets: &[Result<BuildTarget, Failure>],
        destination: String,
    ) -> DryRun {
        let mut builds = Vec::new();
        let mut failures = Vec::new();
        for target in targets {
            match target {
                Ok(t) => builds.push(PlannedBuild {
                    location: t.location.clone(),
                    reason: reason(plan, &t.location),
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
        DryRun::new(plan, "docker", builds, failures, destination)
    }

    /// Python executables: each location's project folder.
    pub fn python(plan: &Plan, folders: &[(String, String)], destination: String) -> DryRun {
        let builds = folders
            .iter()
            .map(|(location, dir)| PlannedBuild {
                location: location.clone(),
                reason: reason(plan, location),
                image: String::new(),
                push_tags: Vec::new(),
                cache_from: None,
                directory: dir.clone(),
                dockerfile: String::new(),
                build_args: BTreeMap::new(),
                target: None,
                platform: None,
            })
            .collect();
        DryRun::new(plan, "python-executable", builds, Vec::new(), destination)
    }

    fn new(
        plan: &Plan,
        strategy: &'static str,
        builds: Vec<PlannedBuild>,
        failures: Vec<PlannedFailure>,
        target: String,
    ) -> DryRun {
        let names = |action| {
            plan.locations
                .iter()
                .filter(|l| l.action == action)
                .map(|l| l.name.clone())
                .collect()
        };
        // Python executables rebuild redeployed locations too (there is no image to keep).
        let built = |a| a == Action::Build || (strategy != "docker" && a == Action::Redeploy);
        DryRun {
            dry_run: true,
            head: plan.head.commit.clone(),
            target,
            strategy,
            builds,
            redeploy: if built(Action::Redeploy) {
                Vec::new()
            } else {
                names(Action::Redeploy)
            },
            skip: names(Action::Skip),
            failures,
        }
    }

    /// For people.
    pub fn text(&self) -> String {
        let mut out = String::from("dry run: nothing is built, pushed or registered\n");
        let _ = writeln!(out, "would register in {}", self.target);
        for b in &self.builds {
            if self.strategy != "docker" {
                let _ = writeln!(
                    out,
                    "\nbuild {} as a Python executable\n  project     {}\n  why         {}",
                    b.location, b.directory, b.reason
                );
                continue;
            }
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
            let _ = writeln!(out, "  why         {}", b.reason);
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
