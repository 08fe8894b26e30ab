//! The binary: parse arguments, run, render any error once, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use dagster_deploy::{cli::Cli, commands, output};

fn main() -> ExitCode {
    let cli = Cli::parse();
    dagster_deploy::logging::init(&cli);
    let json = commands::wants_json(&cli);
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if json {
                print!("{}", output::error_json(&err));
            } else {
                eprint!("{}", output::error_text(&err));
            }
            // On GitHub, config problems also mark their lines in the pull request.
            let env = |name: &str| std::env::var(name).ok();
            if dagster_deploy::ci::github::active(&env) {
                eprint!(
                    "{}",
                    dagster_deploy::ci::github::annotations(&env, err.diagnostics())
                );
            }
            ExitCode::from(err.exit_code())
        }
    }
}
