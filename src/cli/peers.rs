//! `sorcha-peer status` and `sorcha-peer peers …`.

use clap::{Subcommand, ValueEnum};

use super::output::{Details, NONE, Output, cell, cell_or_none, col, latency, relative};
use crate::api::{BanDto, PeerDto, QualityComponentsDto, StatusDto};
use crate::client::{AdminClient, ClientError};

#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    /// List known peers
    List {
        /// Only peers in this state
        #[arg(long, value_enum, default_value_t = StateFilter::All)]
        state: StateFilter,
        /// Show at most N peers
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Order of the list
        #[arg(long, value_enum, default_value_t = SortKey::Id)]
        sort: SortKey,
        /// Keep the list on screen, redrawn when peers connect, go or are banned (and every
        /// 2s), until Ctrl-C
        #[arg(short, long)]
        watch: bool,
    },
    /// Show one peer in detail, including why its quality score is what it is
    Get {
        /// Peer ID, a unique prefix of it, or the peer's name
        peer: String,
    },
    /// Ban a peer (by ID, unique ID prefix or name), or every peer at an IP address or CIDR
    /// subnet
    Ban {
        /// Peer ID, unique ID prefix or peer name, IP address, or CIDR subnet (e.g. 10.0.0.0/8)
        target: String,
        /// Why (shown in `peers bans` and `peers get`)
        #[arg(long)]
        reason: Option<String>,
        /// How long, e.g. 30m, 1h, 7d; at most 100y [default: until unbanned]
        #[arg(long, value_parser = parse_ban_duration_arg, value_name = "DURATION")]
        duration: Option<String>,
        /// Ban even if it is the only source of an active subscription, this node's own ID or
        /// address, or a subnet that covers almost everyone (shorter than /8, or /16 for IPv6)
        #[arg(long)]
        force: bool,
    },
    /// Lift a ban
    Unban {
        /// Peer ID, unique ID prefix or peer name, IP address, or CIDR subnet, as banned
        target: String,
    },
    /// Set a peer's failure count and penalties to zero (reports the previous count)
    Reset {
        /// Peer ID, a unique prefix of it, or the peer's name
        peer: String,
    },
    /// List bans in force, with time remaining
    Bans,
    /// Dial a node once, now, and print the peer ID reached (or say why not)
    ///
    /// Like bitcoin-cli's `addnode HOST:PORT onetry`: the address is not added to the seeds;
    /// the peer is then known like any other, so the node may dial it again later.
    Connect {
        /// The node's peer-protocol address
        #[arg(value_name = "HOST:PORT")]
        address: String,
    },
    /// Close the session with a peer without banning it
    ///
    /// Like bitcoin-cli's `disconnectnode`: the peer may connect again, and this node may dial
    /// it again to fill its outbound slots; `peers ban` keeps it away.
    Disconnect {
        /// Peer ID, a unique prefix of it, or the peer's name
        peer: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    Connected,
    Connecting,
    Disconnected,
    Banned,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    Id,
    Name,
    Address,
    State,
    Latency,
    Score,
    Failures,
    LastSeen,
    FirstSeen,
}

/// Validates a duration at parse time, so a bad one is a usage error (exit 2).
pub(crate) fn parse_duration_arg(text: &str) -> Result<String, crate::clock::InvalidDuration> {
    crate::clock::parse_duration(text)?;
    Ok(text.to_string())
}

/// Validates a ban duration at parse time, so a bad or too long one is a usage error (exit 2)
/// and nothing is sent to the node.
fn parse_ban_duration_arg(text: &str) -> Result<String, BanDurationArgError> {
    let duration = crate::clock::parse_duration(text)?;
    crate::peers::bans::check_duration(duration)?;
    Ok(text.to_string())
}

