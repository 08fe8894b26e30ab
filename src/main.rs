use clap::Parser;

fn main() {
    let _cli = dagster_deploy::cli::Cli::parse();
}
