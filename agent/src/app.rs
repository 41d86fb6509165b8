//! `hb-polling`'s commands: `--list`, `--once`, and the run loop with graceful shutdown.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use hb_pipeline::config::{ConfigError, ConfigErrors};
use hb_pipeline::{Config, Pipeline, Transport};
use tokio_util::sync::CancellationToken;

use crate::coordination::{Coordinator, Share};
use crate::destination::Destination;
use crate::host::Host;
use crate::model::LoadedPollster;
use crate::namespaces;
use crate::outbox::Outbox;
use crate::pollster::PollError;
use crate::scheduler::{self, Plan};
use crate::{output, runner};

/// Polls the machine and the services around it, and publishes samples.
#[derive(Debug, Parser)]
#[command(name = "hb-polling", version)]
pub struct Args {
    /// Namespaces whose pollsters to load (subdirectories of --namespaces-dir).
    #[arg(long, num_args = 1.., value_name = "NAMESPACE", default_values = ["compute", "central"])]
    pub polling_namespaces: Vec<String>,
    /// Keep only pollsters whose name matches one of these globs.
    #[arg(long, num_args = 1.., value_name = "GLOB")]
    pub pollster_list: Vec<String>,
    /// The pipeline configuration (sources, sinks, transport).
    #[arg(long, value_name = "FILE", default_value = "pipeline.yaml")]
    pub config: PathBuf,
    /// Where namespace declarations live.
    #[arg(long, value_name = "DIR", default_value = "namespaces")]
    pub namespaces_dir: PathBuf,
    /// Print the selected pollsters and their meters, and exit.
    #[arg(long, conflicts_with = "once")]
    pub list: bool,
    /// Poll every selected pollster once, print the samples, and exit.
    #[arg(long)]
    pub once: bool,
    /// Output format of --once.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How `--once` prints samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// One JSON object per line.
    Json,
}

/// Why the agent did not start (exit code 2) or could not write its output.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Configuration or namespace declarations refused.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A command-line choice that cannot be honoured.
    #[error("{0}")]
    Usage(String),
    /// The machine cannot be read at all.
    #[error("cannot read the local machine: {0}")]
    Host(#[from] PollError),
    /// Writing the output failed.
    #[error("write output: {0}")]
    Output(#[from] std::io::Error),
}

impl AppError {
    /// Exit code: 1 when output failed, 2 for everything refused at start-up.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Output(_) => ExitCode::FAILURE,
            _ => ExitCode::from(2),
        }
    }
}

/// Runs the command `args` asks for.
pub async fn run(args: Args) -> Result<ExitCode, AppError> {
    let (pollsters, skipped) = select(&args)?;
    if args.list {
        output::pollsters(&mut std::io::stdout().lock(), &pollsters)?;
        output::skipped(&mut std::io::stderr().lock(), &skipped)?;
        return Ok(ExitCode::SUCCESS);
    }
    for error in &skipped {
        tracing::error!(%error, "pollster definition skipped");
    }
    let host = Arc::new(Host::local()?);
    if args.once {
        return once(&pollsters, host, args.format).await;
    }
    let config = Config::load(&args.config)?;
    let destination = match &config.transport {
        Transport::Memory => Destination::Embedded(Arc::new(
            Pipeline::open(&config)
                .map_err(|e| AppError::Usage(format!("{}: {e}", config.path.display())))?,
        )),
        transport => {
            let identity = hb_sample::Producer {
                host: host.name().to_owned(),
                agent_id: format!("{}/{}", host.name(), args.polling_namespaces.join("+")),
                namespaces: args.polling_namespaces.clone(),
            };
            let outbox = Outbox::open(transport, &config.spool, identity, config.secret.clone())
                .map_err(|e| AppError::Usage(format!("{}: {e}", config.path.display())))?;
            Destination::Bus(Box::new(outbox))
        }
    };
    let plan = Plan::new(&pollsters, &config.sources);
    if plan.is_empty() {
        let msg = format!(
            "{}: no source selects any meter of the selected pollsters (see hb-polling --list)",
            config.path.display()
        );
        return Err(AppError::Usage(msg));
    }
    for group in &plan.groups {
        let names: Vec<&str> = group
            .entries
            .iter()
            .map(|e| e.pollster.name.as_str())
            .collect();
        tracing::info!(interval_s = group.interval.as_secs(), pollsters = %names.join(","), "polling");
    }
    tracing::info!(host = host.name(), transport = %config.transport, config = %config.path.display(), skipped_definitions = skipped.len(), "hb-polling started");
    let heartbeat_every = plan.groups[0].interval;
    let destination = Arc::new(destination);
    let management = crate::management::bind(&config, &pollsters, &destination)
        .await
        .map_err(|e| AppError::Usage(format!("{}: {e}", config.path.display())))?;
    let shutdown = CancellationToken::new();
    if let Some(server) = management {
        server.spawn(shutdown.clone());
    }
    let coordinator = match &config.coordination {
        None => None,
        Some(c) => {
            let member = format!(
                "{}-{}-{:04x}",
                host.name(),
                std::process::id(),
                fastrand::u16(..)
            );
            let coordinator = Coordinator::new(c.clone(), member)
                .map_err(|e| AppError::Usage(format!("{}: {e}", config.path.display())))?;
            tracing::info!(
                group = coordinator.group(),
                member = coordinator.member(),
                "joining the coordination group"
            );
            Some(Arc::new(coordinator))
        }
    };
    let membership = coordinator.clone().map(|c| {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { c.run(shutdown).await })
    });
    let signals = tokio::spawn(hb_pipeline::signals::stop_on_signal(
        shutdown.clone(),
        "finishing the cycle in flight, then flushing",
        None,
    ));
    let bus = tokio::spawn(bus_tasks(
        Arc::clone(&destination),
        pollsters,
        heartbeat_every,
        shutdown.clone(),
    ));
    scheduler::run(plan, host, Arc::clone(&destination), coordinator, shutdown).await;
    signals.abort();
    let _ = bus.await;
    if let Some(membership) = membership {
        let _ = membership.await;
    }
    let failed = destination.finish().await;
    tracing::info!(failed_flushes = failed, "hb-polling stopped");
    // A publisher that could not make its data durable is worth a non-zero exit.
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// With a bus: heartbeats every `interval` and spool replay, until `shutdown`.
async fn bus_tasks(
    destination: Arc<Destination>,
    pollsters: Vec<Arc<LoadedPollster>>,
    interval: std::time::Duration,
    shutdown: CancellationToken,
) {
    let Destination::Bus(outbox) = &*destination else {
        return;
    };
    let heartbeats = async {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => outbox.heartbeat(&pollsters, interval).await,
            }
        }
    };
    tokio::join!(heartbeats, outbox.replay(shutdown.clone()));
}

