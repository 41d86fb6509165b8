//! The one retry delay of hb: exponential backoff with jitter, for reconnecting consumers,
//! retrying publishers and an agent replaying its spool alike.

use std::time::Duration;

/// The longest floor a server may impose (`Retry-After`): a larger one is cut to this, so a
/// wrong or hostile header cannot park a sink for hours.
pub const MAX_FLOOR: Duration = Duration::from_secs(300);

/// Doubling delays from `first` up to `max`, each drawn uniformly in `[ceiling / 2, ceiling]`,
/// so that clients failing together (agents after a broker restart, collectors behind one
/// InfluxDB) do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Default for Backoff {
    /// 200 ms doubling to 30 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Delays from `first` doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            ceiling: first,
        }
    }

    /// The next delay, at least `floor` (a server's `Retry-After`, capped at [`MAX_FLOOR`]).
    pub fn next(&mut self, floor: Option<Duration>) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.max);
        let half = ceiling / 2;
        let jitter = half.mul_f64(fastrand::f64());
        (half + jitter).max(floor.unwrap_or_default().min(MAX_FLOOR))
    }

    /// The ceiling of the next delay (for logs: "retrying within ...").
    pub fn peek(&self) -> Duration {
        self.ceiling
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.ceiling = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(30);

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
    fn two_clients_do_not_wait_in_step() {
        let (mut a, mut b) = (Backoff::default(), Backoff::default());
        let differ = (0..8).filter(|_| a.next(None) != b.next(None)).count();
        assert!(differ >= 7, "jittered delays should almost never coincide");
    }

    #[test]
    fn honours_a_floor_up_to_its_cap() {
        let mut backoff = Backoff::default();
        assert_eq!(
            backoff.next(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff.next(Some(Duration::from_secs(86_400 * 365))),
            MAX_FLOOR
        );
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..6 {
            backoff.next(None);
        }
        assert_eq!(backoff.peek(), Duration::from_secs(30));
        backoff.reset();
        assert!(backoff.next(None) <= Duration::from_secs(1));
    }
}
