//! `PeerHeartbeat`: answers with this node's registers (versions and advertisements, private
//! ones too: the platform owns them) and its health (connections, CPU %, memory MB, disk %,
//! registers, pending syncs, uptime). What a caller says about itself is checked for size and
//! not taken: no peer record changes on a claim. Timestamps are unix milliseconds.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::PlatformDeps;
use super::errors::{self, PlatformError};
use super::pb::heartbeat as pb;
use crate::clock::now_ms;
use crate::replication::{RegisterView, Role, SyncState};
use crate::telemetry::process::ProcessFigures;

/// Longest register description accepted in a heartbeat, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 1024;

#[derive(Clone)]
pub(crate) struct Heartbeat {
    deps: PlatformDeps,
    /// The previous CPU reading (when, process CPU seconds), for CPU % since then.
    cpu: Arc<Mutex<Option<(Instant, f64)>>>,
}

impl Heartbeat {
    pub(crate) fn new(deps: PlatformDeps) -> Heartbeat {
        Heartbeat {
            deps,
            cpu: Arc::new(Mutex::new(None)),
        }
    }

    /// The answer to one heartbeat, once the request passed [`check`].
    fn answer(
        &self,
        request: &pb::PeerHeartbeatRequest,
    ) -> Result<pb::PeerHeartbeatResponse, PlatformError> {
        check(request, self.deps.config.max_registers)?;
        let registers = self.deps.registers.list();
        let register_versions: HashMap<String, i64> = registers
            .iter()
            .map(|r| (r.register_id.clone(), to_i64(r.latest_version)))
            .collect();
        Ok(pb::PeerHeartbeatResponse {
            success: true,
            peer_id: self.deps.peer_id.clone(),
            timestamp: now_ms(),
            register_versions,
            metrics: Some(self.metrics(registers.len())),
            advertised_registers: registers.iter().map(|r| self.advertisement(r)).collect(),
            message: String::new(),
        })
    }

    fn advertisement(&self, r: &RegisterView) -> pb::RegisterAdvertisement {
        pb::RegisterAdvertisement {
            register_id: r.register_id.clone(),
            sync_state: self.sync_state(r).into(),
            latest_version: to_i64(r.latest_version),
            latest_docket_version: to_i64(r.height),
            is_public: r.is_public,
            // A register's name is its ID here; it has no description.
            name: r.register_id.clone(),
            description: String::new(),
        }
    }

    /// The origin holds the whole chain (fully replicated); a replica is in its
    /// subscription's state, or unknown once unsubscribed.
    fn sync_state(&self, r: &RegisterView) -> pb::SyncStateProto {
        if r.role == Role::Origin {
            return pb::SyncStateProto::FullyReplicated;
        }
        match self
            .deps
            .registers
            .subscription(&r.register_id)
            .map(|s| s.state)
        {
            Some(SyncState::Subscribing) => pb::SyncStateProto::Subscribing,
            Some(SyncState::Syncing) => pb::SyncStateProto::Syncing,
            Some(SyncState::FullyReplicated) => pb::SyncStateProto::FullyReplicated,
            Some(SyncState::Active) => pb::SyncStateProto::Active,
            Some(SyncState::Error) => pb::SyncStateProto::Error,
            None => pb::SyncStateProto::Unknown,
        }
    }

    fn metrics(&self, register_count: usize) -> pb::PeerHealthMetrics {
        let pending = self
            .deps
            .registers
            .subscriptions()
            .iter()
            .filter(|s| matches!(s.state, SyncState::Subscribing | SyncState::Syncing))
            .count();
        let process = ProcessFigures::read();
        let uptime = self.deps.started.elapsed();
        pb::PeerHealthMetrics {
            active_connections: to_i32(self.deps.peers.connection_count()),
            cpu_usage_percent: process
                .cpu_seconds
                .map_or(0.0, |cpu| self.cpu_percent(cpu, uptime.as_secs_f64())),
            memory_usage_mb: process
                .resident_bytes
                .map_or(0.0, |b| b as f64 / (1024.0 * 1024.0)),
            disk_usage_percent: disk_percent(&self.deps.config.data_dir).unwrap_or(0.0),
            register_count: to_i32(register_count),
            pending_syncs: to_i32(pending),
            is_syncing: pending > 0,
            uptime_seconds: i64::try_from(uptime.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Process CPU % (of one core) since the previous reading, or since start for the first.
    fn cpu_percent(&self, cpu_seconds: f64, uptime_seconds: f64) -> f64 {
        let now = Instant::now();
        let mut last = self.cpu.lock().unwrap_or_else(|p| p.into_inner());
        let (used, over) = match *last {
            Some((at, cpu)) => (cpu_seconds - cpu, now.duration_since(at).as_secs_f64()),
            None => (cpu_seconds, uptime_seconds),
        };
        *last = Some((now, cpu_seconds));
        if over <= 0.0 {
            return 0.0;
        }
        (used / over * 100.0).max(0.0)
    }
}

/// The sizes of what a caller sent (none of it is stored).
pub(crate) fn check(
    request: &pb::PeerHeartbeatRequest,
    max_registers: usize,
) -> Result<(), PlatformError> {
    errors::bounded("peer_id", &request.peer_id)?;
    errors::bounded("build_version", &request.build_version)?;
    for (field, count) in [
        ("register_versions", request.register_versions.len()),
        ("advertised_registers", request.advertised_registers.len()),
    ] {
        if count > max_registers {
            return Err(PlatformError::TooMany {
                field,
                count,
                max: max_registers,
            });
        }
    }
    for id in request.register_versions.keys() {
        errors::bounded("register_versions key", id)?;
    }
    for ad in &request.advertised_registers {
        errors::bounded("advertised_registers.register_id", &ad.register_id)?;
        errors::bounded("advertised_registers.name", &ad.name)?;
        if ad.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(PlatformError::TooLong {
                field: "advertised_registers.description",
                len: ad.description.len(),
                max: MAX_DESCRIPTION_BYTES,
            });
        }
    }
    Ok(())
}

/// Use of the file system holding the data directory, as `df` counts it (space reserved for
/// root left out).
fn disk_percent(path: &std::path::Path) -> Option<f64> {
    let s = rustix::fs::statvfs(path).ok()?;
    let used = s.f_blocks.saturating_sub(s.f_bfree);
    let usable = used.saturating_add(s.f_bavail);
    (usable > 0).then(|| used as f64 / usable as f64 * 100.0)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::PeerHeartbeatResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::peer_heartbeat_server::PeerHeartbeat for Heartbeat {
    async fn send_heartbeat(
        &self,
        request: Request<pb::PeerHeartbeatRequest>,
    ) -> Result<Response<pb::PeerHeartbeatResponse>, Status> {
        Ok(Response::new(self.answer(request.get_ref())?))
    }

    type StreamHeartbeatStream = ResponseStream;

    /// One answer per heartbeat received; a malformed one ends the stream with its status
    /// (tonic ends a response stream at its first error).
    async fn stream_heartbeat(
        &self,
        request: Request<Streaming<pb::PeerHeartbeatRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let this = self.clone();
        let answers = request
            .into_inner()
            .map(move |received| received.and_then(|hb| this.answer(&hb).map_err(Status::from)));
        Ok(Response::new(Box::pin(answers)))
    }
}
