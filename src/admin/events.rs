//! The event stream: `GET /api/events` as Server-Sent Events (one `data:` line of JSON per
//! event, `id:` its sequence number, keep-alive comments while idle; `?since=<seq>` or the
//! `Last-Event-ID` header replays what the history still holds), and `GET /api/events/recent`
//! (the same events as one JSON document, for `sorcha-peer events` without `--follow`).
//! Both take filters: `type` (repeatable, or comma-separated: event types such as
//! `peerBanned`, or the classes `audit` and `progress`) and `peer` (a peer ID, unique prefix
//! or name; an IP address or subnet for bans).
//!
//! Reads, so the same auth as every other read. The dashboard reads the stream with `fetch`
//! (not `EventSource`), so a token travels in the `Authorization` header, never in a URL.
//!
//! Places ([`EventSlots`]): at most `max_event_clients` streams, of which at most
//! `max_anonymous_event_clients` without a token and `max_anonymous_event_clients_per_ip` of
//! those from one address; the rest are kept for the operator's token or a JWT, so clients
//! without one cannot lock the operator out. A client that stops reading loses its place by
//! `admin_send_timeout` (`deadline.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Extension;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::auth::Principal;
use super::{ApiError, ApiResult, Shared};
use crate::api::RecentEventsDto;
use crate::config::Config;
use crate::events::{Event, EventFilter};
use crate::peers::PeerError;

/// Events `/api/events/recent` answers with unless asked for fewer.
const DEFAULT_RECENT: usize = 100;

/// The query string as pairs, so `type` may be repeated.
type QueryResult = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

/// What a client asked for.
#[derive(Debug, Default)]
struct EventQuery {
    since: Option<u64>,
    limit: Option<usize>,
    filter: EventFilter,
}

