//! The metrics registry behind `/metrics` (Prometheus text format 0.0.4, through the
//! `prometheus` crate). The counters the progress log lines print stay where they are, in
//! their owners' structures (atomics on the data path, no extra cost there): a *source*
//! registered here reads them when `/metrics` is scraped and writes them as families, so the
//! log lines and the metrics can never disagree. Metrics that have no counter elsewhere
//! (histograms) are registered on [`Metrics::registry`] directly. Process metrics (CPU, RSS,
//! open file descriptors, threads, start time) and `hb_build_info` are always there.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::proto::{LabelPair, MetricFamily, MetricType};
use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

/// A counter its owner `T` keeps: metric name, help, where in `T` it is (see
/// [`Families::counters`]).
pub type CounterOf<T> = (&'static str, &'static str, fn(&T) -> &AtomicU64);

/// Writes a source's families at scrape time.
pub type Source = Box<dyn Fn(&mut Families) + Send + Sync>;

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    sources: RwLock<Vec<Source>>,
}

impl Metrics {
    /// The registry with the process metrics and `hb_build_info{binary, version} 1`.
    pub fn new(binary: &str) -> Self {
        let registry = Registry::new();
        let process = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(error) = registry.register(Box::new(process)) {
            tracing::warn!(%error, "process metrics unavailable");
        }
        let metrics = Self {
            registry,
            sources: RwLock::default(),
        };
        let binary = binary.to_owned();
        metrics.add_source(Box::new(move |f| {
            f.gauge(
                "hb_build_info",
                "Which hb build runs: always 1, with the binary and its version as labels.",
                &[("binary", &binary), ("version", env!("CARGO_PKG_VERSION"))],
                1.0,
            );
        }));
        metrics
    }

    /// The registry, for metrics kept by the prometheus crate itself (histograms).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Adds a source read at every scrape.
    pub fn add_source(&self, source: Source) {
        self.sources
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    /// The text exposition of every metric, families sorted by name.
    pub fn encode(&self) -> String {
        let mut families = Families::default();
        for source in self
            .sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            source(&mut families);
        }
        let mut all = self.registry.gather();
        all.extend(families.finish());
        all.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&all, &mut out) {
            tracing::warn!(%error, "metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The families of one scrape: counters and gauges by name, each value with its labels. A
/// family's label names are those of its first value; a value with other names is left out
/// (and logged), as the text format requires.
#[derive(Default)]
pub struct Families {
    counters: BTreeMap<&'static str, IntCounterVec>,
    gauges: BTreeMap<&'static str, GaugeVec>,
    histograms: BTreeMap<&'static str, MetricFamily>,
}

impl Families {
    /// A counter value (a name ending in `_total`).
    pub fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: u64,
    ) {
        if let Some(counter) = series(&mut self.counters, IntCounterVec::new, name, help, labels) {
            counter.inc_by(value);
        }
    }

    /// The counters of `table`, read from `owner`, each with `labels`.
    pub fn counters<T>(&mut self, table: &[CounterOf<T>], owner: &T, labels: &[(&str, &str)]) {
        for (name, help, counter) in table {
            self.counter(name, help, labels, counter(owner).load(Ordering::Relaxed));
        }
    }

    /// A gauge value.
    pub fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        if let Some(gauge) = series(&mut self.gauges, GaugeVec::new, name, help, labels) {
            gauge.set(value);
        }
    }

    /// A histogram kept by its owner (unregistered, named as it likes), written under `name`
    /// with `labels`.
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        histogram: &prometheus::Histogram,
    ) {
        use prometheus::core::Metric as _;
        let family = self.histograms.entry(name).or_insert_with(|| {
            let mut family = MetricFamily::default();
            family.set_name(name.to_owned());
            family.set_help(help.to_owned());
            family.set_field_type(MetricType::HISTOGRAM);
            family
        });
        let mut metric = histogram.metric();
        let mut pairs: Vec<LabelPair> = labels
            .iter()
            .map(|(k, v)| {
                let mut pair = LabelPair::default();
                pair.set_name((*k).to_owned());
                pair.set_value((*v).to_owned());
                pair
            })
            .collect();
        // Sorted by name, as the crate writes the labels of its own families.
        pairs.sort_by(|a, b| a.name().cmp(b.name()));
        metric.set_label(pairs);
        family.mut_metric().push(metric);
    }

    fn finish(self) -> Vec<MetricFamily> {
        use prometheus::core::Collector;
        let counters = self.counters.into_values().flat_map(|c| c.collect());
        let gauges = self.gauges.into_values().flat_map(|g| g.collect());
        counters
            .chain(gauges)
            .chain(self.histograms.into_values())
            .collect()
    }
}

/// The series of family `name` (made with `new` the first time) with `labels`; none, logged,
/// when the name or the labels do not fit the family.
fn series<B: MetricVecBuilder>(
    families: &mut BTreeMap<&'static str, MetricVec<B>>,
    new: fn(Opts, &[&str]) -> prometheus::Result<MetricVec<B>>,
    name: &'static str,
    help: &'static str,
    labels: &[(&str, &str)],
) -> Option<B::M> {
    let names: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
    let values: Vec<&str> = labels.iter().map(|(_, v)| *v).collect();
    let family = match families.get(name) {
        Some(family) => family,
        None => match new(Opts::new(name, help), &names) {
            Ok(family) => families.entry(name).or_insert(family),
            Err(error) => {
                tracing::warn!(metric = name, %error, "metric left out");
                return None;
            }
        },
    };
    family
        .get_metric_with_label_values(&values)
        .map_err(|error| tracing::warn!(metric = name, %error, "metric value left out"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_read_at_every_scrape_and_merged_by_name() {
        let metrics = Metrics::new("hb-test");
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(3));
        let seen = std::sync::Arc::clone(&counter);
        metrics.add_source(Box::new(move |f| {
            for sink in ["a", "b"] {
                f.counter(
                    "hb_sink_samples_published_total",
                    "Samples published.",
                    &[("sink", sink)],
                    seen.load(std::sync::atomic::Ordering::Relaxed),
                );
            }
        }));
        let text = metrics.encode();
        assert_eq!(
            text.matches("# TYPE hb_sink_samples_published_total counter")
                .count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("hb_sink_samples_published_total{sink=\"a\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("hb_build_info{binary=\"hb-test\",version=\""),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        counter.store(7, std::sync::atomic::Ordering::Relaxed);
        let kept = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("anything", "h").buckets(vec![0.1, 1.0]),
        )
        .expect("histogram");
        kept.observe(0.5);
        metrics.add_source(Box::new(move |f| {
            f.histogram("hb_run_seconds", "Run time.", &[("pollster", "cpu")], &kept)
        }));
        let text = metrics.encode();
        assert!(text.contains("# TYPE hb_run_seconds histogram"), "{text}");
        assert!(
            text.contains("hb_run_seconds_bucket{pollster=\"cpu\",le=\"1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hb_run_seconds_count{pollster=\"cpu\"} 1"),
            "{text}"
        );
        assert!(
            metrics
                .encode()
                .contains("hb_sink_samples_published_total{sink=\"b\"} 7")
        );
    }
}
