//! Which events a client asked for (`events --type … --peer …`, `?type=…&peer=…`): types or
//! classes of events, and a peer the event must name.

use std::collections::HashSet;

use super::Event;
use super::kind::{EVENT_TYPES, EventClass, EventKind};

/// What `--type` / `?type=` accepts: every event type, then the two classes.
pub fn type_choices() -> Vec<&'static str> {
    EVENT_TYPES
        .iter()
        .map(|(name, _)| *name)
        .chain([EventClass::Audit.name(), EventClass::Progress.name()])
        .collect()
}

/// A filter on events; the default lets every event through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// The type names wanted; empty: every type.
    types: HashSet<&'static str>,
    /// What an event must name (see [`EventKind::peers_named`]): full peer IDs, ID prefixes
    /// (hex, lower case), or ban targets (IP addresses, subnets). `None`: any event.
    peer: Option<Vec<String>>,
}

impl EventFilter {
    /// Only events of these types: each value a type (`peerBanned`) or a class (`audit`,
    /// `progress`), case-insensitive; a value may list several, separated by commas. An
    /// unknown name is refused, naming the choices.
    pub fn with_types<'a>(
        mut self,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<EventFilter, String> {
        for value in values.into_iter().flat_map(|v| v.split(',')) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let class = [EventClass::Audit, EventClass::Progress]
                .into_iter()
                .find(|c| c.name().eq_ignore_ascii_case(value));
            let chosen: Vec<&'static str> = EVENT_TYPES
                .iter()
                .filter(|(name, of)| class == Some(*of) || name.eq_ignore_ascii_case(value))
                .map(|(name, _)| *name)
                .collect();
            if chosen.is_empty() {
                return Err(format!(
                    "unknown event type '{value}'; one of: {}",
                    type_choices().join(", ")
                ));
            }
            self.types.extend(chosen);
        }
        Ok(self)
    }

    /// Only events naming one of `names` (see the field `peer`).
    pub fn with_peer(mut self, names: Vec<String>) -> EventFilter {
        self.peer = Some(
            names
                .into_iter()
                .map(|n| n.trim().to_ascii_lowercase())
                .collect(),
        );
        self
    }

    /// Whether `event` passes. A `lagged` notice always does: it tells the client that events
    /// were missed.
    pub fn matches(&self, event: &Event) -> bool {
        if matches!(event.kind, EventKind::Lagged { .. }) {
            return true;
        }
        if !self.types.is_empty() && !self.types.contains(event.kind.name()) {
            return false;
        }
        let Some(wanted) = &self.peer else {
            return true;
        };
        event.kind.peers_named().iter().any(|named| {
            let named = named.to_ascii_lowercase();
            wanted.iter().any(|w| {
                named == *w
                    || (w.bytes().all(|b| b.is_ascii_hexdigit()) && named.starts_with(w.as_str()))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind) -> Event {
        Event {
            seq: 1,
            time: String::new(),
            kind,
        }
    }

    fn connected(peer: &str) -> Event {
        event(EventKind::PeerConnected {
            peer_id: peer.into(),
            address: "127.0.0.1:5000".into(),
            direction: "inbound".into(),
        })
    }

    fn progress() -> Event {
        event(EventKind::SubscriptionProgress {
            register_id: "orders".into(),
            height: 3,
            target: Some(9),
            percent: 33.0,
            version: None,
            target_version: None,
        })
    }

    #[test]
    fn types_and_classes_select_events() {
        let all = EventFilter::default();
        assert!(all.matches(&connected("ab")) && all.matches(&progress()));
        let audit = EventFilter::default().with_types(["audit"]).expect("class");
        assert!(audit.matches(&connected("ab")) && !audit.matches(&progress()));
        let some = EventFilter::default()
            .with_types(["PeerBanned,subscriptionprogress"])
            .expect("types");
        assert!(some.matches(&progress()) && !some.matches(&connected("ab")));
        let err = EventFilter::default()
            .with_types(["peerBaned"])
            .expect_err("unknown");
        assert!(
            err.contains("'peerBaned'") && err.contains("peerBanned"),
            "{err}"
        );
        // A `lagged` notice always passes.
        assert!(audit.matches(&event(EventKind::Lagged { missed: 2 })));
    }

    #[test]
    fn a_peer_matches_by_id_prefix_or_ban_target() {
        let filter = EventFilter::default().with_peer(vec!["AB12".into()]);
        assert!(filter.matches(&connected("ab12cd")));
        assert!(!filter.matches(&connected("cd12ab")));
        assert!(!filter.matches(&progress()));
        let ban = event(EventKind::PeerBanned {
            target: "10.0.0.1".into(),
            kind: "ip".into(),
            reason: "r".into(),
            source: "manual".into(),
            expires_at: None,
            peer_ids: vec!["ab12ff".into()],
        });
        assert!(filter.matches(&ban), "a ban covering the peer");
        let by_ip = EventFilter::default().with_peer(vec!["10.0.0.1".into()]);
        assert!(by_ip.matches(&ban));
        let other_ip = EventFilter::default().with_peer(vec!["10.0.0.10".into()]);
        assert!(
            !other_ip.matches(&ban),
            "addresses match whole, not as prefixes"
        );
    }
}
