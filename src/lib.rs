//! sorcha-peer: a peer-to-peer node for Sorcha registers and the operator CLI that manages it.
//!
//! The binary (`src/main.rs`) is a thin shell over this library: `serve` builds a [`node::Node`]
//! and every other subcommand talks to a node's admin API through [`client::AdminClient`].

pub mod admin;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod gossip;
pub mod identity;
pub mod ledger;
pub mod lockfile;
pub mod logsink;
pub mod node;
pub mod peers;
pub mod replication;
pub mod rpc;
pub mod service;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod text;
pub mod txpool;

/// The software version reported in the handshake, `status` and `/api/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
