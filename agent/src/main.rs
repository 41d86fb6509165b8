//! `hb-polling`: the polling agent.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use hb_agent::app::{self, Args};
use tracing_subscriber::EnvFilter;

// The system allocator (glibc), not mimalloc as in hb-collector: mimalloc commits its first
// arena eagerly and asks for transparent huge pages on it (MADV_HUGEPAGE), which held 14 of the
// agent's 16 MB of anonymous memory; with glibc RssAnon is 2 MB, and callgrind counts ~10 %
// fewer instructions per compute poll (1.75 M against 1.95 M). The `mimalloc` crate cannot turn
// that off per binary (its `no_thp` feature would reach hb-collector by feature unification).

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
