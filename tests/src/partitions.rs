//! Partitioned consumption, per broker: one agent polling 24 counters every second, two
//! collectors with a `delta` and a `rate_of_change` sink; then one collector is killed with
//! `kill -9` and a third starts. Every delta and every rate must equal the one computed from
//! the raw samples of its series, nothing may be lost, and a series may change hands only
//! when a partition moves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use hb_sample::Sample;

use crate::bus::{Broker, Kind};
use crate::node::{Node, sum, wait_until};

/// The counters the agent polls: `counter.ops` of resources `r0` .. `r23`, growing at
/// different speeds (an exec pollster, so the test knows every series).
const COUNTERS: &str = r#"import time
t = time.time()
for i in range(24):
    v = int(t * 1000) * (i + 1)
    print('{"name": "counter.ops", "type": "cumulative", "unit": "op", "volume": %d, "resource_id": "r%d"}' % (v, i))
"#;

const NAMESPACE: &str = "exec:\n  - name: counters\n    command: [python3, counters.py]\n    \
                         meters: [\"counter.*\"]\n    timeout: 1\n";

fn collector_yaml(url: &str, coordination: &str) -> String {
    format!(
        "transport: \"{url}\"\nsecret_file: secret\n{coordination}\
         sources:\n  - {{name: all, interval: 1, meters: [\"counter.*\"], sinks: [raw, delta, rate]}}\n\
         sinks:\n\
         \x20 - {{name: raw, publishers: [\"file://raw.jsonl\"]}}\n\
         \x20 - name: delta\n    transformers: [{{name: delta}}]\n    publishers: [\"file://delta.jsonl\"]\n\
         \x20 - name: rate\n    transformers:\n      - {{name: rate_of_change, parameters: {{target: {{name: counter.rate, unit: op/s, type: gauge}}}}}}\n    publishers: [\"file://rate.jsonl\"]\n"
    )
}

/// Samples of every node's `file`, one per id (a message redelivered after `kill -9` is
/// written again), each with the index of the first node that wrote it.
fn gather(nodes: &[&Node], file: &str) -> Vec<(Sample, usize)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for s in node.samples_in(file).0 {
            if seen.insert(s.id) {
                out.push((s, i));
            }
        }
    }
    out
}

/// Derived samples by (resource, timestamp): as InfluxDB keeps them, one point per series and
/// time. A redelivered input gives the same value again; a different one is a failure.
fn points(nodes: &[&Node], file: &str) -> HashMap<(String, i64), f64> {
    let mut out: HashMap<(String, i64), f64> = HashMap::new();
    for (s, _) in gather(nodes, file) {
        let key = (
            s.resource_id.clone(),
            s.timestamp.timestamp_nanos_opt().unwrap_or(0),
        );
        if let Some(before) = out.insert(key.clone(), s.volume()) {
            assert!(
                (before - s.volume()).abs() <= 1e-9 * before.abs().max(1.0),
                "{file}: {key:?} written as {before} and as {}",
                s.volume()
            );
        }
    }
    out
}

fn seconds(a: &Sample, b: &Sample) -> f64 {
    match (a.monotonic_time, b.monotonic_time) {
        (Some(x), Some(y)) if y >= x => (y - x) as f64 / 1e9,
        _ => (b.timestamp - a.timestamp).as_seconds_f64(),
    }
}

