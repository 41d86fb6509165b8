//! Notifications per second through decoding, and through definition matching and extraction,
//! with 50 meter definitions (the shipped ones and generated ones for other services) and 20
//! event definitions loaded, on a mix of realistic notifications (the test fixtures and
//! notifications of the generated services).
//!
//!   cargo bench -p hb-notification
//!
//! Two groups: `notifications` in wall-clock time, and `notifications-cpu` in the CPU time of
//! the benchmarking thread (`/proc/thread-self/schedstat`, 4 ms resolution, hence long flat
//! samples): the per-core figure, which other processes competing for the CPUs do not
//! inflate. With `HB_PROFILE=decode|convert|both HB_PROFILE_ITERATIONS=N` in the environment
//! the binary skips criterion and runs one stage N times over the mix, for instruction counts
//! that do not depend on the machine's load (`valgrind --tool=callgrind`, N = 0 and 100).
//!
//! The allocator is the one the hb binaries use (mimalloc): converting is mostly building the
//! samples' and events' strings and maps, so the allocator weighs on the figures.

use std::hint::black_box;
#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, SamplingMode, Throughput};
use hb_notification::{Definitions, Notification, Unmatched};
use serde_json::json;

/// The allocator the hb binaries use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Services the generated definitions are for, with the resource their notifications carry.
const SERVICES: [(&str, &str); 6] = [
    ("network", "network"),
    ("port", "port"),
    ("router", "router"),
    ("floatingip", "floatingip"),
    ("dns.zone", "zone"),
    ("orchestration.stack", "stack"),
];

/// 38 meter definitions and 12 event definitions for the generated services, in the shapes
/// the shipped ones use (paths, lists of paths, literals, plugins, metadata, exclusions).
fn generated() -> (String, String) {
    let mut meters = String::from("metric:\n");
    for i in 0..38 {
        let (service, key) = SERVICES[i % SERVICES.len()];
        let (event_type, volume) = match i % 4 {
            0 => (
                format!("[\"{service}.*\", \"!{service}.*.start\"]"),
                "1".to_owned(),
            ),
            1 => (
                format!("{service}.create.end"),
                format!("$.payload.{key}.size"),
            ),
            2 => (
                format!("[{service}.create.end, {service}.update.end]"),
                format!("[$.payload.{key}.mtu, $.payload.{key}.size]"),
            ),
            _ => (format!("{service}.delete.end"), "1".to_owned()),
        };
        meters.push_str(&format!(
            "  - name: {service}.meter{i}\n    event_type: {event_type}\n    type: gauge\n    unit: {key}\n    volume: {volume}\n    resource_id: $.payload.{key}.id\n    project_id: $.payload.{key}.tenant_id\n    metadata:\n      name: $.payload.{key}.name\n      status: $.payload.{key}.status\n      host:\n        fields: $.publisher_id\n        plugin: {{name: split, parameters: {{separator: \".\", segment: -1}}}}\n"
        ));
    }
    let mut events = String::new();
    for i in 0..12 {
        let (service, key) = SERVICES[i % SERVICES.len()];
        let event_type = if i < SERVICES.len() {
            format!("\"{service}.*\"")
        } else {
            format!("{service}.create.end")
        };
        events.push_str(&format!(
            "- event_type: {event_type}\n  traits:\n    resource_id: {{fields: payload.{key}.id}}\n    name: {{fields: payload.{key}.name}}\n    status: {{fields: payload.{key}.status}}\n    size: {{fields: payload.{key}.size, type: int}}\n    created_at: {{fields: payload.{key}.created_at, type: datetime}}\n    admin_state: {{fields: payload.{key}.admin_state_up, plugin: {{name: map, parameters: {{values: {{\"true\": up, \"false\": down}}}}}}}}\n"
        ));
    }
    (meters, events)
}

fn definitions() -> Definitions {
    let read = |dir: &str| -> Vec<(PathBuf, String)> {
        common::yaml_files(&common::root().join(dir))
            .into_iter()
            .map(|p| {
                let t = std::fs::read_to_string(&p).expect("read");
                (p, t)
            })
            .collect()
    };
    let (extra_meters, extra_events) = generated();
    let mut meters = read("meters.d");
    meters.push((PathBuf::from("meters.d/zz-generated.yaml"), extra_meters));
    let mut events = read("events.d");
    events.push((PathBuf::from("events.d/zz-generated.yaml"), extra_events));
    let m: Vec<(&Path, &str)> = meters
        .iter()
        .map(|(p, t)| (p.as_path(), t.as_str()))
        .collect();
    let e: Vec<(&Path, &str)> = events
        .iter()
        .map(|(p, t)| (p.as_path(), t.as_str()))
        .collect();
    let loaded = Definitions::parse(&m, &e, Unmatched::Keep);
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    let d = loaded.definitions;
    assert_eq!((d.meter_count(), d.event_count()), (50, 20));
    d
}

