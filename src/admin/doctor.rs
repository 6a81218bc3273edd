//! `GET /api/doctor`: gathers the facts `service::doctor` judges (readiness, storage and free
//! space, peers' clocks, the announced address, the certificate, replication, risky settings,
//! the data directory's permissions) and answers its findings.

use std::os::unix::fs::PermissionsExt;

use axum::extract::State;

use super::{ApiResult, Shared};
use crate::api::{DoctorDto, FindingDto};
use crate::peers::PeerState;
use crate::service::doctor::{self, Facts, Replication};

pub(super) async fn doctor(State(state): Shared) -> ApiResult<DoctorDto> {
    let (ready, probed) = super::probe(&state, crate::service::health::ProbeKind::Readiness).await;
    let peers = state.manager.list();
    let announced = state.manager.addresses().announcement();
    let ca = state.transport.ca();
    let config = &state.config;
    let facts = Facts {
        ready,
        readiness_reasons: probed.reasons,
        storage_error: probed.storage_error,
        disk_free: disk_free(&config.data_dir),
        clock_offsets_ms: peers
            .iter()
            .filter(|p| p.state == PeerState::Connected)
            .filter_map(|p| p.clock_offset_ms)
            .collect(),
        reachability: announced.reachability.as_str().to_string(),
        address_source: announced.source.as_str().to_string(),
        announced: announced.address,
        peer_tls: config.peer_tls.to_string(),
        certificate: ca.map(|ca| {
            let problem = crate::transport::watch::expiry_problem(
                ca.not_after,
                crate::clock::now_ms() / 1000,
                config.tls_expiry_warning,
            );
            (
                problem,
                crate::clock::to_rfc3339(ca.not_after.saturating_mul(1000)),
            )
        }),
        replication: state
            .registers
            .subscriptions()
            .into_iter()
            .map(|s| Replication {
                register_id: s.register_id,
                state: s.state.as_str().to_string(),
                error: s.error,
                // Unknown until something is held: a forward-only replica starts at the head,
                // so "the whole target" would be an untrue figure.
                behind: s
                    .target_version
                    .zip(s.latest_version)
                    .map(|(target, held)| target.saturating_sub(held)),
            })
            .collect(),
        // A network counts as loopback only when all of it is.
        admin_open_beyond_loopback: config
            .admin_open_cidrs
            .iter()
            .any(|net| !(net.network().is_loopback() && net.broadcast().is_loopback())),
        seeds: config.seeds.len(),
        known_peers: peers.len(),
        file_modes: file_modes(&config.data_dir),
    };
    let findings = doctor::diagnose(&facts);
    Ok(axum::Json(DoctorDto {
        status: doctor::overall(&findings).as_str().to_string(),
        findings: findings
            .into_iter()
            .map(|f| FindingDto {
                item: f.item,
                verdict: f.verdict.as_str().to_string(),
                detail: f.detail,
                fix: f.fix,
            })
            .collect(),
    }))
}

/// Free bytes for an unprivileged writer, and their share of the file system.
fn disk_free(dir: &std::path::Path) -> Option<(u64, f64)> {
    let s = rustix::fs::statvfs(dir).ok()?;
    let free = s.f_bavail.saturating_mul(s.f_frsize);
    let used = s.f_blocks.saturating_sub(s.f_bfree);
    let usable = used.saturating_add(s.f_bavail);
    (usable > 0).then(|| (free, s.f_bavail as f64 / usable as f64 * 100.0))
}

/// The data directory (written with a trailing `/`) and the secrets in it.
fn file_modes(dir: &std::path::Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    if let Ok(meta) = std::fs::metadata(dir) {
        out.push((format!("{}/", dir.display()), meta.permissions().mode()));
    }
    for file in [
        crate::identity::NODE_KEY_FILE,
        crate::identity::ADMIN_TOKEN_FILE,
    ] {
        if let Ok(meta) = std::fs::metadata(dir.join(file)) {
            out.push((file.to_string(), meta.permissions().mode()));
        }
    }
    out
}
