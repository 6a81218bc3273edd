//! sorcha-peer: a peer-to-peer node for Sorcha registers and the operator CLI that manages it.
//!
//! The binary (`src/main.rs`) is a thin shell over this library: `serve` builds a [`node::Node`]
//! and every other subcommand talks to a node's admin API through [`client::AdminClient`].

// An item the library's public surface cannot reach says so: `pub(crate)`, not `pub`
// (the test and bench crates are binaries, where the lint means nothing).
#![warn(unreachable_pub)]

pub mod admin;
pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod gossip;
pub mod identity;
pub mod ledger;
pub(crate) mod lockfile;
pub(crate) mod logsink;
pub mod messages;
pub(crate) mod netprobe;
pub mod node;
pub mod peers;
pub mod platform;
#[cfg(test)]
mod props;
pub mod protocol;
pub(crate) mod reachability;
pub mod replication;
pub mod rpc;
pub mod service;
pub mod store;
pub(crate) mod tasks;
pub mod telemetry;
pub(crate) mod text;
pub(crate) mod tlsfiles;
pub mod transport;
pub(crate) mod txpool;

/// The software version reported in the handshake, `status` and `/api/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binary was built from (short hash), or "unknown" when built outside a git
/// checkout (see build.rs).
pub const COMMIT: &str = env!("SORCHA_BUILD_COMMIT");

/// `0.1.0 (abc1234)`: what `--version` and `sorcha-peer version` print after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SORCHA_BUILD_COMMIT"),
    ")"
);
