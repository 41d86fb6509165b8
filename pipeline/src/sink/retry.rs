//! Exponential backoff with full jitter for publishers that refuse a batch.

use std::time::Duration;

/// First wait after a failure.
const FIRST: Duration = Duration::from_millis(200);
/// Longest wait between two attempts.
const MAX: Duration = Duration::from_secs(30);

/// Doubling delays, each drawn uniformly in `[ceiling / 2, ceiling]` so that sinks failing
/// together (one InfluxDB behind several collectors) do not retry in step.
#[derive(Debug)]
pub(crate) struct Backoff {
    ceiling: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { ceiling: FIRST }
    }
}

impl Backoff {
    /// The next delay, at least `floor` (a server's `Retry-After`).
    pub(crate) fn next(&mut self, floor: Option<Duration>) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(MAX);
        let half = ceiling / 2;
        let jitter = half.mul_f64(fastrand::f64());
        (half + jitter).max(floor.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let waits: Vec<Duration> = (0..12).map(|_| backoff.next(None)).collect();
        assert!(waits[0] >= FIRST / 2 && waits[0] <= FIRST);
        assert!(waits[3] >= FIRST * 4 && waits[3] <= FIRST * 8);
        assert!(waits.iter().all(|w| *w <= MAX));
        assert!(waits[11] >= MAX / 2);
    }

    #[test]
    fn honours_a_floor() {
        let mut backoff = Backoff::default();
        assert_eq!(
            backoff.next(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