/// Loads the requested namespaces and applies --pollster-list; also returns the plugin
/// definitions that were skipped.
fn select(args: &Args) -> Result<(Vec<Arc<LoadedPollster>>, Vec<ConfigError>), AppError> {
    let mut wanted: Vec<String> = Vec::new();
    for ns in &args.polling_namespaces {
        if wanted.contains(ns) {
            tracing::warn!(namespace = %ns, "namespace given twice; polling it once");
        } else {
            wanted.push(ns.clone());
        }
    }
    let available = namespaces::available(&args.namespaces_dir).map_err(ConfigErrors::from)?;
    if let Some(unknown) = wanted.iter().find(|ns| !available.contains(ns)) {
        return Err(AppError::Usage(format!(
            "unknown namespace `{unknown}` (available: {})",
            available.join(", ")
        )));
    }
    let loaded = namespaces::load(&args.namespaces_dir, &wanted)?;
    let mut pollsters = loaded.pollsters;
    if !args.pollster_list.is_empty() {
        let globs = args
            .pollster_list
            .iter()
            .map(|g| {
                glob::Pattern::new(g).map_err(|e| {
                    AppError::Usage(format!("invalid --pollster-list glob `{g}`: {}", e.msg))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let offered: Vec<String> = pollsters.iter().map(|p| p.name.clone()).collect();
        pollsters.retain(|p| globs.iter().any(|g| g.matches(&p.name)));
        if pollsters.is_empty() {
            return Err(AppError::Usage(format!(
                "no pollster matches --pollster-list {} (namespaces {} offer: {})",
                args.pollster_list.join(" "),
                wanted.join(", "),
                offered.join(", ")
            )));
        }
    }
    Ok((pollsters, loaded.skipped))
}

/// `--once`: every selected pollster once, concurrently, each under its timeout.
async fn once(
    pollsters: &[Arc<LoadedPollster>],
    host: Arc<Host>,
    format: Format,
) -> Result<ExitCode, AppError> {
    let runs = pollsters.iter().map(|p| {
        let (p, host) = (Arc::clone(p), Arc::clone(&host));
        tokio::spawn(async move {
            let timeout = p.timeout;
            runner::run(p, host, timeout, None, Share::all()).await
        })
    });
    let mut samples = Vec::new();
    let mut failed = 0;
    for (p, run) in pollsters
        .iter()
        .zip(futures_util::future::join_all(runs).await)
    {
        let error = match run {
            Ok(run) => {
                samples.extend(run.samples);
                run.error.map(|e| e.to_string())
            }
            Err(join) => Some(join.to_string()),
        };
        if let Some(error) = error {
            failed += 1;
            eprintln!("hb-polling: pollster `{}` failed: {error}", p.name);
        }
    }
    let mut out = std::io::stdout().lock();
    match format {
        Format::Table => output::samples_table(&mut out, &samples)?,
        Format::Json => output::samples_json(&mut out, &samples)?,
    }
    out.flush()?;
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
