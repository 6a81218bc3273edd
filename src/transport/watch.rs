//! CA mode's upkeep for the node's life. The revocation list is re-read when its file
//! changes: a good one disconnects the connected peers it revokes at once (new connections
//! are checked against it by the verifier); a bad one is refused, the previous list stays in
//! force, and the problem is logged, counted and shown in health and status until a good
//! file arrives. A session ends when the peer's certificate or this node's own expires; this
//! node's expiry is exported as a metric and warned about as it nears.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use super::{Transport, ca};
use crate::clock::now_ms;
use crate::peers::PeerManager;
use crate::tasks::Service;
use crate::telemetry::Metrics;

/// How often the revocation list's file is looked at (a `stat`, nothing read unless changed).
const CRL_POLL: Duration = Duration::from_secs(1);
/// Least time between two warnings that this node's certificate is about to expire.
const EXPIRY_WARNING_REPEAT: Duration = Duration::from_secs(6 * 3600);
/// Most peer certificates remembered (only CA-issued certificates get here, so this bounds
/// only a very large network).
const MAX_REMEMBERED_CERTIFICATES: usize = 65_536;

/// What this node knows of one connected peer's certificate.
struct PeerCertificate {
    serial: Vec<u8>,
    /// Unix seconds of its notAfter.
    not_after: i64,
}

/// CA mode's moving parts: the verifier whose revocation lists are replaced when the file
/// changes, this node's certificate expiry, the certificate each peer proved itself with (to
/// find the connected peers a new list revokes or whose certificate expires), and why the
/// revocation list file was last refused.
pub struct CaState {
    pub verifier: Arc<ca::CaVerifier>,
    pub crl_file: Option<PathBuf>,
    /// Unix seconds of this node's certificate's notAfter.
    pub not_after: i64,
    peers: Mutex<HashMap<String, PeerCertificate>>,
    crl_problem: Mutex<Option<String>>,
}

/// True once a certificate valid until `not_after` (inclusive, unix seconds) has expired, as
/// webpki judges it (so a peer closed at expiry is refused when it dials again).
fn has_expired(not_after: i64, now_secs: i64) -> bool {
    now_secs > not_after
}

impl CaState {
    pub fn new(verifier: Arc<ca::CaVerifier>, crl_file: Option<PathBuf>, not_after: i64) -> Self {
        CaState {
            verifier,
            crl_file,
            not_after,
            peers: Mutex::new(HashMap::new()),
            crl_problem: Mutex::new(None),
        }
    }

    /// Notes the certificate `peer` proved itself with on a new connection.
    pub(super) fn note_peer(&self, peer: String, certificate: &CertificateDer<'_>) {
        let (Some(serial), Some(not_after)) =
            (ca::serial_of(certificate), ca::not_after_of(certificate))
        else {
            return;
        };
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() < MAX_REMEMBERED_CERTIFICATES || peers.contains_key(&peer) {
            peers.insert(peer, PeerCertificate { serial, not_after });
        }
    }

    /// The peers among `connected` whose certificate the current revocation lists revoke;
    /// forgets the certificates of peers no longer connected.
    pub fn revoked_among(&self, connected: &HashSet<String>) -> Vec<String> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.retain(|peer, _| connected.contains(peer));
        peers
            .iter()
            .filter(|(_, cert)| self.verifier.is_revoked(&cert.serial))
            .map(|(peer, _)| peer.clone())
            .collect()
    }

    /// The peers among `connected` whose certificate has expired at `now_secs`, with its
    /// notAfter; forgets the certificates of peers no longer connected.
    fn expired_among(&self, connected: &HashSet<String>, now_secs: i64) -> Vec<(String, i64)> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.retain(|peer, _| connected.contains(peer));
        peers
            .iter()
            .filter(|(_, cert)| has_expired(cert.not_after, now_secs))
            .map(|(peer, cert)| (peer.clone(), cert.not_after))
            .collect()
    }

    /// The next notAfter (unix seconds) among the connected peers' certificates and this
    /// node's own that has not passed yet.
    fn next_expiry(&self, now_secs: i64) -> Option<i64> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .values()
            .map(|cert| cert.not_after)
            .chain([self.not_after])
            .filter(|&not_after| !has_expired(not_after, now_secs))
            .min()
    }

    /// Why the revocation list file was last refused, while the previous list stands in.
    pub fn crl_problem(&self) -> Option<String> {
        self.crl_problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_crl_problem(&self, problem: Option<String>) {
        *self.crl_problem.lock().unwrap_or_else(|p| p.into_inner()) = problem;
    }
}

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
pub(crate) fn expiry_problem(
    not_after_secs: i64,
    now_secs: i64,
    warning: Duration,
) -> Option<String> {
    if has_expired(not_after_secs, now_secs) {
        return Some(
            "this node's peer TLS certificate (tls_cert_file) has expired: its peers have closed its sessions and refuse new ones; issue a new one with `sorcha-peer tls issue` and restart".into(),
        );
    }
    let left = not_after_secs.saturating_sub(now_secs);
    let left = Duration::from_secs(u64::try_from(left).unwrap_or(0));
    (left <= warning).then(|| {
        format!(
            "this node's peer TLS certificate (tls_cert_file) expires in {}: issue a new one with `sorcha-peer tls issue` and restart",
            crate::clock::short_duration(left)
        )
    })
}

