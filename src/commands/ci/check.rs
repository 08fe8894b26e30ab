//! `ci check`: dagster_cloud.yaml as `dagster-deploy check` validates it, and the token
//! against the organisation (`organizationSettings`); each check is an error, a warning or
//! skipped.

use crate::api::{SettingsFlags, ops};
use crate::cli::ci::{CheckArgs, CheckLevel};
use crate::cli::{self, ConfigArgs};
use crate::error::{EXIT_FAILURE, Error};
use crate::output;

pub async fn run(args: &CheckArgs) -> Result<u8, Error> {
    let mut passed = 0;
    let mut warnings = 0;
    let mut failed = 0;
    let mut verdict = |level: CheckLevel, what: &str, result: Result<String, Error>| match result {
        Ok(message) => {
            passed += 1;
            output::result_line(&format!("ok    [{what}] {message}"));
        }
        Err(e) => {
            // The full rendering: an invalid file lists every problem with its position.
            let line = format!("[{what}] {}", crate::output::error_text(&e).trim_end());
            if level == CheckLevel::Warn {
                warnings += 1;
                output::result_line(&format!("warn  {line}"));
            } else {
                failed += 1;
                output::result_line(&format!("FAIL  {line}"));
            }
        }
    };
    if args.dagster_cloud_yaml_check != CheckLevel::Skip {
        let path = args.project_dir.join(&args.dagster_cloud_yaml_path);
        let check = cli::CheckArgs {
            config: ConfigArgs {
                config: Some(path.clone()),
            },
            json: false,
        };
        let result = super::super::check::run(&check).map(|_| "checked".to_string());
        verdict(args.dagster_cloud_yaml_check, "dagster_cloud.yaml", result);
    }
    if args.dagster_cloud_connect_check != CheckLevel::Skip {
        let result = connect(args).await;
        verdict(args.dagster_cloud_connect_check, "connection", result);
    }
    output::result_line(&format!("Passed: {passed}"));
    if warnings > 0 {
        output::result_line(&format!("Warnings: {warnings}"));
    }
    if failed > 0 {
        output::result_line(&format!("Failed: {failed}"));
        return Ok(EXIT_FAILURE);
    }
    Ok(0)
}

async fn connect(args: &CheckArgs) -> Result<String, Error> {
    let settings = super::super::resolve_settings(&SettingsFlags {
        organization: args.organization.clone(),
        ..Default::default()
    })?;
    let what = "ci check";
    let url = settings.organization_url(what)?;
    let client = settings.organization_client(what)?;
    ops::organization_settings(&client).await?;
    Ok(format!("connected to {url}"))
}
