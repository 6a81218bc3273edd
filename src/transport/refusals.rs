//! The side that refuses a connection says so in its log, with the reason: the other side
//! often learns no more than "transport error". A peer dialling in a loop must not fill the
//! log, so each remote address, direction and reason is logged at most once per
//! [`REFUSAL_LOG_INTERVAL`] (the refusal metric still counts every one).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time between two log lines for the same remote address and reason.
pub(crate) const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Most (address, direction, reason) remembered; when all are recent, further refusals are
/// not logged until some age out.
const MAX_REMEMBERED_REFUSALS: usize = 4096;

type Key = (IpAddr, &'static str, &'static str);

/// When each (remote address, direction, reason) was last logged.
#[derive(Default)]
pub struct RefusalLog {
    last: Mutex<HashMap<Key, Instant>>,
}

impl RefusalLog {
    /// Whether a refusal of `ip` in `direction` (`inbound`, `outbound`) for `reason` should be
    /// logged now (and notes that it is).
    pub fn allow(&self, ip: IpAddr, direction: &'static str, reason: &'static str) -> bool {
        self.allow_at((ip, direction, reason), Instant::now())
    }

    fn allow_at(&self, key: Key, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let recent = |at: &Instant| now.saturating_duration_since(*at) < REFUSAL_LOG_INTERVAL;
        if last.get(&key).is_some_and(recent) {
            return false;
        }
        if last.len() >= MAX_REMEMBERED_REFUSALS {
            last.retain(|_, at| recent(at));
            if last.len() >= MAX_REMEMBERED_REFUSALS {
                return false;
            }
        }
        last.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_and_reason_is_logged_once_per_interval() {
        let log = RefusalLog::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        let bad = |ip| (ip, "inbound", "bad_certificate");
        assert!(log.allow_at(bad(a), start));
        assert!(!log.allow_at(bad(a), start + Duration::from_secs(1)));
        assert!(log.allow_at((a, "inbound", "tls_handshake"), start));
        assert!(log.allow_at((a, "outbound", "bad_certificate"), start));
        assert!(log.allow_at(bad(b), start));
        assert!(log.allow_at(bad(a), start + REFUSAL_LOG_INTERVAL));
    }

    #[test]
    fn the_memory_is_bounded() {
        let log = RefusalLog::default();
        let start = Instant::now();
        for i in 0..MAX_REMEMBERED_REFUSALS as u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            assert!(log.allow_at((ip, "inbound", "bad_certificate"), start));
        }
        let one_more = (
            IpAddr::from(u32::MAX.to_be_bytes()),
            "inbound",
            "bad_certificate",
        );
        assert!(!log.allow_at(one_more, start));
        assert!(log.allow_at(one_more, start + REFUSAL_LOG_INTERVAL));
        assert!(log.last.lock().unwrap().len() <= MAX_REMEMBERED_REFUSALS);
    }
}
