//! The REST calls the Sorcha platform's services make (`admin/platform.rs` serves them), in the
//! shapes their clients deserialize (`System.Text.Json`: camelCase, unknown fields ignored,
//! integers never null).

use serde::{Deserialize, Serialize};

use super::PeerDto;

/// `GET /api/peers/connected`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedPeersDto {
    pub connected_peer_count: u64,
    pub peers: Vec<PeerDto>,
}

/// One item of `bulk-advertise`, as the Register service sends it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvertisementDto {
    pub register_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_true")]
    pub is_public: bool,
    #[serde(default)]
    pub latest_version: u64,
    #[serde(default)]
    pub latest_docket_version: u64,
}

fn default_true() -> bool {
    true
}

/// `POST /api/registers/bulk-advertise`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkAdvertiseRequest {
    pub advertisements: Vec<AdvertisementDto>,
    #[serde(default)]
    pub full_sync: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkAdvertiseResponse {
    pub processed: u64,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
}

/// `POST /api/registers/{id}/advertise`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvertiseRequest {
    pub is_public: bool,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvertiseResponse {
    pub register_id: String,
    pub is_public: bool,
}

/// `POST /api/internal/peer/distribute/{registerId}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DistributeResponse {
    /// Connected peers that carry the register: the transaction is announced to them (up to
    /// the gossip fanout) and spreads from there to every node that carries it.
    pub target_peer_count: u64,
    /// Nodes known to hold the transaction when this answer is sent: 1 (this node) once it
    /// is stored or was held already.
    pub accepted_count: u64,
    /// This node's ID for the submission (hex SHA-256 of the body).
    pub transaction_id: String,
}
