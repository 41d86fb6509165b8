//! CPU cost of one compute cycle on this machine (goal: at most 2 ms).
//!
//! - `read`: every compute pollster reads the machine once, sequentially, on this thread.
//! - `cycle`: what the agent does per cycle: each pollster run on the blocking pool under its
//!   timeout, measurements stamped into samples, samples published to a JSON-lines file.
//!
//! `cargo bench -p hb-agent --bench compute_cycle`

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hb_agent::host::Host;
use hb_agent::namespaces;
use hb_agent::pollster::Implementation;
use hb_agent::runner;
use hb_pipeline::{Config, Pipeline};

fn compute_cycle(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../namespaces");
    let pollsters = namespaces::load(&dir, &["compute".to_owned()])
        .expect("compute namespace")
        .pollsters;
    let host = Arc::new(Host::local().expect("local host"));

    c.bench_function("read", |b| {
        b.iter(|| {
            for p in &pollsters {
                if let Implementation::Host(imp) = &p.implementation {
                    std::hint::black_box(imp.poll(&host).expect("poll"));
                }
            }
        })
    });

    let out = tempfile::tempdir().expect("tempdir");
    // `max_events: 1`: each pollster run is written at once rather than after the batch
    // timeout, so an iteration measures work, not waiting.
    let yaml = "sources:\n  - {name: all, interval: 10, meters: [\"*\"], sinks: [f]}\nsinks:\n  - {name: f, batch: {max_events: 1}, publishers: [\"file://samples.jsonl?max_bytes=10000000&backup_count=1\"]}\n";
    let config = Config::parse(yaml, &out.path().join("pipeline.yaml"), |_| None).expect("config");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pipeline = {
        let _inside = runtime.enter();
        Pipeline::open(&config).expect("pipeline")
    };
    c.bench_function("cycle", |b| {
        b.iter(|| {
            runtime.block_on(async {
                for p in &pollsters {
                    let run = runner::run(
                        Arc::clone(p),
                        Arc::clone(&host),
                        Duration::from_secs(10),
                        None,
                        hb_agent::coordination::Share::all(),
                    )
                    .await;
                    pipeline.publish(run.samples).await;
                }
            })
        })
    });
}

criterion_group!(benches, compute_cycle);
criterion_main!(benches);