/// Why a `--duration` given to `peers ban` is refused.
#[derive(Debug, thiserror::Error)]
enum BanDurationArgError {
    #[error(transparent)]
    Unreadable(#[from] crate::clock::InvalidDuration),
    #[error(transparent)]
    Refused(#[from] crate::peers::bans::DurationError),
}

fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

pub(crate) async fn run(
    client: &AdminClient,
    out: &Output,
    command: PeersCommand,
) -> Result<(), ClientError> {
    match command {
        PeersCommand::List {
            state,
            limit,
            sort,
            watch,
        } => list(client, out, state, limit, sort, watch).await?,
        PeersCommand::Get { peer } => {
            let peer = client.peer(&peer).await?;
            if out.json {
                out.print_json(&peer);
            } else {
                print_peer_detail(out, &peer);
            }
        }
        PeersCommand::Ban {
            target,
            reason,
            duration,
            force,
        } => ban(client, out, &target, reason, duration, force).await?,
        PeersCommand::Unban { target } => {
            let unbanned = client.unban(&target).await?;
            if out.json {
                out.print_json(&unbanned);
            } else {
                out.message(&format!("Unbanned {} {}.", unbanned.kind, unbanned.target));
            }
        }
        PeersCommand::Reset { peer } => {
            let reset = client.reset(&peer).await?;
            if out.json {
                out.print_json(&reset);
            } else {
                out.message(&format!(
                    "Reset peer {}: failure count {} -> 0, penalties cleared.",
                    reset.peer_id, reset.previous_failure_count
                ));
            }
        }
        PeersCommand::Connect { address } => {
            let connected = client.connect_peer(&address).await?;
            if out.json {
                out.print_json(&connected);
            } else {
                out.print_value(&connected.peer_id);
                out.message(&if connected.already_connected {
                    format!("Already connected to {} at {address}.", connected.peer_id)
                } else {
                    format!("Connected to {} at {address}.", connected.peer_id)
                });
            }
        }
        PeersCommand::Disconnect { peer } => {
            let done = client.disconnect_peer(&peer).await?;
            if out.json {
                out.print_json(&done);
            } else {
                out.message(&format!(
                    "Disconnected {} (not banned).\nIt may reconnect, and this node may dial it \
                     again; `peers ban` keeps it away.",
                    done.peer_id
                ));
            }
        }
        PeersCommand::Bans => {
            let bans = client.bans().await?;
            if out.json {
                out.print_json(&bans);
            } else {
                print_bans(out, &bans);
            }
        }
    }
    Ok(())
}

/// `peers list`: once, or with `--watch` redrawn as peers come, go or are banned.
async fn list(
    client: &AdminClient,
    out: &Output,
    state: StateFilter,
    limit: Option<usize>,
    sort: SortKey,
    watch: bool,
) -> Result<(), ClientError> {
    let state = value_name(state);
    let sort = value_name(sort);
    if watch {
        let fetch = || client.peers(Some(&state), limit, Some(&sort));
        return super::events::watch_peers(client, out, fetch, print_peer_table).await;
    }
    let peers = client.peers(Some(&state), limit, Some(&sort)).await?;
    if out.json {
        out.print_json(&peers);
    } else {
        print_peer_table(out, &peers);
    }
    Ok(())
}

/// `peers ban`.
async fn ban(
    client: &AdminClient,
    out: &Output,
    target: &str,
    reason: Option<String>,
    duration: Option<String>,
    force: bool,
) -> Result<(), ClientError> {
    let ban = client
        .ban_with(target, reason.as_deref(), duration.as_deref(), force)
        .await?;
    if out.json {
        out.print_json(&ban);
    } else {
        let expiry = match &ban.ban_expires_at {
            Some(at) => format!("expires {}", relative(at)),
            None => "until unbanned".to_string(),
        };
        out.message(&format!(
            "Banned {} {} ({}); {}. Disconnected {} connection(s).",
            ban.kind,
            ban.target,
            ban.ban_reason,
            expiry,
            ban.disconnected_peers.len()
        ));
    }
    Ok(())
}

fn print_peer_table(out: &Output, peers: &[PeerDto]) {
    if peers.is_empty() {
        out.message("No peers.");
        return;
    }
    let mut table = out.table(vec![
        col("PEER ID"),
        col("NAME").wrap(),
        col("ADDRESS"),
        col("STATE"),
        col("DIRECTION").wide(),
        col("IS SEED NODE").wide(),
        col("LATENCY"),
        col("QUALITY"),
        col("RATING").wide(),
        col("SUCCESS RATE").wide(),
        col("FAILURE COUNT").wide(),
        col("FIRST SEEN").wide(),
        col("LAST SEEN").wide(),
        col("SOFTWARE VERSION").wide(),
        col("ADVERTISED REGISTERS").wide(),
        col("BAN REASON").wide(),
    ]);
    for p in peers {
        let registers: Vec<&str> = p
            .advertised_registers
            .iter()
            .map(|r| r.register_id.as_str())
            .collect();
        table.add_row(vec![
            cell(out.id(&p.peer_id)),
            cell(&p.name),
            cell(&p.endpoint),
            out.state_cell(&p.state),
            cell_or_none(p.direction.as_deref()),
            cell(yes_no(p.is_seed_node)),
            cell(latency(p.latency.as_ref().map(|l| l.average_ms))),
            cell(format!("{:.0}", p.quality_score)),
            cell(&p.quality_rating),
            cell(format!("{:.1}%", p.success_rate * 100.0)),
            cell(p.failure_count),
            cell(relative(&p.first_seen)),
            cell(relative(&p.last_seen)),
            cell_or_none(p.software_version.as_deref()),
            cell(registers.join(",")),
            cell_or_none(p.ban_reason.as_deref()),
        ]);
    }
    out.print_table(&table);
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn print_peer_detail(out: &Output, p: &PeerDto) {
    let q = &p.quality_components;
    let mut d = Details::new();
    d.row("Peer ID", &p.peer_id);
    d.row("Name", &p.name);
    d.row("Address", &p.endpoint);
    d.row(
        "State",
        match &p.direction {
            Some(dir) => format!("{} ({dir})", p.state),
            None => p.state.clone(),
        },
    );
    d.row("Seed node", yes_no(p.is_seed_node));
    d.row("Version", p.software_version.as_deref().unwrap_or(NONE));
    if let Some(platform) = &p.platform_address {
        d.row("Platform services", platform);
    }
    d.row("First seen", relative(&p.first_seen));
    d.row("Last seen", relative(&p.last_seen));
    d.row("Failures (consecutive)", p.failure_count);
    d.row(
        "Latency min/avg/max",
        format!(
            "{} / {} / {}",
            latency(p.latency.as_ref().map(|l| l.min_ms)),
            latency(p.latency.as_ref().map(|l| l.average_ms)),
            latency(p.latency.as_ref().map(|l| l.max_ms))
        ),
    );
    d.row(
        "Quality",
        format!("{:.1} ({})", p.quality_score, p.quality_rating),
    );
    d.row("  success", success_explanation(q));
    d.row(
        "  latency",
        format!("{:.1} pts = 25 x {:.1}", q.latency_points, q.latency_score),
    );
    d.row(
        "  validity",
        format!("{:.1} pts = 15 x {:.2}", q.validity_points, q.validity),
    );
    d.row(
        "Last penalty",
        match &q.last_penalty {
            Some(pen) => format!("{} ({})", pen.reason, relative(&pen.at)),
            None => "none".into(),
        },
    );
    let registers: Vec<String> = p
        .advertised_registers
        .iter()
        .map(|r| format!("{} (docket {})", r.register_id, r.latest_docket_version))
        .collect();
    d.row("Advertised registers", registers.join(", "));
    if p.is_banned {
        d.row(
            "Banned",
            p.banned_at.as_deref().map(relative).unwrap_or_default(),
        );
        d.row("Ban reason", p.ban_reason.clone().unwrap_or_default());
        d.row(
            "Ban expires",
            p.ban_expires_at
                .as_deref()
                .map(relative)
                .unwrap_or_else(|| "never (until unbanned)".into()),
        );
    }
    out.print_details(&d);
}

/// The success part of the quality score, with the counts the rate was computed from (the
/// recent requests) and, apart, the lifetime ones.
fn success_explanation(q: &QualityComponentsDto) -> String {
    if q.recent_requests == 0 {
        return format!(
            "{:.1} pts = 60 x 0% (no request exchanged yet)",
            q.success_points
        );
    }
    format!(
        "{:.1} pts = 60 x {:.1}% ({} of the last {} requests ok; {} of {} since first contact)",
        q.success_points,
        q.success_rate * 100.0,
        q.recent_successful_requests,
        q.recent_requests,
        q.successful_requests,
        q.total_requests
    )
}

fn print_bans(out: &Output, bans: &[BanDto]) {
    if bans.is_empty() {
        out.message("No bans in force.");
        return;
    }
    let mut table = out.table(vec![
        col("TARGET"),
        col("KIND"),
        col("SOURCE"),
        col("REASON").wrap(),
        col("BANNED AT").short("BANNED"),
        col("EXPIRES AT").short("EXPIRES"),
    ]);
    for b in bans {
        let target = match (b.kind.as_str(), &b.name) {
            ("peer", Some(name)) => format!("{} ({name})", out.id(&b.target)),
            ("peer", None) => out.id(&b.target).to_string(),
            _ => b.target.clone(),
        };
        table.add_row(vec![
            cell(target),
            cell(&b.kind),
            cell(&b.source),
            cell(&b.reason),
            cell(relative(&b.banned_at)),
            cell(
                b.expires_at
                    .as_deref()
                    .map(relative)
                    .unwrap_or_else(|| "never".into()),
            ),
        ]);
    }
    out.print_table(&table);
}

/// `sorcha-peer status`.
pub(crate) async fn status(client: &AdminClient, out: &Output) -> Result<(), ClientError> {
    let s = client.status().await?;
    if out.json {
        out.print_json(&s);
        return Ok(());
    }
    let mut d = Details::new();
    // First what `systemctl status` puts first: whether it works, and if not, why.
    d.row(
        "Readiness",
        if s.readiness_reasons.is_empty() {
            s.readiness.clone()
        } else {
            format!("{}: {}", s.readiness, s.readiness_reasons.join("; "))
        },
    );
    d.row("Peer ID", &s.peer_id);
    d.row("Name", &s.name);
    d.row("Version", &s.version);
    d.row(
        "Uptime",
        crate::clock::short_duration(std::time::Duration::from_secs(s.uptime_seconds)),
    );
    d.row(
        "Listen",
        format!("{} (announced as {})", s.listen, s.announced_address),
    );
    d.row(
        "Reachability",
        format!("{} (address from {})", s.reachability, s.address_source),
    );
    d.row("Transport", transport(&s));
    for warning in [&s.peer_certificate_warning, &s.revocation_list_problem]
        .into_iter()
        .flatten()
    {
        d.row("Warning", warning);
    }
    d.row("Admin API", &s.admin_listen);
    d.row(
        "Storage",
        format!("{} (durability {})", s.storage, s.durability),
    );
    if let Some(error) = &s.storage_error {
        d.row("Storage failing", error);
    }
    d.row(
        "Peers",
        format!(
            "{} known: {} connected ({} in, {} out), {} connecting, {} disconnected, {} banned",
            s.peers.known,
            s.peers.connected,
            s.peers.inbound,
            s.peers.outbound,
            s.peers.connecting,
            s.peers.disconnected,
            s.peers.banned
        ),
    );
    d.row("Bans in force", s.bans);
    d.row(
        "Seeds",
        if s.seeds.is_empty() {
            "none".into()
        } else {
            s.seeds.join(", ")
        },
    );
    out.print_details(&d);
    Ok(())
}

/// How peer traffic is carried (`peer_tls`), in words, with the certificate's expiry in CA
/// mode.
fn transport(s: &StatusDto) -> String {
    match s.peer_tls.as_str() {
        "node-key" => "TLS 1.3, node-key certificates (peer_tls = node-key)".to_string(),
        "ca" => format!(
            "TLS 1.3, CA-issued certificate{} (peer_tls = ca)",
            s.peer_certificate_expires
                .as_deref()
                .map(|at| format!(", expires {}", super::output::relative(at)))
                .unwrap_or_default()
        ),
        "off" => "plaintext (peer_tls = off)".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::peers::quality::QualityTracker;

    /// The explanation's figures agree: points = 60 x rate, and rate = ok / requests it names.
    #[test]
    fn the_success_explanation_adds_up() {
        let mut q = QualityTracker::default();
        for i in 0..3300 {
            if i < 3266 || i % 4 == 0 {
                q.record_success(Some(1.0));
            } else {
                q.record_failure();
            }
        }
        let snapshot = q.breakdown(0);
        let dto = crate::api::QualityComponentsDto {
            success_rate: snapshot.success_rate,
            success_points: snapshot.success_points,
            latency_score: snapshot.latency_score,
            latency_points: snapshot.latency_points,
            validity: snapshot.validity,
            validity_points: snapshot.validity_points,
            total_requests: snapshot.total_requests,
            successful_requests: snapshot.successful_requests,
            failed_requests: snapshot.total_requests - snapshot.successful_requests,
            recent_requests: snapshot.recent_requests,
            recent_successful_requests: snapshot.recent_successful_requests,
            last_penalty: None,
        };
        let text = super::success_explanation(&dto);
        let numbers: Vec<f64> = text
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter_map(|w| w.trim_end_matches('.').parse().ok())
            .collect();
        // [points, 60, percent, ok, window, ok_all, total]
        let (points, percent, ok, window) = (numbers[0], numbers[2], numbers[3], numbers[4]);
        assert!((points - 60.0 * percent / 100.0).abs() < 0.1, "{text}");
        assert!((percent - 100.0 * ok / window).abs() < 0.1, "{text}");
        assert_eq!((numbers[5], numbers[6]), (3274.0, 3300.0), "{text}");
    }
}
