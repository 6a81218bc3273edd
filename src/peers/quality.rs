//! The quality score (0–100) and its explanation.
//!
//! score = 60 × success rate + 25 × latency score + 15 × validity, where the latency score comes
//! from the average round-trip time (< 50 ms 1.0, < 100 ms 0.8, < 200 ms 0.6, < 500 ms 0.4,
//! else 0.2) and validity is 1.0 unless the peer was penalised for bad data or protocol
//! violations; penalties decay by half every [`PENALTY_HALF_LIFE_MS`]. The components are
//! returned with the sum so an operator can see *why* a peer is poor.

use std::collections::VecDeque;

/// Weight of each component; they add up to 100.
pub(crate) const SUCCESS_WEIGHT: f64 = 60.0;
pub(crate) const LATENCY_WEIGHT: f64 = 25.0;
pub(crate) const VALIDITY_WEIGHT: f64 = 15.0;

/// How many recent round-trip samples feed min/avg/max latency.
pub(crate) const LATENCY_SAMPLES: usize = 100;
/// The success rate is the share of the last this-many requests that succeeded, so a peer
/// recovers from an old bad patch and the explanation can name the exact counts it used.
pub(crate) const SUCCESS_WINDOW: u32 = 20;
/// A penalty halves in this time, so validity returns to 1.0 after good behaviour.
pub(crate) const PENALTY_HALF_LIFE_MS: f64 = 3_600_000.0;

/// Rating of a peer this node has not exchanged a single request with yet.
pub(crate) const UNKNOWN_RATING: &str = "Unknown";

/// The latency score for an average round trip, per the specification's bands.
pub(crate) fn latency_score(avg_ms: f64) -> f64 {
    match avg_ms {
        x if x < 50.0 => 1.0,
        x if x < 100.0 => 0.8,
        x if x < 200.0 => 0.6,
        x if x < 500.0 => 0.4,
        _ => 0.2,
    }
}

/// The rating word for a score.
pub(crate) fn rating(score: f64) -> &'static str {
    match score {
        s if s >= 80.0 => "Excellent",
        s if s >= 60.0 => "Good",
        s if s >= 40.0 => "Fair",
        _ => "Poor",
    }
}

/// Rolling observations of one peer's behaviour.
#[derive(Clone, Debug, Default)]
pub(crate) struct QualityTracker {
    pub total_requests: u64,
    pub successful_requests: u64,
    /// Outcomes of the last [`SUCCESS_WINDOW`] requests, newest in bit 0 (1: succeeded).
    recent: u32,
    /// How many of those bits are outcomes (fewer than the window at first).
    recent_len: u32,
    samples: VecDeque<f64>,
    /// Penalty level at `penalty_updated_ms`, decaying from there.
    pub penalty: f64,
    pub penalty_updated_ms: i64,
    pub last_penalty: Option<PenaltyEvent>,
}

/// The most recent penalty: when and why.
#[derive(Clone, Debug, PartialEq)]
pub struct PenaltyEvent {
    pub at_ms: i64,
    pub reason: String,
    pub amount: f64,
}

/// The score with every input that produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityBreakdown {
    pub score: f64,
    pub rating: &'static str,
    pub success_rate: f64,
    pub success_points: f64,
    pub average_latency_ms: Option<f64>,
    pub min_latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
    pub latency_score: f64,
    pub latency_points: f64,
    pub validity: f64,
    pub validity_points: f64,
    pub total_requests: u64,
    pub successful_requests: u64,
    /// The requests the success rate was computed from (the last [`SUCCESS_WINDOW`]) and how
    /// many of them succeeded: `success_rate` is exactly their ratio.
    pub recent_requests: u32,
    pub recent_successful_requests: u32,
    pub last_penalty: Option<PenaltyEvent>,
}

impl QualityTracker {
    /// Rebuilds a tracker from persisted figures (latency samples are seeded with the
    /// persisted min, average and max so the numbers survive a restart; the recent outcomes
    /// with as many successes as the persisted rate gives over the window).
    pub(crate) fn restore(
        total: u64,
        successful: u64,
        success_rate: Option<f64>,
        latency: Option<(f64, f64, f64)>,
        penalty: f64,
        penalty_updated_ms: i64,
        last_penalty: Option<PenaltyEvent>,
    ) -> QualityTracker {
        let mut samples = VecDeque::new();
        if let Some((min, avg, max)) = latency {
            // min + max + x = 3 × avg keeps the restored average exact.
            samples.extend([min, max, (3.0 * avg - min - max).max(0.0)]);
        }
        let recent_len = total.min(u64::from(SUCCESS_WINDOW)) as u32;
        let rate = success_rate.map_or(0.0, |r| {
            if r.is_finite() {
                r.clamp(0.0, 1.0)
            } else {
                0.0
            }
        });
        let ok = ((rate * f64::from(recent_len)).round() as u32).min(recent_len);
        QualityTracker {
            total_requests: total,
            successful_requests: successful.min(total),
            recent: low_bits(ok),
            recent_len,
            samples,
            penalty: penalty.max(0.0),
            penalty_updated_ms,
            last_penalty,
        }
    }

