//! Per-peer rate limits of gossip: token buckets for the transaction IDs a peer may announce
//! to this node and the payloads it may pull from it, so one noisy peer cannot starve the
//! others. Buckets of peers that stay quiet are forgotten.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Takes up to `want` tokens; returns how many were granted.
    fn take(&mut self, want: usize, rate: f64, burst: f64) -> usize {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(burst);
        self.last = now;
        let granted = (want as f64).min(self.tokens.floor()).max(0.0);
        self.tokens -= granted;
        granted as usize
    }
}

/// The per-peer limits.
#[derive(Clone, Copy)]
pub(super) enum Limit {
    /// Transaction IDs accepted from a peer's announcements.
    Announce,
    /// Payloads served to a peer.
    Pull,
}

#[derive(Default)]
struct Buckets {
    announce: HashMap<String, Bucket>,
    pull: HashMap<String, Bucket>,
}

/// The buckets of every peer, for both limits.
pub(super) struct RateLimits {
    /// Tokens a second, per limit.
    announce_rate: f64,
    pull_rate: f64,
    buckets: Mutex<Buckets>,
}

impl RateLimits {
    pub(super) fn new(announce_rate: f64, pull_rate: f64) -> RateLimits {
        RateLimits {
            announce_rate,
            pull_rate,
            buckets: Mutex::new(Buckets::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes up to `want` tokens from `peer`'s bucket for `limit` (a new bucket starts full,
    /// with twice the rate); returns how many it got.
    pub(super) fn grant(&self, limit: Limit, peer: &str, want: usize) -> usize {
        let rate = match limit {
            Limit::Announce => self.announce_rate,
            Limit::Pull => self.pull_rate,
        };
        let burst = rate * 2.0;
        let mut buckets = self.lock();
        let buckets = match limit {
            Limit::Announce => &mut buckets.announce,
            Limit::Pull => &mut buckets.pull,
        };
        buckets
            .entry(peer.to_string())
            .or_insert(Bucket {
                tokens: burst,
                last: Instant::now(),
            })
            .take(want, rate, burst)
    }

    /// Forgets buckets unused for `idle` (called periodically).
    pub(super) fn tidy(&self, idle: Duration) {
        let mut buckets = self.lock();
        buckets.announce.retain(|_, b| b.last.elapsed() < idle);
        buckets.pull.retain(|_, b| b.last.elapsed() < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_their_rate_and_cap_at_burst() {
        let mut b = Bucket {
            tokens: 10.0,
            last: Instant::now(),
        };
        assert_eq!(b.take(25, 100.0, 10.0), 10);
        assert_eq!(b.take(5, 100.0, 10.0), 0);
        std::thread::sleep(Duration::from_millis(50));
        let refilled = b.take(100, 100.0, 10.0);
        assert!((4..=10).contains(&refilled), "{refilled}");
    }
}
