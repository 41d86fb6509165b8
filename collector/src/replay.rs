//! `hb-collector replay`: reads the archive for a time range and sends it through one sink of
//! the configuration (its transformers, batching and publishers): backfilling InfluxDB from the
//! archive, for instance.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hb_pipeline::config::Source;
use hb_pipeline::publisher::PublisherSpec;
use hb_pipeline::publisher::archive::{ArchiveReader, ArchiveSpec};
use hb_pipeline::{Config, MeterFilter, Pipeline};

/// What to replay, from the command line.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The archive: `archive+file:///DIR` or `s3://BUCKET/PREFIX?endpoint=...`.
    #[arg(long, value_name = "URL")]
    pub archive: String,
    /// The sink of the configuration the samples go through.
    #[arg(long, value_name = "NAME")]
    pub sink: String,
    /// Start of the range (RFC 3339, included).
    #[arg(long, value_name = "TIME")]
    pub from: DateTime<Utc>,
    /// End of the range (RFC 3339, excluded).
    #[arg(long, value_name = "TIME")]
    pub to: DateTime<Utc>,
}

/// How long to wait, at the end, for publishers that still refuse.
const GRACE: Duration = Duration::from_secs(30);

/// Replays; exit 0 when every sample read was published, 1 otherwise, 2 for bad arguments.
pub async fn replay(mut config: Config, args: &ReplayArgs) -> ExitCode {
    let base = config.path.parent().unwrap_or(Path::new(".")).to_owned();
    let spec = match PublisherSpec::parse(&args.archive, &base) {
        Ok(PublisherSpec::Archive(spec)) => spec,
        Ok(_) => return usage("--archive must be an archive+file:// or s3:// URL"),
        Err(e) => return usage(&format!("--archive: {e}")),
    };
    let Some(index) = config.sinks.iter().position(|s| s.name == args.sink) else {
        let names: Vec<&str> = config.sinks.iter().map(|s| s.name.as_str()).collect();
        let msg = format!(
            "unknown sink `{}` (defined sinks: {})",
            args.sink,
            names.join(", ")
        );
        return usage(&msg);
    };
    if args.from >= args.to {
        return usage("--from must be before --to");
    }
    // Only the chosen sink, fed everything read.
    config.sinks = vec![config.sinks.swap_remove(index)];
    let everything = match MeterFilter::new(&["*"]) {
        Ok(filter) => filter,
        Err((_, e)) => return usage(&e.to_string()),
    };
    config.sources = vec![Source {
        name: "replay".into(),
        interval: Duration::from_secs(1),
        meters: everything,
        sinks: vec![0],
    }];
    let pipeline = match Pipeline::open(&config) {
        Ok(pipeline) => pipeline,
        Err(e) => return usage(&e.to_string()),
    };
    let outcome = run(&pipeline, &spec, args).await;
    let failed = pipeline.close(GRACE).await;
    match outcome {
        Ok((read, published)) if read == published && failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("hb-collector: replay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads object by object (memory stays bounded by one object), publishing each.
async fn run(
    pipeline: &Pipeline,
    spec: &ArchiveSpec,
    args: &ReplayArgs,
) -> Result<(usize, usize), hb_pipeline::publisher::archive::ArchiveError> {
    let reader = ArchiveReader::open(spec)?;
    let objects = reader.list(args.from, args.to).await?;
    tracing::info!(archive = %spec.describe(), objects = objects.len(), from = %args.from, to = %args.to, sink = %args.sink, "replaying");
    let (mut read, mut published, mut bad) = (0, 0, 0);
    let mut progress = crate::progress::Progress::new("replay", objects.len() as u64);
    for object in &objects {
        let outcome = reader.read(object, args.from, args.to).await?;
        progress.suspend(|| {
            for record in &outcome.bad {
                tracing::error!(%record, "unreadable archive record skipped");
            }
        });
        bad += outcome.bad.len();
        read += outcome.samples.len();
        let samples = outcome.samples.len() as u64;
        let delivery = pipeline.publish(outcome.samples).await;
        published += delivery.delivered;
        progress.advance(samples);
    }
    let rate = progress.rate().round() as u64;
    let took = progress.finish();
    tracing::info!(
        objects = objects.len(),
        samples = read,
        published,
        unreadable = bad,
        seconds = took.as_secs_f64(),
        samples_per_s = rate,
        "replay done"
    );
    Ok((read, published))
}

fn usage(message: &str) -> ExitCode {
    eprintln!("hb-collector: replay: {message}");
    ExitCode::from(2)
}
