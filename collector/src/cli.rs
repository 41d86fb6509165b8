//! `hb-collector [--config FILE]` and `hb-collector validate --config FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hb_pipeline::{Config, Transport};

/// Consumes samples from the bus and writes them to the configured sinks.
#[derive(Debug, Parser)]
#[command(name = "hb-collector", version)]
pub struct Args {
    /// The pipeline configuration.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "pipeline.yaml",
        global = true
    )]
    pub config: PathBuf,
    /// What to do; without one, run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration without starting anything: exit 0, or 2 with every error.
    Validate,
}

/// Runs the command; messages go to stderr (errors) and stdout (results).
pub fn run(args: &Args) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("hb-collector: {e}");
            }
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Validate) = args.command {
        let sources = config.sources.len();
        let sinks = config.sinks.len();
        println!(
            "{}: valid ({sources} sources, {sinks} sinks, transport {})",
            config.path.display(),
            config.transport
        );
        return ExitCode::SUCCESS;
    }
    match config.transport {
        Transport::Memory => {
            eprintln!(
                "hb-collector: {}: transport memory:// runs the pipeline inside hb-polling; \
                 hb-collector needs a bus transport, and this build has none (available: memory://)",
                config.path.display()
            );
            ExitCode::from(2)
        }
    }
}
