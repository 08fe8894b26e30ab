//! `build`: plan, then build and push every location to build; results on stdout (a table, or
//! JSON with `--json`) and in the CI build-session state when a state folder is given.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::{Settings, SettingsFlags};
use crate::build::{
    self, BuildOptions, BuildReport, BuildTarget, DockerfileSource, EXIT_INTERRUPTED, Failure,
    Outcome,
};
use crate::changes::Repo;
use crate::ci::context::CiContext;
use crate::ci::repo_facts;
use crate::ci::state::{self, SessionDefaults, StateDir};
use crate::cli::{BuildArgs, BuildFlags, PlanSelection};
use crate::error::{EXIT_FAILURE, Error};
use crate::output;
use crate::plan::{self, Deployed, Plan, PlanRequest};
use crate::progress::{Mode, Reporter};

pub fn run(args: &BuildArgs) -> Result<u8, Error> {
    let prepared = Prepared::new(&args.plan, &args.build)?;
    if args.print_dockerfile {
        return print_dockerfiles(&prepared.targets);
    }
    let reporter = Reporter::new(Mode::detect(&prepared.ci));
    let Some(report) = prepared.build(&reporter)? else {
        return Ok(EXIT_INTERRUPTED);
    };
    let settings = Settings::resolve(&SettingsFlags::default(), &super::process_env)?;
    let statedir = prepared.save_state(&args.build, &settings, &report, &reporter)?;
    if args.json {
        print!(
            "{}",
            output::json(&BuildJson::new(&prepared.plan, &report, statedir))?
        );
    } else {
        print!("{}", report.table());
    }
    Ok(if report.success() { 0 } else { EXIT_FAILURE })
}

/// The plan and what it means to build, decided before anything is touched.
pub(super) struct Prepared {
    pub ci: CiContext,
    pub plan: Plan,
    pub options: BuildOptions,
    pub targets: Vec<Result<BuildTarget, Failure>>,
}

impl Prepared {
    /// Plans against the common base (the git facts only).
    pub fn new(selection: &PlanSelection, flags: &BuildFlags) -> Result<Prepared, Error> {
        let req = request(selection)?;
        let repo = plan::open_repo(&req)?;
        Prepared::in_repo(&repo, &req, flags, None)
    }

    /// Plans in `repo`, against what is `deployed` when given (see [`plan::plan_with_bases`]).
    pub fn in_repo(
        repo: &Repo,
        req: &PlanRequest,
        flags: &BuildFlags,
        deployed: Option<&Deployed>,
    ) -> Result<Prepared, Error> {
        let ci = CiContext::detect(&super::process_env);
        let plan = plan::plan_in(repo, req, &ci, &super::process_env, deployed)?;
        let options = options(flags, &plan)?;
        let targets = build::resolve_all(&plan, &options);
        Ok(Prepared {
            ci,
            plan,
            options,
            targets,
        })
    }

    /// Builds every target; `None` after Ctrl-C.
    pub fn build(&self, reporter: &Reporter) -> Result<Option<BuildReport>, Error> {
        if self.targets.is_empty() {
            reporter.message("nothing to build: no location's build inputs changed");
            return Ok(Some(BuildReport::new(Vec::new())));
        }
        match build::execute(
            self.targets.clone(),
            &self.options,
            reporter,
            &super::process_env,
        )? {
            Outcome::Finished(report) => Ok(Some(report)),
            Outcome::Interrupted => {
                reporter.message(
                    "interrupted: builds and pushes in progress were stopped; no tag was \
                     half-pushed (a registry tag appears only once its image is complete)",
                );
                Ok(None)
            }
        }
    }

    /// Writes the results into the state folder, when one is given; returns it.
    /// New state files record the organisation and deployment `settings` name.
    pub fn save_state(
        &self,
        flags: &BuildFlags,
        settings: &Settings,
        report: &BuildReport,
        reporter: &Reporter,
    ) -> Result<Option<String>, Error> {
        let Some(dir) = StateDir::choose(flags.statedir.as_deref(), &super::process_env) else {
            return Ok(None);
        };
        let repo = Repo::discover(&self.plan.repository)?;
        let git = repo_facts::discover(&repo.repo, &self.plan.head.commit, &super::process_env);
        let defaults = SessionDefaults::from_settings(settings, git);
        let written = state::record_build(&dir, &self.plan, report, &defaults)
            .map_err(build::RunError::from)?;
        if !written.is_empty() {
            reporter.message(&format!(
                "results recorded in {} ({} location file{})",
                dir.path.display(),
                written.len(),
                if written.len() == 1 { "" } else { "s" }
            ));
        }
        Ok(Some(dir.path.display().to_string()))
    }
}

