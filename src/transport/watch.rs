//! CA mode's upkeep for the node's life: the revocation list is re-read when its file changes
//! and the connected peers it revokes are disconnected at once (new connections are checked
//! against it by the verifier); this node's own certificate expiry is exported as a metric and
//! warned about as it nears.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Transport, ca};
use crate::clock::now_ms;
use crate::peers::PeerManager;

/// How often the revocation list's file is looked at (a `stat`, nothing read unless changed).
const CRL_POLL: Duration = Duration::from_secs(1);
/// Least time between two warnings that this node's certificate is about to expire.
const EXPIRY_WARNING_REPEAT: Duration = Duration::from_secs(6 * 3600);

/// What identifies one version of a file: a new file renamed over it, or a rewrite, changes it.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
struct Stamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// Why this node's certificate needs attention, if it does: `Some` within `warning` of its
/// expiry, and once expired.
pub fn expiry_problem(not_after_secs: i64, now_secs: i64, warning: Duration) -> Option<String> {
    let left = not_after_secs.saturating_sub(now_secs);
    if left <= 0 {
        return Some(
            "this node's peer TLS certificate (tls_cert_file) has expired: peers refuse it; issue a new one with `sorcha-peer tls issue`".into(),
        );
    }
    let left = Duration::from_secs(u64::try_from(left).unwrap_or(0));
    (left <= warning).then(|| {
        format!(
            "this node's peer TLS certificate (tls_cert_file) expires in {}: issue a new one with `sorcha-peer tls issue` and restart",
            crate::clock::short_duration(left)
        )
    })
}

/// Runs until `shutdown` (returns at once unless in CA mode).
pub async fn run(transport: Arc<Transport>, peers: Arc<PeerManager>, shutdown: CancellationToken) {
    let Some(ca) = transport.ca() else {
        return;
    };
    peers.metrics().tls_certificate_expiry.set(ca.not_after);
    let warning = peers.config().tls_expiry_warning;
    let mut seen = ca.crl_file.as_deref().and_then(stamp);
    let mut warned: Option<Instant> = None;
    let mut tick = tokio::time::interval(CRL_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(problem) = expiry_problem(ca.not_after, now_ms() / 1000, warning)
            && warned.is_none_or(|at| at.elapsed() >= EXPIRY_WARNING_REPEAT)
        {
            tracing::warn!("{problem}");
            warned = Some(Instant::now());
        }
        let Some(path) = ca.crl_file.as_deref() else {
            continue;
        };
        let now = stamp(path);
        if now == seen {
            continue;
        }
        seen = now;
        match ca::read_crls(path) {
            Ok(crls) => {
                ca.verifier.set_crls(crls);
                let revoked = ca.revoked_among(&peers.connected_ids());
                tracing::info!(file = %path.display(), revoked_connected = revoked.len(), "revocation list re-read");
                for peer in revoked {
                    tracing::warn!(%peer, "disconnecting a peer whose certificate is revoked");
                    peers.metrics().transport_refused("inbound", "revoked");
                    peers.close_session(&peer, "its TLS certificate is revoked");
                }
            }
            Err(e) => {
                tracing::warn!("cannot re-read the revocation list, keeping the previous one: {e}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_told_within_the_warning_and_after() {
        let day = 86_400;
        let warning = Duration::from_secs(30 * day as u64);
        assert_eq!(expiry_problem(100 * day, 0, warning), None);
        let soon = expiry_problem(10 * day, 0, warning).expect("within the warning");
        assert!(soon.contains("expires in 10d"), "{soon}");
        let gone = expiry_problem(0, day, warning).expect("expired");
        assert!(gone.contains("has expired"), "{gone}");
    }
}
