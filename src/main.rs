//! The binary: parse arguments, run, render any error once, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use dagster_deploy::{cli::Cli, commands, output};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = commands::wants_json(&cli);
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if json {
                print!("{}", output::error_json(&err));
            } else {
                eprint!("{}", output::error_text(&err));
            }
            ExitCode::from(err.exit_code())
        }
    }
}
