//! The collector's in-process work per sample on one core: decode and verify signed envelopes
//! → meter filter → `rate_of_change` (cumulative cpu → cpu.util) → InfluxDB line protocol
//! (goal: ≥ 1,000,000 samples/s per core).
//!
//!   cargo bench -p hb-pipeline --bench pipeline
//!
//! With `HB_PROFILE=<stage> HB_PROFILE_ITERATIONS=N` in the environment the bench binary skips
//! criterion and runs one stage N times over the 1000 envelopes (`signed`, `unsigned`,
//! `decode`, `rate`, `lines`), for instruction counts that do not depend on the machine's
//! load, e.g. `valgrind --tool=callgrind <target>/release/deps/pipeline-*` with N = 0 and 5:
//! the difference over 500,000 samples is the instructions per sample.
//!
//! 1000 envelopes of 100 cumulative `cpu` samples (1000 resources, each seen 100 times, so
//! every sample after a resource's first yields a rate), signed with HMAC-SHA256 and checked
//! (`decode_filter_rate_lineprotocol`), or unsigned with no secret configured (`..._unsigned`);
//! then the stages one by one.

use criterion::{Criterion, Throughput, criterion_group};
use hb_pipeline::MeterFilter;
use hb_pipeline::publisher::influx::{Backslash, Encoder, Precision};
use hb_pipeline::transform::{Chain, TransformerConfig};
use hb_sample::{Body, Envelope, Sample, SampleType, Secret};

/// The allocator the hb binaries use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ENVELOPES: usize = 1000;
const PER: usize = 100;

fn envelopes(secret: Option<&Secret>) -> Vec<Vec<u8>> {
    let t0 = chrono::Utc::now();
    (0..ENVELOPES)
        .map(|e| {
            let samples = (0..PER)
                .map(|i| {
                    let resource = (e % 10) * PER + i;
                    let mut meta = serde_json::Map::new();
                    meta.insert("cpu_number".into(), 4.into());
                    meta.insert("host".into(), format!("host-{}", resource / 10).into());
                    let at = t0 + chrono::Duration::seconds(10 * (e / 10) as i64);
                    Sample::new(
                        "cpu",
                        SampleType::Cumulative,
                        "ns",
                        (e * 1_000_000_000) as f64,
                        format!("host-{resource}"),
                        at,
                    )
                    .expect("sample")
                    .with_metadata(meta)
                })
                .collect();
            let producer = hb_sample::Producer {
                host: format!("host-{e}"),
                agent_id: format!("host-{e}/compute"),
                namespaces: vec!["compute".into()],
            };
            Envelope::samples(producer, e as u64, samples)
                .encode(secret)
                .expect("encode")
        })
        .collect()
}

fn rate_config() -> TransformerConfig {
    serde_json::from_value(serde_json::json!({
        "name": "rate_of_change",
        "parameters": {"target": {"name": "cpu.util", "unit": "%", "type": "gauge",
            "scale": "100 / (1e9 * (resource_metadata.cpu_number or 1))"}}
    }))
    .expect("transformer")
}

fn encoder() -> Encoder {
    Encoder::new(&["host".to_owned()], Precision::Ns, Backslash::Literal)
}

/// The whole chain over `payloads`: lines written.
fn run(payloads: &[Vec<u8>], secret: Option<&Secret>, config: &TransformerConfig) -> usize {
    let filter = MeterFilter::new(&["cpu"]).expect("filter");
    let encoder = encoder();
    let mut chain = Chain::new(std::slice::from_ref(config)).expect("chain");
    let mut body = Vec::with_capacity(PER * 200);
    let mut lines = 0;
    for payload in payloads {
        let Body::Samples(samples) = Envelope::decode(payload, secret).expect("decode").body else {
            unreachable!("samples");
        };
        let selected: Vec<Sample> = samples
            .into_iter()
            .filter(|s| filter.matches(&s.name))
            .collect();
        let out = chain.process(selected);
        body.clear();
        lines += encoder.encode(&out, &mut body).lines;
    }
    lines
}

