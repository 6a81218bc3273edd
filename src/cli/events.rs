//! `sorcha-peer events [--follow]` and `peers list --watch`: both read the node's event
//! stream (`GET /api/events`) through [`AdminClient::event_stream`].
//!
//! Output: one line per event, `TIME  TYPE  WHAT` for people; with `-o json` one compact JSON
//! object per line (the admin API's event, as `jq` reads a stream). `--follow` runs until
//! Ctrl-C (exit 0) or until the node closes the stream (exit 3, the node went away).
//! `--type` and `--peer` are passed to the node, which filters the history and the stream.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;

use super::output::{self, Output};
use super::{EXIT_OK, EXIT_UNREACHABLE};
use crate::api::PeerDto;
use crate::client::{AdminClient, ClientError, EventStream, EventsWanted};
use crate::events::{Event, EventKind};

/// The event types and classes, for `--type` (and its help and completions).
fn type_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::events::type_choices())
}

/// `peers list --watch` re-renders at least this often, events or not (latency and quality
/// change without events).
pub(crate) const WATCH_REFRESH: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep printing events as they happen, until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
    /// How many recent events to print first (the node keeps the last `event_history` audit
    /// events, 1000 by default, and the last 200 progress events apart)
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Only events of this type, or of this class: `audit` (connections, bans, verification
    /// failures, subscription states, queues at their bound, storage) or `progress`
    /// (replication progress, dockets sealed and replicated); repeatable
    #[arg(long = "type", value_name = "TYPE", value_parser = type_parser(), ignore_case = true)]
    pub types: Vec<String>,
    /// Only events that name this peer (ID, unique prefix or name), or this IP address or
    /// subnet (bans); a ban covering the peer counts
    #[arg(long, value_name = "PEER")]
    pub peer: Option<String>,
}

/// Peer ID → name, for the peers the node knows by a name (event lines name them as the
/// peers table does).
type Names = HashMap<String, String>;

/// The names of the peers the node knows; none when it cannot say (event lines then show IDs
/// only, which is what they carry).
async fn peer_names(client: &AdminClient) -> Names {
    match client.peers(None, None, None).await {
        Ok(peers) => peers
            .into_iter()
            .filter(|p| !p.name.is_empty())
            .map(|p| (p.peer_id, p.name))
            .collect(),
        Err(_) => Names::new(),
    }
}

/// Prints one event.
fn print_event(out: &Output, event: &Event, names: &Names) {
    if out.json {
        match serde_json::to_string(event) {
            Ok(line) => output::write_stdout(format!("{line}\n").as_bytes()),
            Err(e) => out.error(&format!("cannot print event {}: {e}", event.seq)),
        }
        return;
    }
    // `2026-11-22T08:00:01.123Z` → `08:00:01` (UTC, as the node writes it).
    let time = event.time.get(11..19).unwrap_or(&event.time);
    // Peer IDs as in every table: short unless `-o wide`.
    let id = |text: &str| {
        if !crate::identity::is_peer_id(text) {
            return text.to_string();
        }
        match names.get(text) {
            Some(name) => format!("{} ({name})", out.id(text)),
            None => out.id(text).to_string(),
        }
    };
    let head = format!("{time}  {:<20}  ", event.kind.name());
    let what = event.kind.summary_with(&id);
    // Fitted to the width (not with `-o wide`): continued under the text at word
    // boundaries, so a line never breaks mid-word.
    let room = out
        .width
        .filter(|_| !out.wide)
        .map(|w| w.saturating_sub(head.chars().count()))
        .filter(|&room| room >= 20 && what.chars().count() > room);
    match room {
        Some(room) => {
            let indent = " ".repeat(head.chars().count());
            for (i, line) in super::table::wrap_text(&what, room, false)
                .iter()
                .enumerate()
            {
                let lead = if i == 0 {
                    head.as_str()
                } else {
                    indent.as_str()
                };
                out.print_value(&format!("{lead}{line}"));
            }
        }
        None => out.print_value(&format!("{head}{what}")),
    }
}

