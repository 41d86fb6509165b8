//! `hb-polling`: the polling agent.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use hb_agent::app::{self, Args};
use tracing_subscriber::EnvFilter;

/// mimalloc: a collector allocates and frees a few strings per sample; measured ~15 % faster
/// than the system allocator on the pipeline benchmark (`cargo bench -p hb-pipeline`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    // --list and --once print results; the run loop reports what it does.
    let default_level = if args.list || args.once {
        "warn"
    } else {
        "info"
    };
    let filter =
        EnvFilter::try_from_env("HB_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(32)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hb-polling: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(args)) {
        Ok(code) => code,
        Err(app::AppError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("hb-polling: {line}");
            }
            e.exit_code()
        }
    }
}