/// Reads `since`, `type`, `peer` and (for `recent`, `with_limit`) `limit`; anything else, or
/// a value that does not parse, is a 400 naming it.
fn event_query(
    state: &super::AdminState,
    query: QueryResult,
    with_limit: bool,
) -> Result<EventQuery, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let number = |key: &str, value: &str| {
        value.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("`{key}` must be a whole number, not '{value}'"))
        })
    };
    let mut q = EventQuery::default();
    let mut types: Vec<&str> = Vec::new();
    let mut peer: Option<&str> = None;
    for (key, value) in &pairs {
        match key.as_str() {
            "since" => q.since = Some(number(key, value)?),
            "limit" if with_limit => q.limit = Some(number(key, value)? as usize),
            "type" => types.push(value),
            "peer" if peer.is_none() => peer = Some(value),
            "peer" => return Err(ApiError::bad_request("`peer` may be given once")),
            other => {
                let known = if with_limit {
                    "since, limit, type, peer"
                } else {
                    "since, type, peer"
                };
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{other}` (known: {known})"
                )));
            }
        }
    }
    q.filter = EventFilter::default()
        .with_types(types)
        .map_err(ApiError::bad_request)?;
    if let Some(peer) = peer {
        q.filter = q.filter.with_peer(vec![peer_named(state, peer)?]);
    }
    Ok(q)
}

/// What an event must name for `peer=TEXT`: the ID of the known peer the text names (ID,
/// unique prefix or name); for a peer no longer known, a hex ID or prefix as given; an IP
/// address or subnet as given (bans).
fn peer_named(state: &super::AdminState, text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    match state.manager.get(text) {
        Ok(peer) => Ok(peer.peer_id),
        Err(PeerError::NotFound(_))
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(text.to_ascii_lowercase())
        }
        Err(PeerError::NotFound(_))
            if text.parse::<IpAddr>().is_ok() || text.parse::<ipnet::IpNet>().is_ok() =>
        {
            Ok(text.to_string())
        }
        Err(e) => Err(e.into()),
    }
}

/// The places on the event stream, by kind of client.
pub struct EventSlots {
    max: usize,
    max_anonymous: usize,
    max_anonymous_per_ip: usize,
    taken: Mutex<Taken>,
}

#[derive(Default)]
struct Taken {
    all: usize,
    anonymous: usize,
    /// Streams without a token per address; an address leaves the map with its last stream,
    /// so it holds at most `max_anonymous` entries.
    anonymous_by_ip: HashMap<IpAddr, usize>,
}

/// Why a stream was not given a place (503); each names its key and is counted under it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoPlace {
    #[error("too many event subscribers (max_event_clients {0})")]
    Full(usize),
    #[error(
        "too many event streams without a token (max_anonymous_event_clients {0}): send the admin token or a JWT (Authorization: Bearer) to use the places kept for them"
    )]
    Anonymous(usize),
    #[error(
        "too many event streams without a token from this address (max_anonymous_event_clients_per_ip {0}): send the admin token or a JWT (Authorization: Bearer) to use the places kept for them"
    )]
    AnonymousFromIp(usize),
}

impl NoPlace {
    fn limit(&self) -> &'static str {
        match self {
            NoPlace::Full(_) => "max_event_clients",
            NoPlace::Anonymous(_) => "max_anonymous_event_clients",
            NoPlace::AnonymousFromIp(_) => "max_anonymous_event_clients_per_ip",
        }
    }
}

impl EventSlots {
    pub fn new(config: &Config) -> Arc<EventSlots> {
        Arc::new(EventSlots {
            max: config.max_event_clients,
            max_anonymous: config.max_anonymous_event_clients,
            max_anonymous_per_ip: config.max_anonymous_event_clients_per_ip,
            taken: Mutex::new(Taken::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Taken> {
        // Counters only; a panic elsewhere cannot leave them half-updated.
        self.taken.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a stream of `who` from `ip`, held until the [`Place`] is dropped.
    pub fn take(self: &Arc<Self>, who: &Principal, ip: IpAddr) -> Result<Place, NoPlace> {
        let anonymous = matches!(who, Principal::Anonymous { .. });
        let ip = ip.to_canonical();
        let mut taken = self.lock();
        if taken.all >= self.max {
            return Err(NoPlace::Full(self.max));
        }
        if anonymous {
            if taken.anonymous >= self.max_anonymous {
                return Err(NoPlace::Anonymous(self.max_anonymous));
            }
            let from_ip = taken.anonymous_by_ip.get(&ip).copied().unwrap_or(0);
            if from_ip >= self.max_anonymous_per_ip {
                return Err(NoPlace::AnonymousFromIp(self.max_anonymous_per_ip));
            }
            taken.anonymous_by_ip.insert(ip, from_ip + 1);
            taken.anonymous += 1;
        }
        taken.all += 1;
        Ok(Place {
            slots: self.clone(),
            anonymous_ip: anonymous.then_some(ip),
        })
    }
}

/// One stream's place; given back when dropped (the stream ended or its client went away).
pub struct Place {
    slots: Arc<EventSlots>,
    anonymous_ip: Option<IpAddr>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut taken = self.slots.lock();
        taken.all = taken.all.saturating_sub(1);
        if let Some(ip) = self.anonymous_ip {
            taken.anonymous = taken.anonymous.saturating_sub(1);
            if let Some(n) = taken.anonymous_by_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    taken.anonymous_by_ip.remove(&ip);
                }
            }
        }
    }
}

/// `GET /api/events`: live events as Server-Sent Events.
pub(super) async fn stream(
    State(state): Shared,
    Extension(who): Extension<Principal>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: QueryResult,
) -> Response {
    let EventQuery { since, filter, .. } = match event_query(&state, query, false) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let since = match since {
        Some(since) => Some(since),
        None => match headers.get("last-event-id").map(|v| v.to_str()) {
            None => None,
            Some(Ok(text)) => match text.trim().parse::<u64>() {
                Ok(seq) => Some(seq),
                Err(_) => {
                    return ApiError::bad_request("Last-Event-ID must be an event sequence number")
                        .into_response();
                }
            },
            Some(Err(_)) => {
                return ApiError::bad_request("Last-Event-ID must be an event sequence number")
                    .into_response();
            }
        },
    };
    let place = match state.event_slots.take(&who, remote.ip()) {
        Ok(place) => place,
        Err(e) => {
            state.metrics.limit_hit(e.limit());
            return ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
        }
    };
    let subscription = state.events.subscribe_matching(since, filter);
    let events = subscription.into_stream().map(move |event| {
        // The place is held for as long as the stream is.
        let _place = &place;
        let mut sse = SseEvent::default();
        if event.seq > 0 {
            sse = sse.id(event.seq.to_string());
        }
        // An event is plain data with string keys: it always serialises.
        let data = serde_json::to_string(&event).unwrap_or_else(|e| {
            tracing::error!("cannot serialise event {}: {e}", event.seq);
            String::from("{}")
        });
        Ok::<_, Infallible>(sse.data(data))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.config.event_keepalive_interval))
        .into_response();
    // Proxies (nginx) must pass events on as they come.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

/// `GET /api/events/recent?limit=N&since=SEQ&type=T&peer=P`: the latest events that pass
/// the filters (oldest first) as JSON.
pub(super) async fn recent(State(state): Shared, query: QueryResult) -> ApiResult<RecentEventsDto> {
    let q = event_query(&state, query, true)?;
    let limit = q
        .limit
        .unwrap_or(DEFAULT_RECENT)
        .min(state.events.capacity());
    let latest_seq = state.events.latest_seq();
    // A sequence number this node has not reached (from before a restart) replays it all.
    let since = q.since.filter(|s| *s <= latest_seq);
    let events: Vec<Event> = state
        .events
        .recent_matching(limit, &q.filter, since)
        .into_iter()
        .map(|e| (*e).clone())
        .collect();
    Ok(axum::Json(RecentEventsDto { latest_seq, events }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(max: usize, anonymous: usize, per_ip: usize) -> Arc<EventSlots> {
        let mut config = Config::defaults().expect("defaults");
        config.max_event_clients = max;
        config.max_anonymous_event_clients = anonymous;
        config.max_anonymous_event_clients_per_ip = per_ip;
        EventSlots::new(&config)
    }

    const NOBODY: Principal = Principal::Anonymous { open_network: true };

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn streams_without_a_token_leave_places_for_the_operator() {
        let slots = slots(4, 2, 1);
        let a = slots.take(&NOBODY, ip(1)).expect("first anonymous");
        assert_eq!(
            slots.take(&NOBODY, ip(1)).err(),
            Some(NoPlace::AnonymousFromIp(1))
        );
        let _b = slots.take(&NOBODY, ip(2)).expect("another address");
        assert_eq!(
            slots.take(&NOBODY, ip(3)).err(),
            Some(NoPlace::Anonymous(2))
        );
        let _op1 = slots.take(&Principal::AdminToken, ip(1)).expect("operator");
        let _op2 = slots.take(&Principal::AdminToken, ip(1)).expect("operator");
        assert_eq!(
            slots.take(&Principal::AdminToken, ip(1)).err(),
            Some(NoPlace::Full(4))
        );
        // A freed place goes to whoever asks next, within the same caps.
        drop(a);
        let _c = slots.take(&NOBODY, ip(3)).expect("a freed place");
        assert_eq!(slots.take(&NOBODY, ip(4)).err(), Some(NoPlace::Full(4)));
        assert_eq!(slots.lock().anonymous_by_ip.len(), 2, "ip 1 left the map");
    }

    #[test]
    fn an_ipv4_client_over_ipv6_counts_as_its_ipv4_address() {
        let slots = slots(4, 2, 1);
        let _a = slots.take(&NOBODY, ip(1)).expect("first");
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(
            slots.take(&NOBODY, mapped).err(),
            Some(NoPlace::AnonymousFromIp(1))
        );
    }
}
