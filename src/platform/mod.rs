//! The platform interface: the original peer service's six gRPC services, served to the Sorcha
//! platform's own services (Register service, Validator, gateway) on `platform_listen`, never
//! on the peer port. An edge: it checks and translates protobuf ⇄ domain and answers from the
//! node's real state through the dependencies it is built with ([`PlatformDeps`]).
//!
//! - [`listener`]: the accept loop (`platform_allowed_cidrs` before any byte, TLS in a task of
//!   its own when configured) and the tonic server;
//! - [`stream`]: an admitted connection, under the connection caps and the preface deadline;
//! - [`tls`]: the certificate and key (`platform_tls_*`), ALPN h2, no client certificate;
//! - [`auth`]: `platform_require_jwt`, through the admin API's JWT verification;
//! - [`docket_sync`] with [`records`] (dockets as the platform's transaction records),
//!   [`discovery`], [`heartbeat`], [`register_sync`] with [`live`] (`SubscribeToRegister`),
//!   [`transactions`] (`TransactionDistribution`), [`communication`] (messages across the
//!   overlay, through `crate::messages`): all six services are served;
//! - [`errors`]: every refusal, mapped to a `tonic::Status` in one place.

pub(crate) mod auth;
pub(crate) mod communication;
pub(crate) mod convert;
pub(crate) mod discovery;
pub(crate) mod docket_sync;
pub(crate) mod errors;
pub(crate) mod heartbeat;
pub(crate) mod listener;
pub(crate) mod live;
pub(crate) mod records;
pub(crate) mod register_sync;
pub(crate) mod stream;
pub(crate) mod tls;
pub(crate) mod transactions;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::admin::auth::Authenticator;
use crate::config::Config;
use crate::peers::PeerManager;
use crate::replication::Registers;
use crate::tasks::Tasks;
use crate::telemetry::Metrics;

pub(crate) use listener::PlatformServer;
pub use tls::PlatformTlsError;
pub(crate) use tls::server_config;

/// Generated code for the original's six services (`proto/sorcha/platform`), with the
/// original's package names. Public so tests and tools can be platform clients.
// tonic-build writes each service's routing as one long match: generated, not ours to split.
#[allow(clippy::too_many_lines)]
pub mod pb {
    /// `DocketSyncService` (package `sorcha.peer`).
    pub mod docket_sync {
        tonic::include_proto!("sorcha.peer");
    }
    /// `PeerDiscovery`.
    pub mod discovery {
        tonic::include_proto!("sorcha.peer.discovery");
    }
    /// `PeerHeartbeat`.
    pub mod heartbeat {
        tonic::include_proto!("sorcha.peer.heartbeat");
    }
    /// `PeerCommunication`.
    pub mod communication {
        tonic::include_proto!("sorcha.peer.communication");
    }
    /// `RegisterSync`.
    pub mod sync {
        tonic::include_proto!("sorcha.peer.sync");
    }
    /// `TransactionDistribution`.
    pub mod transaction {
        tonic::include_proto!("sorcha.peer.transaction");
    }
}

/// Largest request message accepted from a platform client: its requests are IDs, counts and
/// short lists (a heartbeat with a thousand register versions is about 80 KiB).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Largest response message sent (a docket with its records; see [`records`]).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Connections open at once on the platform listener (the platform runs a few services).
pub const MAX_CONNECTIONS: usize = 64;
/// Connections open at once from one client IP address.
pub const MAX_CONNECTIONS_PER_IP: usize = 16;
/// HTTP/2 streams one platform connection may have open at once.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 32;
/// Largest HTTP/2 header block accepted (a JWT is well under this).
pub const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// Longest ID or name field accepted from a platform client, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Most peers in one answer (`max_peers` above it is cut to it; 0 asks for this many).
pub const MAX_PEERS_PER_ANSWER: usize = 100;

/// The platform listener's settings (the `platform_*` keys and what its answers need).
#[derive(Clone, Debug)]
pub(crate) struct PlatformConfig {
    pub allowed: Vec<IpNet>,
    pub require_jwt: bool,
    /// How long a connection may stay silent before its HTTP/2 preface (`connect_timeout`).
    pub preface_timeout: Duration,
    /// Where the node keeps its data (the disk whose use a heartbeat reports).
    pub data_dir: PathBuf,
    /// Most entries taken from, and handed to, one peer exchange (`exchange_max_entries`).
    pub exchange_max_entries: usize,
    /// Most register entries accepted in one heartbeat (`max_advertised_registers`).
    pub max_registers: usize,
    /// Largest transaction payload accepted (`max_transaction_size`).
    pub max_transaction_size: usize,
}

impl PlatformConfig {
    /// The settings, or `None` when `platform_listen` is unset (the listener is off).
    pub(crate) fn from_config(config: &Config) -> Option<PlatformConfig> {
        config.platform_listen?;
        Some(PlatformConfig {
            allowed: config.platform_allowed_cidrs.clone(),
            require_jwt: config.platform_require_jwt,
            preface_timeout: config.connect_timeout,
            data_dir: config.data_dir.clone(),
            exchange_max_entries: config.exchange_max_entries,
            max_registers: config.max_advertised_registers,
            max_transaction_size: config.max_transaction_size,
        })
    }
}

/// What the platform services are built from.
#[derive(Clone)]
pub(crate) struct PlatformDeps {
    pub config: Arc<PlatformConfig>,
    /// This node's peer ID (what it answers as).
    pub peer_id: String,
    pub peers: Arc<PeerManager>,
    pub registers: Arc<Registers>,
    /// Platform messages across the overlay (`PeerCommunication`).
    pub messages: Arc<crate::messages::Messages>,
    pub metrics: Arc<Metrics>,
    /// The admin API's credential checks (JWTs with the node's `jwt_key`).
    pub auth: Arc<Authenticator>,
    pub tasks: Tasks,
    /// When the node started (uptime in heartbeats).
    pub started: Instant,
}
