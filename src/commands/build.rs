//! `build`: plan, then build and push every location to build; results on stdout (a table, or
//! JSON with `--json`) and in the CI build-session state when a state folder is given.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::SettingsFlags;
use crate::build::EXIT_INTERRUPTED;
use crate::build::{self, BuildOptions, BuildReport, BuildTarget, DockerfileSource, Failure};
use crate::cli::{BuildArgs, BuildFlags, PlanSelection};
use crate::deploy::prepare::Prepared;
use crate::error::{EXIT_FAILURE, Error};
use crate::output;
use crate::plan::{self, Plan, PlanRequest};

pub async fn run(args: &BuildArgs) -> Result<u8, Error> {
    let env = &super::process_env;
    let req = request(&args.plan)?;
    let repo = plan::open_repo(&req)?;
    let prepared = Prepared::new(&repo, &req, options(&args.build)?, None, env)?;
    if args.print_dockerfile {
        return print_dockerfiles(&prepared.targets);
    }
    let reporter = output::reporter(&prepared.ci);
    let Some(report) = prepared.build(&reporter, env).await? else {
        return Ok(EXIT_INTERRUPTED);
    };
    let settings = super::resolve_settings(&SettingsFlags::default())?;
    let statedir = prepared.save_state(
        args.build.statedir.as_deref(),
        &settings,
        &report,
        &reporter,
        env,
    )?;
    if args.json {
        output::result(&output::json(&BuildJson::new(
            &prepared.plan,
            &report,
            statedir,
        ))?);
    } else {
        output::result(&report.table());
    }
    Ok(if report.success() { 0 } else { EXIT_FAILURE })
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

/// The build options the flags describe.
pub(super) fn options(flags: &BuildFlags) -> Result<BuildOptions, Error> {
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
    output::result(&out);
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
