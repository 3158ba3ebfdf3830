//! The `stratus` binary: parses the command line, sets up logging, and runs the chosen shape.
//! Everything it runs lives in the library crates; this file only wires configuration to them.

mod cli;
mod cmd_control_plane;
mod cmd_edge;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    let runtime = match stratus_edge::runtime::build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stratus: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Dev(args) => cli::run_dev(args).await,
            cli::Command::Bench(args) => cli::run_bench(args).await,
            cli::Command::ControlPlane(args) => cmd_control_plane::run(args).await,
            cli::Command::Edge(args) => cmd_edge::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stratus: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}
