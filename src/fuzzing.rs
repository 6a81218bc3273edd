//! Entry points for the fuzz targets in `fuzz/`: the crate-private checks that stand between
//! outside input and the node. A cargo-fuzz target is another crate and sees only public
//! items, so each function here calls the node's own check unchanged, with errors as text (or
//! as the `tonic::Status` the platform answers with). Not an API: nothing in the node calls it.

use std::net::IpAddr;
use std::time::Duration;

use tonic::Status;

use crate::peers::banlist::{self, BanList};
use crate::peers::{Ban, BanSource, BanTarget};
use crate::platform::pb;
use crate::protocol::{KnownAddress, Recipient};
use crate::store::BanRow;

/// The handshake's check of the other side's `NodeInfo` (`rpc::handshake`): the decoded info
/// and the address the peer is taken to listen on.
pub fn handshake_info(
    node_info: &[u8],
    nonce: &[u8],
    seen_from: IpAddr,
) -> Result<(crate::protocol::pb::NodeInfo, String), String> {
    crate::rpc::handshake::verify_info(node_info, nonce, seen_from).map_err(|e| format!("{e:?}"))
}

/// A ban duration as an operator or the admin API gives it (`service::bans`).
pub fn ban_duration(text: Option<&str>) -> Result<Option<Duration>, String> {
    crate::service::bans::duration(text).map_err(|e| e.to_string())
}

/// A new ban checked as the peer domain checks it: reason length, expiry that fits.
pub fn new_ban(
    target: BanTarget,
    reason: Option<String>,
    duration: Option<Duration>,
    source: BanSource,
    now_ms: i64,
) -> Result<Ban, String> {
    banlist::new_ban(target, reason, duration, source, now_ms).map_err(|e| e.to_string())
}

/// A ban as the store keeps it.
pub fn ban_to_row(ban: &Ban) -> BanRow {
    banlist::ban_to_row(ban)
}

/// A ban read back from the store (a row on disk is outside input too).
pub fn ban_from_row(row: &BanRow) -> Result<Ban, String> {
    banlist::ban_from_row(row).map_err(|e| e.to_string())
}

/// The key of the ban that `text` names in an unban, among `bans`.
pub fn unban_key(bans: Vec<Ban>, text: &str, named: &[String]) -> Result<String, String> {
    let mut list = BanList::default();
    for ban in bans {
        list.insert(ban);
    }
    list.key_for_unban(text, named).map_err(|e| e.to_string())
}

/// `PeerCommunication.SendMessage`'s check of every field.
pub fn platform_message(m: &pb::communication::PeerMessage) -> Result<Recipient, Status> {
    Ok(crate::platform::communication::check(m)?)
}

/// `PeerHeartbeat.SendHeartbeat`'s size checks.
pub fn platform_heartbeat(
    request: &pb::heartbeat::PeerHeartbeatRequest,
    max_registers: usize,
) -> Result<(), Status> {
    Ok(crate::platform::heartbeat::check(request, max_registers)?)
}

/// `PeerDiscovery.RegisterPeer`: a caller's `PeerInfo` as a candidate address.
pub fn platform_candidate(
    info: &pb::discovery::PeerInfo,
    now_ms: i64,
) -> Result<KnownAddress, Status> {
    Ok(crate::platform::convert::candidate(info, now_ms)?)
}

/// `DocketSyncService.SyncDockets`: the range asked for, as (register, next, last, remaining).
pub fn platform_docket_range(
    request: pb::docket_sync::SyncDocketsRequest,
) -> Result<(String, u64, u64, u64), Status> {
    let r = crate::platform::docket_sync::Range::checked(request)?;
    Ok((r.register_id, r.next, r.last, r.remaining))
}

/// A register ID field of a platform request.
pub fn platform_register_id(text: &str) -> Result<&str, Status> {
    Ok(crate::platform::errors::register_id(text)?)
}

/// A transaction ID field of a platform request (64 hex characters).
pub fn platform_tx_id(text: &str) -> Result<[u8; 32], Status> {
    Ok(crate::platform::errors::tx_id("transaction_hash", text)?)
}

/// An ID or name field of a platform request (bounded in length).
pub fn platform_bounded(text: &str) -> Result<&str, Status> {
    Ok(crate::platform::errors::bounded("field", text)?)
}

/// A count field of a platform request that must not be negative.
pub fn platform_non_negative(value: i64) -> Result<u64, Status> {
    Ok(crate::platform::errors::non_negative("field", value)?)
}

/// How many peers a platform request may be answered with (`max_peers`).
pub fn platform_answer_size(asked: i32) -> Result<usize, Status> {
    Ok(crate::platform::errors::answer_size("max_peers", asked)?)
}

/// The admin API's JSON body reading: blank means all defaults.
pub fn admin_json_body<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    crate::admin::json_body(&axum::body::Bytes::copy_from_slice(body)).map_err(|e| e.1)
}

/// The admin and platform listeners' TLS set-up from PEM files.
pub fn tls_server_config(cert: &std::path::Path, key: &std::path::Path) -> Result<(), String> {
    crate::tlsfiles::server_config(cert, key, &[b"h2"])
        .map(drop)
        .map_err(|e| e.to_string())
}