/// How long until the first instant `not_after` counts as expired.
fn until_expired(not_after: i64) -> Duration {
    let at_ms = not_after.saturating_add(1).saturating_mul(1000);
    Duration::from_millis(u64::try_from(at_ms.saturating_sub(now_ms())).unwrap_or(0))
}

/// The watch, as a node service: it closes sessions through the peer facade.
pub(crate) struct CertificateWatch {
    pub transport: Arc<Transport>,
    pub peers: Arc<PeerManager>,
    pub metrics: Arc<Metrics>,
    /// How long before this node's certificate expires it starts warning (`tls_expiry_warning`).
    pub warning: Duration,
}

impl Service for CertificateWatch {
    const NAME: &'static str = "certificate watch";

    async fn run(self, shutdown: CancellationToken) {
        run(self, shutdown).await;
    }
}

/// Runs until `shutdown` (returns at once unless in CA mode).
async fn run(watch: CertificateWatch, shutdown: CancellationToken) {
    let CertificateWatch {
        transport,
        peers,
        metrics,
        warning,
    } = watch;
    let Some(ca) = transport.ca() else {
        return;
    };
    metrics.tls_certificate_expiry.set(ca.not_after);
    let mut seen = ca.crl_file.as_deref().and_then(stamp);
    let mut warned: Option<Instant> = None;
    let mut own_expiry_told = false;
    let mut tick = tokio::time::interval(CRL_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Wake at the next expiry too, so a session ends when its certificate does.
        let next_expiry = ca.next_expiry(now_ms() / 1000).map(until_expired);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = tokio::time::sleep(next_expiry.unwrap_or(CRL_POLL)), if next_expiry.is_some() => {}
        }
        let now_secs = now_ms() / 1000;
        end_expired_sessions(ca, &peers, &metrics, now_secs, &mut own_expiry_told);
        if let Some(problem) = expiry_problem(ca.not_after, now_secs, warning)
            && !has_expired(ca.not_after, now_secs)
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
        reload_crl(ca, &peers, &metrics, path);
    }
}

/// Closes the sessions whose peer certificate has expired. Once this node's own has expired it
/// only says so: its peers check the same notAfter and close those sessions, saying why. If both
/// sides closed, which one logged the reason would depend on which woke first.
fn end_expired_sessions(
    ca: &CaState,
    peers: &PeerManager,
    metrics: &Metrics,
    now_secs: i64,
    told: &mut bool,
) {
    if has_expired(ca.not_after, now_secs) {
        if !*told {
            tracing::error!(
                expired_at = %crate::clock::to_rfc3339(ca.not_after.saturating_mul(1000)),
                "this node's peer TLS certificate (tls_cert_file) has expired: its peers close its sessions and refuse new connections until a new certificate is issued (`sorcha-peer tls issue`) and the node restarted"
            );
            *told = true;
        }
        return;
    }
    for (peer, not_after) in ca.expired_among(&peers.connected_ids(), now_secs) {
        tracing::warn!(
            %peer,
            expired_at = %crate::clock::to_rfc3339(not_after.saturating_mul(1000)),
            "closing the session with a peer whose TLS certificate expired"
        );
        metrics.tls_sessions_expired.inc();
        peers.close_session(&peer, "its TLS certificate expired");
    }
}

/// Takes the revocation list file if the CA signed it, and disconnects the peers it revokes;
/// otherwise keeps the previous list and says why, loudly, until a good file arrives.
fn reload_crl(ca: &CaState, peers: &PeerManager, metrics: &Metrics, path: &Path) {
    match ca.verifier.read_crls(path) {
        Ok(crls) => {
            ca.verifier.set_crls(crls);
            if ca.crl_problem().is_some() {
                tracing::info!(file = %path.display(), "the revocation list is usable again");
            }
            ca.set_crl_problem(None);
            let revoked = ca.revoked_among(&peers.connected_ids());
            tracing::info!(file = %path.display(), revoked_connected = revoked.len(), "revocation list re-read");
            for peer in revoked {
                tracing::warn!(%peer, "disconnecting a peer whose certificate is revoked");
                metrics.transport_refused("inbound", "revoked");
                peers.close_session(&peer, "its TLS certificate is revoked");
            }
        }
        Err(e) => {
            tracing::error!(
                "refusing the new revocation list, the previous one stays in force: {e}"
            );
            metrics.tls_crl_reload_failures.inc();
            ca.set_crl_problem(Some(format!(
                "the revocation list was refused, the previous one stays in force: {e}"
            )));
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
        // notAfter is the last valid second: expired only after it.
        let last = expiry_problem(day, day, warning).expect("within the warning");
        assert!(last.contains("expires in"), "{last}");
        let gone = expiry_problem(0, day, warning).expect("expired");
        assert!(gone.contains("has expired"), "{gone}");
    }
}
