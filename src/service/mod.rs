//! Application services: the policies that span domains, so the edges only translate.
//! `admin/` turns HTTP into calls here and the answers into JSON; `rpc/` turns session events
//! into calls here. Each service names the rule it owns:
//!
//! - [`advertisements`]: the registers the platform's Register service reports holding (kept
//!   for the platform and the operator; never advertised to peers as held here).
//! - [`bans`]: an operator ban, with the guards that need more than the peer domain (a ban
//!   must not cut this node off from the only source of a subscribed register).
//! - [`health`]: how healthy the node and its peers are (status, rating counts, the healthy
//!   share).
//! - [`lag`]: replication lag against another node, asked over the peer protocol through a
//!   [`lag::HeightsProbe`] the network edge provides.
//! - [`liveness`]: when a silent peer is disconnected and what a protocol violation costs it.
//! - [`metrics`]: the gauges read from the owners when `/metrics` is scraped.
//! - [`rates`]: rates shown to the operator (transactions per second), over a fixed window of
//!   samples taken on the node.
//! - [`reachability`]: keeping the announced address current (dial-backs of what peers
//!   observe, interface, STUN, HTTP) through an [`reachability::AddressProbe`] the
//!   `netprobe` edge provides.
//! - [`registers`]: the registers on offer (peers' advertisements, the public ones held here,
//!   the Register service's names) and a platform submission with the peers it reaches.

pub mod advertisements;
pub(crate) mod bans;
pub(crate) mod connect;
pub(crate) mod doctor;
pub(crate) mod health;
pub mod lag;
pub(crate) mod liveness;
pub(crate) mod metrics;
pub(crate) mod rates;
pub(crate) mod reachability;
pub(crate) mod registers;
