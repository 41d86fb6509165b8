//! `hb-collector`: the collector.

use std::process::ExitCode;

use clap::Parser;
use hb_collector::cli::{self, Args};

fn main() -> ExitCode {
    cli::run(&Args::parse())
}