/// `sorcha-peer events`.
pub(crate) async fn run(
    client: &AdminClient,
    out: &Output,
    args: EventsArgs,
) -> Result<i32, ClientError> {
    let wanted = EventsWanted {
        types: args.types,
        peer: args.peer,
    };
    let recent = client.recent_events_matching(args.limit, &wanted).await?;
    let mut names = if out.json {
        Names::new()
    } else {
        peer_names(client).await
    };
    if recent.events.is_empty() && !args.follow {
        let filtered = !wanted.types.is_empty() || wanted.peer.is_some();
        out.message(if filtered {
            "No events of those in the node's history."
        } else {
            "No events yet."
        });
    }
    for event in &recent.events {
        print_event(out, event, &names);
    }
    if !args.follow {
        return Ok(EXIT_OK);
    }
    // Everything after what was printed, including what happened in between.
    let mut stream = client
        .event_stream_matching(Some(recent.latest_seq), &wanted)
        .await?;
    loop {
        let next = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(EXIT_OK),
            next = stream.next() => next?,
        };
        match next {
            Some(event) => {
                // A peer met since the start: learn its name before naming it.
                if !out.json
                    && matches!(&event.kind, EventKind::PeerConnected { peer_id, .. } if !names.contains_key(peer_id))
                {
                    names = peer_names(client).await;
                }
                print_event(out, &event, &names);
            }
            None => {
                out.error("the node closed the event stream (it stopped)");
                return Ok(EXIT_UNREACHABLE);
            }
        }
    }
}

/// Whether an event changes what `peers list` shows.
fn touches_peers(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::PeerConnected { .. }
            | EventKind::PeerDisconnected { .. }
            | EventKind::PeerBanned { .. }
            | EventKind::PeerUnbanned { .. }
            | EventKind::Lagged { .. }
    )
}

/// `peers list --watch`: fetches and renders the list, then again on every peer event and at
/// least every [`WATCH_REFRESH`], until Ctrl-C. On a terminal the screen is redrawn; piped,
/// each rendering follows the last (tables separated by a blank line, JSON one array per
/// line). Without an event stream (the node refused it) it only refreshes on the timer.
pub(crate) async fn watch_peers<F, Fut>(
    client: &AdminClient,
    out: &Output,
    mut fetch: F,
    render: impl Fn(&Output, &[PeerDto]),
) -> Result<(), ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<PeerDto>, ClientError>>,
{
    let mut stream: Option<EventStream> = match client.event_stream(None).await {
        Ok(stream) => Some(stream),
        Err(e @ ClientError::Unreachable { .. }) | Err(e @ ClientError::Unauthorized(_)) => {
            return Err(e);
        }
        Err(e) => {
            out.message(&format!(
                "no live updates ({e}); refreshing every {}s",
                WATCH_REFRESH.as_secs()
            ));
            None
        }
    };
    // The stream opens with the node's history: only what comes after the first listing
    // matters, so the history is skipped by sequence number.
    let mut shown_after = client.recent_events(1).await?.latest_seq;
    let terminal = std::io::stdout().is_terminal();
    let mut first = true;
    loop {
        let peers = fetch().await?;
        if terminal {
            // Home and clear, then the table.
            output::write_stdout(b"\x1b[H\x1b[2J");
        } else if !first && !out.json {
            output::write_stdout(b"\n");
        }
        first = false;
        if out.json {
            match serde_json::to_string(&peers) {
                Ok(line) => output::write_stdout(format!("{line}\n").as_bytes()),
                Err(e) => out.error(&format!("cannot print peers: {e}")),
            }
        } else {
            render(out, &peers);
        }
        let deadline = tokio::time::Instant::now() + WATCH_REFRESH;
        loop {
            let next = async {
                match stream.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = tokio::time::sleep_until(deadline) => break,
                next = next => match next {
                    Ok(Some(event)) => {
                        let new = event.seq == 0 || event.seq > shown_after;
                        if event.seq > 0 {
                            shown_after = shown_after.max(event.seq);
                        }
                        if new && touches_peers(&event.kind) {
                            break;
                        }
                    }
                    // The node stopped or the stream broke: the next fetch says which.
                    Ok(None) | Err(_) => stream = None,
                },
            }
        }
    }
}