/// The plan request the selection flags describe.
pub(super) fn request(selection: &PlanSelection) -> Result<PlanRequest, Error> {
    Ok(PlanRequest {
        config: super::locate_config(&selection.config)?,
        base: selection.base.clone(),
        head: selection.head.clone(),
        include_dirty: selection.include_dirty,
        force: selection.locations.clone(),
        all: selection.all,
    })
}

fn options(flags: &BuildFlags, plan: &Plan) -> Result<BuildOptions, Error> {
    let mut build_args = BTreeMap::new();
    for arg in &flags.build_args {
        let Some((key, value)) = arg.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(Error::Usage {
                message: format!("--build-arg {arg:?}: expected KEY=VALUE"),
                hint: "e.g. --build-arg BASE_IMAGE=python:3.12-slim".into(),
            });
        };
        build_args.insert(key.trim().to_string(), value.to_string());
    }
    let mut secrets = Vec::new();
    for text in flags.secrets.iter().filter(|s| !s.trim().is_empty()) {
        let spec = build::secrets::SecretSpec::parse(text).map_err(|problem| Error::Usage {
            message: format!("--secret {text:?}: {problem}"),
            hint: "write id=ID,env=VAR or id=ID,src=FILE, e.g. --secret id=pypi,env=PYPI_TOKEN"
                .into(),
        })?;
        secrets.push(spec);
    }
    let max_context_size = parse_size(&flags.max_context_size).ok_or_else(|| Error::Usage {
        message: format!(
            "--max-context-size {:?}: not a size",
            flags.max_context_size
        ),
        hint: "write bytes, or a number with K, M, G or T (powers of 1024), e.g. 500M".into(),
    })?;
    Ok(BuildOptions {
        jobs: flags
            .jobs
            .map_or_else(build::target::default_jobs, usize::from),
        fail_fast: flags.fail_fast,
        tag_template: (!flags.no_human_tag).then(|| flags.tag_template.clone()),
        cache: !flags.no_cache_from,
        push: !flags.no_push,
        build_args,
        max_context_size: Some(max_context_size),
        network: flags.network.clone(),
        builder: flags.builder,
        secrets,
        source_url: build::source_url(&plan.repository, &super::process_env),
        ..BuildOptions::default()
    })
}

/// `1048576`, `500M`, `2G`, `1.5GiB`, `100mb` (units are powers of 1024).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: f64 = number.parse().ok()?;
    let power = match unit.trim().trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        _ => return None,
    };
    let bytes = number * 1024f64.powi(power);
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

fn print_dockerfiles(targets: &[Result<BuildTarget, Failure>]) -> Result<u8, Error> {
    let mut out = String::new();
    for target in targets {
        let target = target.as_ref().map_err(|f| Error::Failed {
            message: f.message.clone(),
            hint: f.hint.clone(),
        })?;
        let (source, text) = match &target.dockerfile {
            DockerfileSource::Generated(text) => ("generated".to_string(), text.clone()),
            DockerfileSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::Failed {
                    message: format!(
                        "location `{}`: cannot read its Dockerfile {}: {e}",
                        target.location,
                        path.display()
                    ),
                    hint: "fix `dockerfile` in dagster-deploy.toml, or add the file".into(),
                })?;
                (path.display().to_string(), text)
            }
        };
        out.push_str(&format!("# ---- {} ({source})\n{text}", target.location));
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(0)
}

/// `build --json`.
#[derive(Serialize)]
struct BuildJson<'a> {
    schema_version: u32,
    head: &'a str,
    #[serde(flatten)]
    report: &'a BuildReport,
    /// The state folder the results were recorded in.
    statedir: Option<String>,
}

impl<'a> BuildJson<'a> {
    fn new(plan: &'a Plan, report: &'a BuildReport, statedir: Option<String>) -> Self {
        BuildJson {
            schema_version: 1,
            head: &plan.head.commit,
            report,
            statedir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Some(1_048_576));
        assert_eq!(parse_size("500M"), Some(500 * 1024 * 1024));
        assert_eq!(parse_size("2GiB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("100mb"), Some(100 * 1024 * 1024));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5X"), None);
    }
}