fn decoded(payloads: &[Vec<u8>], secret: &Secret) -> Vec<Vec<Sample>> {
    payloads
        .iter()
        .map(
            |p| match Envelope::decode(p, Some(secret)).expect("decode").body {
                Body::Samples(s) => s,
                _ => unreachable!("samples"),
            },
        )
        .collect()
}

/// `HB_PROFILE=<stage> HB_PROFILE_ITERATIONS=N`: the stage N times, no criterion.
fn profile(stage: &str, iterations: usize) {
    let secret = Secret::new("bench secret");
    let payloads = envelopes(Some(&secret));
    let unsigned = envelopes(None);
    let config = rate_config();
    let decoded = decoded(&payloads, &secret);
    let encoder = encoder();
    let mut total = 0;
    for _ in 0..iterations {
        total += match stage {
            "signed" => run(&payloads, Some(&secret), &config),
            "unsigned" => run(&unsigned, None, &config),
            "decode" => payloads
                .iter()
                .map(|p| std::hint::black_box(Envelope::decode(p, Some(&secret))).is_ok() as usize)
                .sum(),
            "rate" => {
                let mut chain = Chain::new(std::slice::from_ref(&config)).expect("chain");
                decoded
                    .clone()
                    .into_iter()
                    .map(|batch| chain.process(batch).len())
                    .sum()
            }
            "lines" => {
                let mut body = Vec::with_capacity(PER * 200);
                decoded
                    .iter()
                    .map(|batch| {
                        body.clear();
                        encoder.encode(batch, &mut body).lines
                    })
                    .sum()
            }
            other => panic!(
                "HB_PROFILE: unknown stage `{other}` (signed, unsigned, decode, rate, lines)"
            ),
        };
    }
    println!("{stage} × {iterations}: {total}");
}

fn pipeline(c: &mut Criterion) {
    let secret = Secret::new("bench secret");
    let payloads = envelopes(Some(&secret));
    let unsigned = envelopes(None);
    let config = rate_config();
    let encoder = encoder();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements((ENVELOPES * PER) as u64));
    group.sample_size(20);
    let run = |payloads: &[Vec<u8>], secret: Option<&Secret>| run(payloads, secret, &config);
    // Signed envelopes, each HMAC checked (what a collector with a secret does).
    group.bench_function("decode_filter_rate_lineprotocol", |b| {
        b.iter(|| std::hint::black_box(run(&payloads, Some(&secret))))
    });
    // The chain as written: no secret configured, so no signature to check.
    group.bench_function("decode_filter_rate_lineprotocol_unsigned", |b| {
        b.iter(|| std::hint::black_box(run(&unsigned, None)))
    });
    // The same work stage by stage, to see where the time goes.
    let decoded = decoded(&payloads, &secret);
    group.bench_function("stage_decode_verify", |b| {
        b.iter(|| {
            for payload in &payloads {
                std::hint::black_box(Envelope::decode(payload, Some(&secret)).expect("decode"));
            }
        })
    });
    group.bench_function("stage_rate_of_change", |b| {
        b.iter_batched(
            || decoded.clone(),
            |batches| {
                let mut chain = Chain::new(std::slice::from_ref(&config)).expect("chain");
                for batch in batches {
                    std::hint::black_box(chain.process(batch));
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("stage_line_protocol", |b| {
        let mut body = Vec::with_capacity(PER * 200);
        b.iter(|| {
            for batch in &decoded {
                body.clear();
                std::hint::black_box(encoder.encode(batch, &mut body));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);

fn main() {
    if let (Ok(stage), Ok(n)) = (
        std::env::var("HB_PROFILE"),
        std::env::var("HB_PROFILE_ITERATIONS"),
    ) {
        profile(&stage, n.parse().expect("HB_PROFILE_ITERATIONS: a number"));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