    fn record(&mut self, ok: bool) {
        self.total_requests += 1;
        if ok {
            self.successful_requests += 1;
        }
        self.recent = ((self.recent << 1) | u32::from(ok)) & low_bits(SUCCESS_WINDOW);
        self.recent_len = (self.recent_len + 1).min(SUCCESS_WINDOW);
    }

    /// Share of the recent requests that succeeded; `None` before the first request.
    pub(crate) fn success_rate(&self) -> Option<f64> {
        (self.recent_len > 0)
            .then(|| f64::from(self.recent.count_ones()) / f64::from(self.recent_len))
    }

    /// A request that succeeded, with its round-trip time when it was measured.
    pub(crate) fn record_success(&mut self, rtt_ms: Option<f64>) {
        self.record(true);
        if let Some(ms) = rtt_ms {
            if self.samples.len() == LATENCY_SAMPLES {
                self.samples.pop_front();
            }
            self.samples.push_back(ms.max(0.0));
        }
    }

    pub(crate) fn record_failure(&mut self) {
        self.record(false);
    }

    /// Lowers validity by `amount` (1.0 takes it to zero) and remembers why.
    pub(crate) fn penalize(&mut self, amount: f64, reason: &str, now_ms: i64) {
        self.penalty = (self.current_penalty(now_ms) + amount).min(1.0);
        self.penalty_updated_ms = now_ms;
        self.last_penalty = Some(PenaltyEvent {
            at_ms: now_ms,
            reason: reason.to_string(),
            amount,
        });
    }

    /// Clears penalties (operator reset). The request history stays.
    pub(crate) fn clear_penalties(&mut self) {
        self.penalty = 0.0;
        self.last_penalty = None;
    }

    pub(crate) fn current_penalty(&self, now_ms: i64) -> f64 {
        let elapsed = (now_ms - self.penalty_updated_ms).max(0) as f64;
        self.penalty * 0.5f64.powf(elapsed / PENALTY_HALF_LIFE_MS)
    }

    /// (min, average, max) round trip over the recent samples.
    pub(crate) fn latency(&self) -> Option<(f64, f64, f64)> {
        if self.samples.is_empty() {
            return None;
        }
        let min = self.samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.samples.iter().copied().fold(0.0, f64::max);
        let avg = self.samples.iter().sum::<f64>() / self.samples.len() as f64;
        Some((min, avg, max))
    }

    /// The score now. A peer never asked anything has success rate 0 (nothing to vouch for it).
    pub(crate) fn breakdown(&self, now_ms: i64) -> QualityBreakdown {
        let success_rate = self.success_rate().unwrap_or(0.0);
        let latency = self.latency();
        // No measurement yet: no latency credit either.
        let latency_score = latency.map(|(_, avg, _)| latency_score(avg)).unwrap_or(0.0);
        let validity = (1.0 - self.current_penalty(now_ms)).clamp(0.0, 1.0);
        let success_points = SUCCESS_WEIGHT * success_rate;
        let latency_points = LATENCY_WEIGHT * latency_score;
        let validity_points = VALIDITY_WEIGHT * validity;
        let score = round2(success_points + latency_points + validity_points);
        QualityBreakdown {
            score,
            rating: if self.total_requests == 0 {
                UNKNOWN_RATING
            } else {
                rating(score)
            },
            success_rate: round4(success_rate),
            success_points: round2(success_points),
            average_latency_ms: latency.map(|l| round4(l.1)),
            min_latency_ms: latency.map(|l| round4(l.0)),
            max_latency_ms: latency.map(|l| round4(l.2)),
            latency_score,
            latency_points: round2(latency_points),
            validity: round4(validity),
            validity_points: round2(validity_points),
            total_requests: self.total_requests,
            successful_requests: self.successful_requests,
            recent_requests: self.recent_len,
            recent_successful_requests: self.recent.count_ones(),
            last_penalty: self.last_penalty.clone(),
        }
    }
}

