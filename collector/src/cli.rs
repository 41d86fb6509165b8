//! `hb-collector [--config FILE]`, `hb-collector validate --config FILE` and
//! `hb-collector replay --archive URL --sink NAME --from T --to T`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::sync::Arc;

use hb_pipeline::{Config, Pipeline, Transport};
use tokio_util::sync::CancellationToken;

use crate::consume;
use crate::control::Control;
use crate::notify::{self, Notifier};
use crate::stats::Stats;

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
    /// Check the configuration without starting anything: exit 0, or 2 with every error
    /// (a notification definition that would be skipped is one, unless --allow-skipped).
    Validate(ValidateArgs),
    /// Send the archive's samples of a time range through one sink (backfill).
    Replay(crate::replay::ReplayArgs),
}

/// `validate`'s options.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Accept notification definitions that would be skipped at start (each is still printed
    /// on stderr): exit 0 when nothing else is wrong.
    #[arg(long)]
    pub allow_skipped: bool,
}

/// Loads the configuration; on refusal prints every error and gives exit code 2.
pub fn load(args: &Args) -> Result<Config, ExitCode> {
    Config::load(&args.config).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("hb-collector: {e}");
        }
        ExitCode::from(2)
    })
}

/// `validate`: what was checked, on stdout; wrong definitions on stderr. A definition that
/// would be skipped (the collector would run without it) makes the configuration invalid,
/// exit code 2, unless `--allow-skipped`.
pub fn validate(config: &Config, args: &ValidateArgs) -> ExitCode {
    let notifier = match notifier(config) {
        Ok(notifier) => notifier,
        Err(code) => return code,
    };
    let sources = config.sources.len();
    let sinks = config.sinks.len();
    let skipped = notifier.as_ref().map_or(0, |(_, skipped)| skipped.len());
    if skipped > 0 && !args.allow_skipped {
        if let Some((_, errors)) = &notifier {
            for e in errors {
                eprintln!("hb-collector: {e}");
            }
        }
        eprintln!(
            "hb-collector: {}: {skipped} notification definition{} would be skipped \
             (--allow-skipped accepts that)",
            config.path.display(),
            if skipped == 1 { "" } else { "s" }
        );
        return ExitCode::from(2);
    }
    let definitions = notifier.as_ref().map_or(String::new(), |(n, skipped)| {
        for e in skipped {
            eprintln!("hb-collector: definition skipped: {e}");
        }
        format!(
            ", {} meter and {} event definitions ({} skipped)",
            n.definitions.meter_count(),
            n.definitions.event_count(),
            skipped.len()
        )
    });
    println!(
        "{}: valid ({sources} sources, {sinks} sinks, transport {}{definitions})",
        config.path.display(),
        config.transport
    );
    ExitCode::SUCCESS
}

/// The notification definitions of `notifications:` (none without the section), with those
/// that were skipped; a definitions directory that cannot be read gives exit code 2.
#[allow(clippy::type_complexity)]
fn notifier(
    config: &Config,
) -> Result<Option<(Notifier, Vec<hb_notification::DefinitionError>)>, ExitCode> {
    let Some(section) = &config.notifications else {
        return Ok(None);
    };
    notify::load(section).map(Some).map_err(|e| {
        eprintln!(
            "hb-collector: {}: notifications: {e}",
            config.path.display()
        );
        ExitCode::from(2)
    })
}

/// Runs the collector until SIGINT/SIGTERM: exit 0 after a clean stop, 2 when the
/// configuration cannot run, 1 when publishers could not be synced.
pub async fn serve(config: Config) -> ExitCode {
    let path = config.path.display().to_string();
    if config.transport == Transport::Memory {
        eprintln!(
            "hb-collector: {path}: transport memory:// runs the pipeline inside hb-polling; \
             hb-collector needs a bus (rabbit://, kafka:// or redis://)"
        );
        return ExitCode::from(2);
    }
    let stats = Arc::new(Stats::default());
    let notifier = match notifier(&config) {
        Ok(notifier) => notifier.map(|(notifier, skipped)| {
            for e in &skipped {
                tracing::error!(error = %e, "notification definition skipped");
            }
            crate::stats::add(&stats.skipped_definitions, skipped.len() as u64);
            tracing::info!(
                meters = notifier.definitions.meter_count(),
                events = notifier.definitions.event_count(),
                skipped_definitions = skipped.len(),
                exchanges = %notifier.sources.exchanges.join(","),
                topics = %notifier.sources.topics.join(","),
                "consuming notifications"
            );
            notifier
        }),
        Err(code) => return code,
    };
    let pipeline = match Pipeline::open(&config) {
        Ok(pipeline) => Arc::new(pipeline),
        Err(e) => {
            eprintln!("hb-collector: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let control = Arc::new(Control::new(config.clone(), Arc::clone(&pipeline)));
    let management = match crate::management::bind(
        &config,
        &pipeline,
        notifier.as_ref(),
        &stats,
        &control,
    )
    .await
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("hb-collector: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    if config.secret.is_none() {
        tracing::warn!("no secret configured: envelopes are accepted without checking signatures");
    }
    tracing::info!(transport = %config.transport, config = %path, "hb-collector started");
    let shutdown = CancellationToken::new();
    crate::management::spawn(management, &shutdown);
    let (hangups, mut reloads) = tokio::sync::mpsc::unbounded_channel();
    let signals = tokio::spawn(hb_pipeline::signals::stop_on_signal(
        shutdown.clone(),
        "finishing the batch in flight, flushing, acknowledging",
        Some(hangups),
    ));
    let reloader = {
        let control = Arc::clone(&control);
        tokio::spawn(async move {
            while reloads.recv().await.is_some() {
                control.reload_config("SIGHUP").await;
            }
        })
    };
    let result = consume::run(
        &config.transport,
        config.coordination.as_ref(),
        &pipeline,
        config.secret.as_ref(),
        notifier.as_ref(),
        &shutdown,
        &stats,
    )
    .await;
    signals.abort();
    reloader.abort();
    // Closed already after a clean stop; after a setup error this flushes what was taken.
    let failed = pipeline.close(consume::SHUTDOWN_GRACE).await;
    stats.report("hb-collector stopped");
    match result {
        Err(error) => {
            eprintln!("hb-collector: {path}: {error}");
            ExitCode::from(2)
        }
        Ok(()) if failed > 0 => ExitCode::FAILURE,
        Ok(()) => ExitCode::SUCCESS,
    }
}