/// Runs the scenario on `kind`.
pub fn delta_and_rate_across_moves(kind: Kind) {
    let (broker, url, coordination) = match kind {
        Kind::Kafka => {
            // The mock cluster: tansu 0.6 skips records after a rebalance.
            let broker = Broker::faulty(kind).0;
            let url = broker.direct("prefetch=50&session_timeout_ms=6000");
            (broker, url, String::new())
        }
        Kind::Rabbit => {
            let broker = Broker::start(kind);
            let url = broker.direct("prefetch=50");
            let group = uuid::Uuid::new_v4().simple().to_string();
            let coordination = format!(
                "coordination: {{backend_url: \"redis://127.0.0.1:6379/0\", group: \"{group}\", heartbeat: 1, timeout: 3}}\n"
            );
            (broker, url, coordination)
        }
        Kind::Redis => {
            let broker = Broker::start(kind);
            let url = broker.direct("prefetch=50&lease_ms=3000");
            (broker, url, String::new())
        }
    };
    let yaml = collector_yaml(&url, &coordination);
    let mut a = Node::collector_with(&yaml);
    let mut b = Node::collector_with(&yaml);
    let agent_yaml = format!(
        "transport: \"{url}\"\nsecret_file: secret\nspool: {{dir: spool}}\n\
         sources:\n  - {{name: all, interval: 1, meters: [\"counter.*\"], sinks: [out]}}\n\
         sinks:\n  - {{name: out, publishers: [\"file://unused.jsonl\"]}}\n"
    );
    let mut agent = Node::agent_args(
        &agent_yaml,
        &[
            ("ns/test/counters.yaml", NAMESPACE),
            ("ns/test/counters.py", COUNTERS),
        ],
        &["--polling-namespaces", "test", "--namespaces-dir", "ns"],
    );
    let raw_lines = |n: &Node| n.samples_in("raw.jsonl").0.len();
    let shared = wait_until(Duration::from_secs(60), || {
        raw_lines(&a) > 0 && raw_lines(&b) > 0
    });
    std::thread::sleep(Duration::from_secs(8));
    a.kill9();
    let mut c = Node::collector_with(&yaml);
    let took = wait_until(Duration::from_secs(60), || raw_lines(&c) > 0);
    std::thread::sleep(Duration::from_secs(10));
    assert!(agent.term().success(), "{}", agent.log());
    // The last envelopes reach the collectors, whose sinks flush within a second.
    std::thread::sleep(Duration::from_secs(4));
    assert!(b.term().success(), "{}", b.log());
    assert!(c.term().success(), "{}", c.log());
    drop(broker);
    let logs = format!(
        "--- a\n{}\n--- b\n{}\n--- c\n{}",
        tail(&a.log()),
        tail(&b.log()),
        tail(&c.log())
    );
    assert!(shared, "both collectors took a share\n{logs}");
    assert!(took, "the third collector took a share\n{logs}");

    let nodes = [&a, &b, &c];
    let raw = gather(&nodes, "raw.jsonl");
    let delivered = sum(&agent.log(), "cycle done", "delivered") as usize;
    let mut series: BTreeMap<String, Vec<(Sample, usize)>> = BTreeMap::new();
    for (s, writer) in raw {
        series
            .entry(s.resource_id.clone())
            .or_default()
            .push((s, writer));
    }
    let deltas = points(&nodes, "delta.jsonl");
    let rates = points(&nodes, "rate.jsonl");
    let (mut pairs, mut missing, mut switches_max, mut matched_rates) = (0, 0, 0, 0);
    let (mut true_total, mut delta_total, mut lost_total) = (0.0, 0.0, 0.0);
    let mut used = 0;
    for (resource, samples) in &mut series {
        samples.sort_by_key(|(s, _)| s.timestamp);
        let switches = samples.windows(2).filter(|w| w[0].1 != w[1].1).count();
        switches_max = switches_max.max(switches);
        let mut gaps = 0;
        for w in samples.windows(2) {
            let (prev, next) = (&w[0].0, &w[1].0);
            pairs += 1;
            let expected = next.volume() - prev.volume();
            true_total += expected;
            let key = (
                resource.clone(),
                next.timestamp.timestamp_nanos_opt().unwrap_or(0),
            );
            match deltas.get(&key) {
                Some(d) => {
                    used += 1;
                    delta_total += d;
                    assert!(
                        (d - expected).abs() <= 1e-6 * expected.abs().max(1.0),
                        "{kind:?} {resource} at {}: delta {d}, raw samples say {expected}\n{logs}",
                        next.timestamp
                    );
                }
                None => {
                    gaps += 1;
                    lost_total += expected;
                }
            }
            if let Some(r) = rates.get(&key) {
                matched_rates += 1;
                let want = expected / seconds(prev, next);
                assert!(
                    (r - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{kind:?} {resource} at {}: rate {r}, raw samples say {want}\n{logs}",
                    next.timestamp
                );
            }
        }
        missing += gaps;
        // An interval without a delta only where the series changed hands (its first sample
        // in a collector without its state).
        assert!(
            gaps <= switches,
            "{kind:?} {resource}: {gaps} intervals without a delta, {switches} changes of hands\n{logs}"
        );
    }
    println!(
        "{kind:?} partitioned: agent delivered {delivered}, collectors wrote {} distinct raw samples of {} series; \
         {pairs} intervals: {} deltas (all equal to the raw difference), {missing} without a delta (sum {lost_total}); \
         sum of deltas {delta_total} + lost {lost_total} = true increase {true_total}; \
         {matched_rates} rates, all equal to the raw rate; at most {switches_max} changes of hands per series",
        series.values().map(Vec::len).sum::<usize>(),
        series.len(),
        used,
    );
    assert_eq!(
        series.len(),
        24,
        "every counter reached a collector\n{logs}"
    );
    assert_eq!(
        series.values().map(Vec::len).sum::<usize>(),
        delivered,
        "every sample the broker confirmed was written once\n{logs}"
    );
    assert_eq!(
        used,
        deltas.len(),
        "no delta without its pair of raw samples\n{logs}"
    );
    assert_eq!(
        matched_rates,
        rates.len(),
        "no rate without its pair of raw samples\n{logs}"
    );
    assert!(
        (delta_total + lost_total - true_total).abs() <= 1e-6 * true_total,
        "{kind:?}: deltas {delta_total} + lost {lost_total} != {true_total}"
    );
    assert!(
        switches_max <= 4,
        "{kind:?}: a series changed hands {switches_max} times: collectors took turns on it\n{logs}"
    );
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