/// The fixtures' notifications, and a create, update and delete of each generated service.
fn mix() -> Vec<Vec<u8>> {
    let mut mix: Vec<Vec<u8>> = common::fixture_notifications()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    for (i, (service, key)) in SERVICES.iter().enumerate() {
        for action in ["create.end", "update.end", "delete.end"] {
            let n = json!({
                "message_id": format!("0000000{i}-{action}"),
                "event_type": format!("{service}.{action}"),
                "publisher_id": format!("{service}.controller-1"),
                "priority": "INFO",
                "timestamp": "2026-11-22 10:00:00.000000",
                "payload": {*key: {
                    "id": format!("{key}-{i}"), "name": format!("{key} {i}"), "tenant_id": "8a1f4c0e2b3d4e5f8a9b0c1d2e3f4a5b",
                    "status": "ACTIVE", "admin_state_up": true, "mtu": 1450, "size": 3,
                    "created_at": "2026-11-22T09:59:00Z", "description": "", "tags": [],
                }},
                "_context_request_id": "req-5b0c5e8f-1a0c-4f0e-9c1e-2f8a5d3c7b11",
                "_context_user_id": "2f5ee4a6b1d8462b9b2e1f3c4d5e6f70",
                "_context_project_id": "8a1f4c0e2b3d4e5f8a9b0c1d2e3f4a5b",
                "_context_roles": ["member", "reader"],
            });
            mix.push(n.to_string().into_bytes());
        }
    }
    mix
}

struct Setup {
    definitions: Definitions,
    mix: Vec<Vec<u8>>,
    decoded: Vec<Notification>,
}

fn setup() -> Setup {
    let definitions = definitions();
    let mix = mix();
    let decoded: Vec<Notification> = mix
        .iter()
        .map(|b| Notification::decode(b).expect("decodes"))
        .collect();
    let made: usize = decoded
        .iter()
        .map(|n| definitions.convert(n).samples.len())
        .sum();
    eprintln!(
        "mix: {} notifications of {} bytes on average; {made} samples and {} events per round",
        mix.len(),
        mix.iter().map(Vec::len).sum::<usize>() / mix.len(),
        decoded.len()
    );
    Setup {
        definitions,
        mix,
        decoded,
    }
}

fn decode_all(s: &Setup) {
    for bytes in &s.mix {
        black_box(Notification::decode(black_box(bytes)).ok());
    }
}

fn convert_all(s: &Setup) {
    for n in &s.decoded {
        black_box(s.definitions.convert(black_box(n)));
    }
}

fn both_all(s: &Setup) {
    for bytes in &s.mix {
        if let Ok(n) = Notification::decode(black_box(bytes)) {
            black_box(s.definitions.convert(&n));
        }
    }
}

fn group<M: Measurement>(
    c: &mut Criterion<M>,
    name: &str,
    s: &Setup,
    configure: impl Fn(&mut criterion::BenchmarkGroup<'_, M>),
) {
    let mut group = c.benchmark_group(name);
    configure(&mut group);
    group.throughput(Throughput::Elements(s.mix.len() as u64));
    group.bench_function("decode", |b| b.iter(|| decode_all(s)));
    group.bench_function("convert", |b| b.iter(|| convert_all(s)));
    group.bench_function("decode+convert", |b| b.iter(|| both_all(s)));
    group.finish();
}

/// CPU time of the calling thread, in nanoseconds (the scheduler's run time).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Criterion measurement: the benchmarking thread's CPU time.
struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = f64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> f64 {
        thread_cpu_ns().saturating_sub(start) as f64
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns cpu")
        } else if ns < 1e6 {
            (1e-3, "µs cpu")
        } else if ns < 1e9 {
            (1e-6, "ms cpu")
        } else {
            (1e-9, "s cpu")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_run = match throughput {
            Throughput::Elements(n)
            | Throughput::Bytes(n)
            | Throughput::BytesDecimal(n)
            | Throughput::Bits(n) => *n as f64,
            Throughput::ElementsAndBytes { elements, .. } => *elements as f64,
        };
        let (factor, unit) = if per_run * 1e9 / ns < 1e6 {
            (1e-3, "Kelem/s/core")
        } else {
            (1e-6, "Melem/s/core")
        };
        values
            .iter_mut()
            .for_each(|v| *v = per_run * 1e9 / *v * factor);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn main() {
    let s = setup();
    if let Ok(stage) = std::env::var("HB_PROFILE") {
        let n: usize = std::env::var("HB_PROFILE_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let run: fn(&Setup) = match stage.as_str() {
            "decode" => decode_all,
            "convert" => convert_all,
            "both" => both_all,
            other => panic!("HB_PROFILE={other}: decode, convert or both"),
        };
        let (wall, cpu) = (std::time::Instant::now(), thread_cpu_ns());
        for _ in 0..n {
            run(&s);
        }
        let notifications = (n * s.mix.len()).max(1) as f64;
        eprintln!(
            "{stage}: {n} rounds, {:.0} ns wall and {:.0} ns cpu per notification",
            wall.elapsed().as_nanos() as f64 / notifications,
            thread_cpu_ns().saturating_sub(cpu) as f64 / notifications
        );
        return;
    }
    let mut wall = Criterion::default().configure_from_args();
    group(&mut wall, "notifications", &s, |_| {});
    let mut cpu = Criterion::default()
        .with_measurement(CpuTime)
        .configure_from_args();
    group(&mut cpu, "notifications-cpu", &s, |g| {
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(20)
            .measurement_time(Duration::from_secs(10));
    });
    cpu.final_summary();
}
