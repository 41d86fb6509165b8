//! Progress of a long command (`replay`): a bar on a terminal (objects, samples, rate, ETA),
//! a log line every [`LOG_EVERY`] otherwise, and a summary at the end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often progress is logged when stderr is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Objects done of a known total, and the samples they held.
pub struct Progress {
    what: &'static str,
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    samples: u64,
    started: Instant,
    logged: Instant,
    every: Duration,
}

impl Progress {
    /// Progress over `total` objects: a bar when stderr is a terminal.
    pub fn new(what: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {pos}/{len} objects, {msg} (ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(what);
            bar
        });
        Self::with(what, total, bar, LOG_EVERY)
    }

    fn with(what: &'static str, total: u64, bar: Option<ProgressBar>, every: Duration) -> Self {
        let now = Instant::now();
        Self {
            what,
            bar,
            total,
            done: 0,
            samples: 0,
            started: now,
            logged: now,
            every,
        }
    }

    /// One more object done, which held `samples`.
    pub fn advance(&mut self, samples: u64) {
        self.done += 1;
        self.samples += samples;
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{} samples, {:.0}/s", self.samples, self.rate()));
                bar.inc(1);
            }
            None if self.logged.elapsed() >= self.every => {
                self.logged = Instant::now();
                tracing::info!(
                    objects_done = self.done,
                    objects = self.total,
                    samples = self.samples,
                    samples_per_s = self.rate().round() as u64,
                    eta_s = self.eta().map(|e| e.as_secs()),
                    "{} progress",
                    self.what
                );
            }
            None => {}
        }
    }

    /// Samples per second so far.
    pub fn rate(&self) -> f64 {
        self.samples as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    /// Time left at the pace so far (none before the first object).
    pub fn eta(&self) -> Option<Duration> {
        (self.done > 0).then(|| {
            let per = self.started.elapsed().as_secs_f64() / self.done as f64;
            Duration::from_secs_f64(per * self.total.saturating_sub(self.done) as f64)
        })
    }

    /// Runs `log` with the bar out of the way (log lines and the bar share stderr).
    pub fn suspend(&self, log: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(log),
            None => log(),
        }
    }

    /// The time it all took; the bar goes (as it does when progress is dropped early).
    pub fn finish(self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta_follow_the_objects_done() {
        let mut progress = Progress::with("replay", 4, None, Duration::ZERO);
        assert_eq!(progress.eta(), None);
        std::thread::sleep(Duration::from_millis(20));
        progress.advance(100);
        progress.advance(100);
        let eta = progress.eta().expect("eta");
        // Two of four done: what is left takes about as long as what was done.
        let elapsed = progress.started.elapsed();
        assert!(
            eta <= elapsed + Duration::from_millis(5),
            "{eta:?} {elapsed:?}"
        );
        assert!(
            eta + Duration::from_millis(5) >= elapsed / 2,
            "{eta:?} {elapsed:?}"
        );
        assert!(progress.rate() > 0.0 && progress.rate() <= 200.0 / 0.02);
        assert_eq!((progress.done, progress.samples), (2, 200));
        assert!(progress.finish() >= Duration::from_millis(20));
    }
}
