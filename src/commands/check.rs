//! `check`: validate dagster_cloud.yaml and dagster-deploy.toml, every problem at once.

use serde::Serialize;

use crate::cli::CheckArgs;
use crate::config::{self, ConfigError};
use crate::error::Error;
use crate::output;

#[derive(Serialize)]
struct CheckResult<'a> {
    valid: bool,
    file: String,
    locations: Vec<&'a str>,
}

pub fn run(args: &CheckArgs) -> Result<u8, Error> {
    let file = super::locate_config(&args.config)?;
    let ws = config::load(&file, &super::process_env)?;
    let root = ws.root.clone();
    let diagnostics = config::check_directories(&ws, &|dir: &str| root.join(dir).is_dir());
    if !diagnostics.is_empty() {
        return Err(ConfigError::Invalid {
            file: ws.file.clone(),
            diagnostics,
        }
        .into());
    }
    let names: Vec<&str> = ws.locations.iter().map(|l| l.name.as_str()).collect();
    if args.json {
        print!(
            "{}",
            output::json(&CheckResult {
                valid: true,
                file: file.display().to_string(),
                locations: names
            })
        );
    } else {
        let n = names.len();
        println!(
            "{} is valid: {n} location{} ({})",
            file.display(),
            if n == 1 { "" } else { "s" },
            names.join(", ")
        );
    }
    Ok(0)
}
