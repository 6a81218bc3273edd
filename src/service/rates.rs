//! Rates shown to the operator (the dashboard's "Transactions / s", `rate` in `/api/status`),
//! computed on the node over a fixed window of samples taken at a fixed cadence, the way
//! Prometheus computes `rate()`: never from the gap between two polls of a client, which made
//! the figure flip between 0 and several times the real rate as polls and seals interleaved.
//!
//! The sampled figure is the number of transactions held in the registers (sealed, as
//! `transactionCount` counts them). It can fall (a purge, an unsubscribe): a fall is not an
//! increase, so it counts as none, and the rate stays that of what arrived.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::replication::Registers;
use crate::tasks::Service;

/// The window a rate is computed over.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How often the transaction count is sampled.
pub(crate) const RATE_SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Samples kept: the window's, and one before it.
const MAX_SAMPLES: usize = 64;

/// The per-second increase of a count over `window` ending at `now` (ms), from `samples` of
/// (unix ms, value), oldest first. Only samples inside the window count; a fall between two
/// samples counts as no increase. `None` until two samples at different times are in the
/// window.
pub(crate) fn per_second(samples: &[(i64, u64)], now: i64, window: Duration) -> Option<f64> {
    let from = now.saturating_sub(window.as_millis() as i64);
    let inside: Vec<(i64, u64)> = samples
        .iter()
        .copied()
        .filter(|(at, _)| *at >= from && *at <= now)
        .collect();
    let (first, last) = (inside.first()?, inside.last()?);
    let span_ms = last.0 - first.0;
    if span_ms <= 0 {
        return None;
    }
    let increase: u64 = inside
        .windows(2)
        .map(|pair| pair[1].1.saturating_sub(pair[0].1))
        .sum();
    Some(increase as f64 * 1000.0 / span_ms as f64)
}

/// The samples of the transaction count, for [`TxRate::per_second`].
#[derive(Default)]
pub struct TxRate {
    samples: Mutex<VecDeque<(i64, u64)>>,
}

impl TxRate {
    fn lock(&self) -> MutexGuard<'_, VecDeque<(i64, u64)>> {
        // Plain samples; a panic elsewhere cannot leave them half-written.
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the count at `at` (unix ms); samples older than the window are forgotten.
    pub fn record(&self, at: i64, count: u64) {
        let mut samples = self.lock();
        samples.push_back((at, count));
        let from = at.saturating_sub(RATE_WINDOW.as_millis() as i64);
        while samples.len() > MAX_SAMPLES || samples.front().is_some_and(|(t, _)| *t < from) {
            samples.pop_front();
        }
    }

    /// Transactions per second over [`RATE_WINDOW`] ending now.
    pub fn per_second(&self, now: i64) -> Option<f64> {
        let samples: Vec<(i64, u64)> = self.lock().iter().copied().collect();
        per_second(&samples, now, RATE_WINDOW)
    }
}

/// Samples the registers' transaction count every [`RATE_SAMPLE_EVERY`] until shutdown.
pub(crate) struct RateSampler {
    pub registers: Arc<Registers>,
    pub rate: Arc<TxRate>,
}

impl Service for RateSampler {
    const NAME: &'static str = "transaction rate";

    async fn run(self, shutdown: CancellationToken) {
        run(self.registers, self.rate, shutdown).await;
    }
}

async fn run(registers: Arc<Registers>, rate: Arc<TxRate>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(RATE_SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let count = registers.list().iter().map(|r| r.transaction_count).sum();
        rate.record(now_ms(), count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    /// Samples every second from `start` (ms) of a count that grows by `steps[i]` in second i.
    fn samples(start: i64, steps: &[u64]) -> Vec<(i64, u64)> {
        let mut count = 0;
        let mut out = vec![(start, 0)];
        for (i, step) in steps.iter().enumerate() {
            count += step;
            out.push((start + (i as i64 + 1) * 1000, count));
        }
        out
    }

    #[test]
    fn bursty_seals_give_the_steady_rate_over_the_window() {
        // About 5 tx/s submitted, sealed in bursts: 0, 10, 0, 10, ... per second.
        let s = samples(0, &[0, 10, 0, 10, 0, 10, 0, 10, 0, 10]);
        let rate = per_second(&s, 10_000, WINDOW).expect("rate");
        assert!((rate - 5.0).abs() < 1e-9, "{rate}");
        // A second later, the window has moved by one sample: still about 5, not 0 or 10.
        let mut s = s;
        s.push((11_000, 50));
        let rate = per_second(&s, 11_000, WINDOW).expect("rate");
        assert!((rate - 5.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn only_samples_inside_the_window_count() {
        // 100 tx long ago, then 2 tx/s for the last 10 s.
        let mut s = vec![(0, 0), (1_000, 100)];
        s.extend((0..=10).map(|i| (20_000 + i * 1000, 100 + 2 * i as u64)));
        let rate = per_second(&s, 30_000, WINDOW).expect("rate");
        assert!((rate - 2.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn a_fall_is_no_increase_and_too_few_samples_give_none() {
        // A purge removes 500; 1 tx/s goes on arriving.
        let s = vec![
            (0, 600),
            (1_000, 601),
            (2_000, 101),
            (3_000, 102),
            (4_000, 103),
        ];
        let rate = per_second(&s, 4_000, WINDOW).expect("rate");
        assert!((rate - 0.75).abs() < 1e-9, "3 tx in 4 s: {rate}");
        assert_eq!(per_second(&[], 0, WINDOW), None);
        assert_eq!(per_second(&[(5_000, 3)], 5_000, WINDOW), None);
        assert_eq!(per_second(&[(0, 3), (1_000, 9)], 20_000, WINDOW), None);
    }

    #[test]
    fn the_recorder_keeps_the_window_only() {
        let rate = TxRate::default();
        for i in 0..100i64 {
            rate.record(i * 1000, (i * 3) as u64);
        }
        assert!(rate.lock().len() <= 11, "{}", rate.lock().len());
        let r = rate.per_second(99_000).expect("rate");
        assert!((r - 3.0).abs() < 1e-9, "{r}");
    }
}
