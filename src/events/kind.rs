//! What happened: the typed events of the bus, their classes (audit or progress), the peers
//! they name, and one line of each for people.

use serde::{Deserialize, Serialize};

/// The two classes of events, each kept in a history of its own so that one cannot push the
/// other out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventClass {
    /// What an operator audits: connections, bans, verification failures, subscription
    /// states, queues at their bound, storage. Kept for `event_history` events.
    Audit,
    /// Data moving as it should: replication progress, dockets sealed and replicated. Many,
    /// and stale in seconds, so only the last [`super::PROGRESS_HISTORY`] are kept.
    Progress,
}

impl EventClass {
    /// The name an operator filters by (`events --type progress`).
    pub fn name(self) -> &'static str {
        match self {
            EventClass::Audit => "audit",
            EventClass::Progress => "progress",
        }
    }
}

/// Every event type the node publishes (`lagged` is per client and not among them), with
/// its class, in the order the documentation lists them.
pub const EVENT_TYPES: &[(&str, EventClass)] = &[
    ("peerConnected", EventClass::Audit),
    ("peerDisconnected", EventClass::Audit),
    ("peerBanned", EventClass::Audit),
    ("peerUnbanned", EventClass::Audit),
    ("verificationFailed", EventClass::Audit),
    ("subscriptionState", EventClass::Audit),
    ("queuePressure", EventClass::Audit),
    ("storageFailing", EventClass::Audit),
    ("storageRecovered", EventClass::Audit),
    ("subscriptionProgress", EventClass::Progress),
    ("docketSealed", EventClass::Progress),
    ("docketReplicated", EventClass::Progress),
];

/// What happened. Serialised with a `type` tag and camelCase fields, e.g.
/// `{"seq":7,"time":"…","type":"peerBanned","target":"…","reason":"…","source":"manual",…}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum EventKind {
    /// A handshake completed and the peer is connected.
    PeerConnected {
        peer_id: String,
        address: String,
        /// `inbound` or `outbound`.
        direction: String,
    },
    /// A peer's session ended.
    PeerDisconnected {
        peer_id: String,
        reason: String,
        /// True when the session failed rather than closed in good order.
        failed: bool,
    },
    /// A ban was imposed: by the operator (`source` `manual`) or automatically (`automatic`,
    /// the reason says why).
    PeerBanned {
        target: String,
        /// `peer`, `ip` or `cidr`.
        kind: String,
        reason: String,
        source: String,
        expires_at: Option<String>,
        /// Known peers the ban covers.
        peer_ids: Vec<String>,
    },
    /// A ban ended: lifted by the operator, or run out (`expired`).
    PeerUnbanned { target: String, expired: bool },
    /// A peer served data that failed verification.
    VerificationFailed {
        peer_id: String,
        register_id: Option<String>,
        reason: String,
    },
    /// A subscription changed state (`subscribing`, `syncing`, `fully-replicated`, `active`,
    /// `error`).
    SubscriptionState {
        register_id: String,
        state: String,
        error: Option<String>,
    },
    /// A subscription stored dockets (throttled per register; the last one at the target is
    /// always sent).
    SubscriptionProgress {
        register_id: String,
        /// Docket number now held.
        height: u64,
        /// Best docket number seen among sources.
        target: Option<u64>,
        percent: f64,
        /// Transaction version now held.
        #[serde(default)]
        version: Option<u64>,
        /// Best transaction version seen among sources.
        #[serde(default)]
        target_version: Option<u64>,
    },
    /// This node (the origin) sealed a docket.
    DocketSealed {
        register_id: String,
        docket_number: u64,
        transactions: u64,
    },
    /// Dockets from peers were verified and stored (one event per stored batch).
    DocketReplicated {
        register_id: String,
        /// The new head's docket number.
        docket_number: u64,
        dockets: u64,
        transactions: u64,
    },
    /// A bounded queue is at its bound (`announcements`: the persisted announcement queue
    /// dropped its oldest entries; `peerSend`: a peer's session queue is full and a message
    /// was not sent).
    QueuePressure {
        queue: String,
        peer_id: Option<String>,
        depth: u64,
        limit: u64,
        dropped: u64,
    },
    /// Storage stopped accepting writes.
    StorageFailing { reason: String },
    /// Storage accepts writes again.
    StorageRecovered {
        failing_since: String,
        last_error: String,
    },
    /// This subscriber fell behind and skipped `missed` events (not part of the sequence).
    Lagged { missed: u64 },
}

impl EventKind {
    /// Which history keeps it.
    pub fn class(&self) -> EventClass {
        match self {
            EventKind::SubscriptionProgress { .. }
            | EventKind::DocketSealed { .. }
            | EventKind::DocketReplicated { .. } => EventClass::Progress,
            _ => EventClass::Audit,
        }
    }

