//! The single integration-test binary: real nodes on loopback (no network mocks), the real CLI
//! binary against them, and both storage backends.

mod common;

mod admin_api;
mod admin_auth;
mod admin_host;
mod admin_tls;
mod admin_tokens;
mod bans;
mod catch_up;
mod cli;
mod cluster;
mod connect;
mod dashboard;
mod dashboard_actions;
mod docs;
mod doctor;
mod event_places;
mod events;
mod filtered_events;
mod generated;
mod gossip;
mod handshake;
mod hostile;
mod hygiene;
mod inbound_budget;
mod lag;
mod logging;
mod observability;
mod operator_cli;
mod platform;
mod platform_rest;
mod reachability;
mod references;
mod replication;
mod replication_invariants;
mod schemas;
mod shutdown;
mod storage_faults;
mod storage_health;
mod store;
mod tampering;
mod traces;
mod transport;
mod transport_ca;
mod transport_ca_faults;