/// A mask of the `n` lowest bits (`n` up to 32).
fn low_bits(n: u32) -> u32 {
    if n >= 32 { u32::MAX } else { (1 << n) - 1 }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_bands_follow_the_spec() {
        assert_eq!(latency_score(0.3), 1.0);
        assert_eq!(latency_score(49.9), 1.0);
        assert_eq!(latency_score(50.0), 0.8);
        assert_eq!(latency_score(150.0), 0.6);
        assert_eq!(latency_score(499.0), 0.4);
        assert_eq!(latency_score(500.0), 0.2);
    }

    #[test]
    fn ratings_follow_the_spec() {
        assert_eq!(rating(80.0), "Excellent");
        assert_eq!(rating(79.99), "Good");
        assert_eq!(rating(60.0), "Good");
        assert_eq!(rating(40.0), "Fair");
        assert_eq!(rating(39.0), "Poor");
    }

    #[test]
    fn perfect_fast_peer_scores_100_and_components_add_up() {
        let mut q = QualityTracker::default();
        for _ in 0..10 {
            q.record_success(Some(0.4));
        }
        let b = q.breakdown(0);
        assert_eq!(b.score, 100.0);
        assert_eq!(b.rating, "Excellent");
        assert_eq!(
            b.success_points + b.latency_points + b.validity_points,
            b.score
        );
    }

    #[test]
    fn failures_lower_the_success_rate_and_recover() {
        let mut q = QualityTracker::default();
        q.record_success(Some(10.0));
        for _ in 0..5 {
            q.record_failure();
        }
        let low = q.breakdown(0);
        assert!(low.success_rate < 0.6, "{low:?}");
        for _ in 0..50 {
            q.record_success(Some(10.0));
        }
        assert!(q.breakdown(0).success_rate > 0.95);
        assert_eq!(q.total_requests, 56);
        assert_eq!(q.successful_requests, 51);
    }

    #[test]
    fn penalties_explain_themselves_and_decay() {
        let mut q = QualityTracker::default();
        q.record_success(Some(1.0));
        q.penalize(0.5, "served a forged docket", 1_000);
        let now = q.breakdown(1_000);
        assert_eq!(now.validity, 0.5);
        assert_eq!(now.score, 60.0 + 25.0 + 7.5);
        assert_eq!(
            now.last_penalty.as_ref().map(|p| p.reason.as_str()),
            Some("served a forged docket")
        );
        let later = q.breakdown(1_000 + PENALTY_HALF_LIFE_MS as i64);
        assert_eq!(later.validity, 0.75);
        q.clear_penalties();
        assert_eq!(q.breakdown(1_000).validity, 1.0);
    }

    #[test]
    fn an_untried_peer_has_no_unearned_credit() {
        let b = QualityTracker::default().breakdown(0);
        assert_eq!(b.success_points, 0.0);
        assert_eq!(b.latency_points, 0.0);
        assert_eq!(b.score, 15.0);
        assert_eq!(b.rating, UNKNOWN_RATING);
    }

    #[test]
    fn the_success_rate_is_the_ratio_of_the_recent_counts_it_names() {
        // A long, mostly good history, then a bad patch: the rate reflects the bad patch, and
        // the explanation's counts are the ones it was computed from.
        let mut q = QualityTracker::default();
        for _ in 0..3266 {
            q.record_success(Some(1.0));
        }
        for i in 0..34 {
            if i % 3 == 0 {
                q.record_success(Some(1.0));
            } else {
                q.record_failure();
            }
        }
        let b = q.breakdown(0);
        assert_eq!((b.total_requests, b.successful_requests), (3300, 3278));
        assert_eq!(b.recent_requests, SUCCESS_WINDOW);
        assert_eq!(
            b.success_rate,
            round4(f64::from(b.recent_successful_requests) / f64::from(b.recent_requests)),
            "{b:?}"
        );
        assert_eq!(b.success_points, round2(60.0 * b.success_rate), "{b:?}");
        // And across a restart, from the persisted rate.
        let restored =
            QualityTracker::restore(3300, 3278, q.success_rate(), None, 0.0, 0, None).breakdown(0);
        assert_eq!(restored.success_rate, b.success_rate);
        assert_eq!(
            (
                restored.recent_requests,
                restored.recent_successful_requests
            ),
            (b.recent_requests, b.recent_successful_requests)
        );
    }

    #[test]
    fn restored_latency_keeps_its_average() {
        let q = QualityTracker::restore(10, 9, Some(0.9), Some((1.0, 2.0, 4.0)), 0.0, 0, None);
        let (min, avg, max) = q.latency().expect("latency");
        assert_eq!((min, max), (1.0, 4.0));
        assert!((avg - 2.0).abs() < 1e-9);
    }
}