    /// The peers it names: peer IDs, and a ban's target (an ID, an IP address or a subnet)
    /// with the known peers it covers.
    pub fn peers_named(&self) -> Vec<&str> {
        match self {
            EventKind::PeerConnected { peer_id, .. }
            | EventKind::PeerDisconnected { peer_id, .. }
            | EventKind::VerificationFailed { peer_id, .. } => vec![peer_id],
            EventKind::PeerBanned {
                target, peer_ids, ..
            } => std::iter::once(target.as_str())
                .chain(peer_ids.iter().map(String::as_str))
                .collect(),
            EventKind::PeerUnbanned { target, .. } => vec![target],
            EventKind::QueuePressure { peer_id, .. } => peer_id.as_deref().into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The `type` tag.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::PeerConnected { .. } => "peerConnected",
            EventKind::PeerDisconnected { .. } => "peerDisconnected",
            EventKind::PeerBanned { .. } => "peerBanned",
            EventKind::PeerUnbanned { .. } => "peerUnbanned",
            EventKind::VerificationFailed { .. } => "verificationFailed",
            EventKind::SubscriptionState { .. } => "subscriptionState",
            EventKind::SubscriptionProgress { .. } => "subscriptionProgress",
            EventKind::DocketSealed { .. } => "docketSealed",
            EventKind::DocketReplicated { .. } => "docketReplicated",
            EventKind::QueuePressure { .. } => "queuePressure",
            EventKind::StorageFailing { .. } => "storageFailing",
            EventKind::StorageRecovered { .. } => "storageRecovered",
            EventKind::Lagged { .. } => "lagged",
        }
    }

    /// One line for people (not escaped: the caller escapes before a terminal).
    pub fn summary(&self) -> String {
        self.summary_with(&|id| id.to_string())
    }

    /// [`EventKind::summary`] with peer IDs and ban targets written by `id` (e.g. shortened).
    // One arm per event kind, each its sentence: a table read whole, clearer than split.
    #[allow(clippy::too_many_lines)]
    pub fn summary_with(&self, id: &dyn Fn(&str) -> String) -> String {
        match self {
            EventKind::PeerConnected {
                peer_id,
                address,
                direction,
            } => format!("{} connected ({direction}, {address})", id(peer_id)),
            EventKind::PeerDisconnected {
                peer_id,
                reason,
                failed,
            } => {
                let how = if *failed { "failed" } else { "disconnected" };
                format!("{} {how}: {reason}", id(peer_id))
            }
            EventKind::PeerBanned {
                target,
                reason,
                source,
                expires_at,
                ..
            } => {
                let until = expires_at
                    .as_deref()
                    .map_or_else(|| "until unbanned".to_string(), |t| format!("until {t}"));
                format!("{} banned ({source}, {until}): {reason}", id(target))
            }
            EventKind::PeerUnbanned { target, expired } => {
                if *expired {
                    format!("ban on {} expired", id(target))
                } else {
                    format!("{} unbanned", id(target))
                }
            }
            EventKind::VerificationFailed {
                peer_id,
                register_id,
                reason,
            } => match register_id {
                Some(r) => format!("{} served bad data for {r}: {reason}", id(peer_id)),
                None => format!("{} served bad data: {reason}", id(peer_id)),
            },
            EventKind::SubscriptionState {
                register_id,
                state,
                error,
            } => match error {
                Some(e) => format!("{register_id} {state}: {e}"),
                None => format!("{register_id} {state}"),
            },
            EventKind::SubscriptionProgress {
                register_id,
                height,
                target,
                percent,
                version,
                target_version,
            } => {
                let dockets = match target {
                    Some(t) => format!("{register_id} docket {height} of {t} ({percent:.0}%)"),
                    None => format!("{register_id} docket {height}"),
                };
                match (version, target_version) {
                    (Some(v), Some(t)) => format!("{dockets}, transaction {v} of {t}"),
                    _ => dockets,
                }
            }
            EventKind::DocketSealed {
                register_id,
                docket_number,
                transactions,
            } => format!("{register_id} sealed docket {docket_number} ({transactions} tx)"),
            EventKind::DocketReplicated {
                register_id,
                docket_number,
                dockets,
                transactions,
            } => format!(
                "{register_id} replicated {dockets} docket(s) to {docket_number} ({transactions} tx)"
            ),
            EventKind::QueuePressure {
                queue,
                peer_id,
                depth,
                limit,
                dropped,
            } => {
                let whose = peer_id
                    .as_deref()
                    .map(|p| format!(" to {}", id(p)))
                    .unwrap_or_default();
                format!("{queue} queue{whose} at its bound ({depth}/{limit}, {dropped} dropped)")
            }
            EventKind::StorageFailing { reason } => format!("storage failing: {reason}"),
            EventKind::StorageRecovered {
                failing_since,
                last_error,
            } => format!("storage recovered (failing since {failing_since}: {last_error})"),
            EventKind::Lagged { missed } => format!("fell behind: missed {missed} event(s)"),
        }
    }
}
