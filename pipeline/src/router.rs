//! Routing: each sample goes to the sinks of every source whose meter filter selects it (at
//! most once per sink), and each sink hands its batch to all of its publishers.

use futures_util::future::join_all;
use hb_sample::Sample;

use crate::config::Config;
use crate::filter::MeterFilter;
use crate::publisher::{PublishError, Publisher};

/// A running pipeline: routes plus open publishers.
#[derive(Debug)]
pub struct Pipeline {
    routes: Vec<Route>,
    sinks: Vec<SinkRuntime>,
}

#[derive(Debug)]
struct Route {
    filter: MeterFilter,
    sinks: Vec<usize>,
}

#[derive(Debug)]
struct SinkRuntime {
    name: String,
    publishers: Vec<Publisher>,
}

/// What became of one batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// (sample, sink) pairs that every publisher of the sink accepted.
    pub delivered: usize,
    /// (sample, sink) pairs that some publisher refused; already logged with the reason.
    pub failed: usize,
    /// Samples that no source selects.
    pub unrouted: usize,
}

impl std::ops::AddAssign for Delivery {
    fn add_assign(&mut self, rhs: Self) {
        self.delivered += rhs.delivered;
        self.failed += rhs.failed;
        self.unrouted += rhs.unrouted;
    }
}

/// A publisher that could not be opened at start-up.
#[derive(Debug, thiserror::Error)]
#[error("sink `{sink}`: cannot open publisher: {source}")]
pub struct OpenError {
    /// The sink it belongs to.
    pub sink: String,
    /// What went wrong.
    #[source]
    pub source: PublishError,
}

impl Pipeline {
    /// Opens every publisher of every sink.
    pub fn open(config: &Config) -> Result<Self, OpenError> {
        let sinks = config
            .sinks
            .iter()
            .map(|sink| {
                let publishers = sink
                    .publishers
                    .iter()
                    .map(Publisher::open)
                    .collect::<Result<_, _>>()
                    .map_err(|source| OpenError {
                        sink: sink.name.clone(),
                        source,
                    })?;
                Ok(SinkRuntime {
                    name: sink.name.clone(),
                    publishers,
                })
            })
            .collect::<Result<_, _>>()?;
        let routes = config
            .sources
            .iter()
            .map(|s| Route {
                filter: s.meters.clone(),
                sinks: s.sinks.clone(),
            })
            .collect();
        Ok(Self { routes, sinks })
    }

    /// Routes and publishes a batch; failures are logged here and counted in the result.
    pub async fn publish(&self, samples: Vec<Sample>) -> Delivery {
        let mut delivery = Delivery::default();
        let mut batches: Vec<Vec<Sample>> = self.sinks.iter().map(|_| Vec::new()).collect();
        let mut wanted = vec![false; self.sinks.len()];
        for sample in samples {
            wanted.fill(false);
            for route in self
                .routes
                .iter()
                .filter(|r| r.filter.matches(&sample.name))
            {
                for &sink in &route.sinks {
                    wanted[sink] = true;
                }
            }
            let targets: Vec<usize> = (0..wanted.len()).filter(|&i| wanted[i]).collect();
            let Some((&last, rest)) = targets.split_last() else {
                tracing::debug!(meter = %sample.name, "no source selects this meter; not published");
                delivery.unrouted += 1;
                continue;
            };
            for &sink in rest {
                batches[sink].push(sample.clone());
            }
            batches[last].push(sample);
        }
        let sends = self
            .sinks
            .iter()
            .zip(&batches)
            .filter(|(_, batch)| !batch.is_empty())
            .map(|(sink, batch)| async move { (sink.publish(batch).await, batch.len()) });
        for (accepted, n) in join_all(sends).await {
            if accepted {
                delivery.delivered += n
            } else {
                delivery.failed += n
            }
        }
        delivery
    }

    /// Makes everything accepted so far durable; returns how many publishers failed to.
    pub async fn flush(&self) -> usize {
        let flushes = self.sinks.iter().flat_map(|sink| {
            sink.publishers.iter().map(move |p| async move {
                let result = p.flush().await;
                if let Err(error) = &result {
                    tracing::error!(sink = %sink.name, publisher = %p.describe(), %error, "flush failed");
                }
                result.is_err()
            })
        });
        join_all(flushes)
            .await
            .into_iter()
            .filter(|failed| *failed)
            .count()
    }
}

impl SinkRuntime {
    /// True when every publisher accepted the batch.
    async fn publish(&self, batch: &[Sample]) -> bool {
        let results = join_all(self.publishers.iter().map(|p| p.publish(batch))).await;
        let mut accepted = true;
        for (publisher, result) in self.publishers.iter().zip(results) {
            if let Err(error) = result {
                accepted = false;
                tracing::error!(
                    sink = %self.name,
                    publisher = %publisher.describe(),
                    samples = batch.len(),
                    %error,
                    "publisher refused a batch; its samples are lost for this publisher"
                );
            }
        }
        accepted
    }
}
