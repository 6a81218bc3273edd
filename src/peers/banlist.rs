//! The ban list: the bans in force (kept in memory for every admission decision), the rules
//! for imposing and lifting one, which connections a new ban must close, and their
//! persistence. The pure matching rules are in [`super::bans`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::PeerError;
use super::bans::{self, Ban, BanKind, BanSource, BanTarget};
use crate::store::{BanRow, Store, StoreError};

/// Default reason recorded for an operator ban given without one.
const DEFAULT_BAN_REASON: &str = "banned by operator";

/// Bans by target key.
#[derive(Default)]
pub(crate) struct BanList {
    bans: BTreeMap<String, Ban>,
}

impl BanList {
    /// The first ban in force covering a peer with `peer_id` seen at any of `ips`.
    pub(crate) fn matching(
        &self,
        peer_id: Option<&str>,
        ips: &[IpAddr],
        now_ms: i64,
    ) -> Option<&Ban> {
        self.bans
            .values()
            .find(|b| !b.is_expired(now_ms) && b.target.matches(peer_id, ips))
    }

    /// Whether a ban covers `peer_id` announced at `address` (a dial target or hearsay entry).
    pub(crate) fn covers_address(&self, peer_id: Option<&str>, address: &str, now_ms: i64) -> bool {
        let ips: Vec<IpAddr> = bans::address_ip(address).into_iter().collect();
        self.matching(peer_id, &ips, now_ms).is_some()
    }

    /// Bans in force, oldest first.
    pub(crate) fn in_force(&self, now_ms: i64) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self
            .bans
            .values()
            .filter(|b| !b.is_expired(now_ms))
            .cloned()
            .collect();
        bans.sort_by(|a, b| {
            a.banned_at_ms
                .cmp(&b.banned_at_ms)
                .then(a.target.key().cmp(&b.target.key()))
        });
        bans
    }

    pub(crate) fn count_in_force(&self, now_ms: i64) -> usize {
        self.bans.values().filter(|b| !b.is_expired(now_ms)).count()
    }

    /// Keys of bans that have run out (their effect already ended; they only need tidying).
    pub(crate) fn expired(&self, now_ms: i64) -> Vec<String> {
        self.bans
            .iter()
            .filter(|(_, b)| b.is_expired(now_ms))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Refuses a second ban on a target already banned: the operator unbans first to change it.
    pub(crate) fn check_free(&self, key: &str, now_ms: i64) -> Result<(), PeerError> {
        match self.bans.get(key).filter(|b| !b.is_expired(now_ms)) {
            Some(existing) => Err(PeerError::Conflict(format!(
                "{key} is already banned ({}); unban it first to change the ban",
                existing.reason
            ))),
            None => Ok(()),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Ban> {
        self.bans.get(key)
    }

    /// Takes a ban in (replacing an expired one on the same target).
    pub(crate) fn insert(&mut self, ban: Ban) {
        self.bans.insert(ban.target.key(), ban);
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Ban> {
        self.bans.remove(key)
    }

    /// The key of the ban an operator means by `text`: an IP or CIDR, or the one banned peer
    /// that `text` names as a prefix of its ID or as its name (`named`: the IDs of the known
    /// peers with that name). Several candidates are ambiguous.
    pub(crate) fn key_for_unban(&self, text: &str, named: &[String]) -> Result<String, PeerError> {
        let text = text.trim();
        if let Some(target) = BanTarget::parse_network(text) {
            return Ok(target.key());
        }
        let lower = text.to_ascii_lowercase();
        if text.is_empty() {
            return Err(PeerError::NoBan(text.to_string()));
        }
        let hex = lower.bytes().all(|b| b.is_ascii_hexdigit());
        let mut banned_ids: Vec<&String> = self
            .bans
            .iter()
            .filter(|(_, b)| b.target.kind() == BanKind::Peer)
            .map(|(k, _)| k)
            .filter(|k| (hex && k.starts_with(&lower)) || named.contains(k))
            .collect();
        banned_ids.sort();
        match banned_ids.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(PeerError::NoBan(text.to_string())),
            many => Err(PeerError::Ambiguous {
                text: text.to_string(),
                total: many.len(),
                candidates: many
                    .iter()
                    .take(5)
                    .map(|id| {
                        id.get(..(lower.len() + 4).max(12))
                            .unwrap_or(id)
                            .to_string()
                    })
                    .collect(),
            }),
        }
    }
}

/// A new ban on `target`, checked: a reason (the default when blank) of at most
/// [`bans::MAX_REASON_LEN`] characters and a duration that fits (see [`bans::expiry`]).
pub(crate) fn new_ban(
    target: BanTarget,
    reason: Option<String>,
    duration: Option<Duration>,
    source: BanSource,
    now_ms: i64,
) -> Result<Ban, PeerError> {
    let reason = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| DEFAULT_BAN_REASON.to_string());
    if reason.chars().count() > bans::MAX_REASON_LEN {
        return Err(PeerError::Invalid(format!(
            "the reason is longer than {} characters",
            bans::MAX_REASON_LEN
        )));
    }
    let expires_at_ms = duration
        .map(|d| bans::expiry(now_ms, d))
        .transpose()
        .map_err(|e| PeerError::Invalid(e.to_string()))?;
    Ok(Ban {
        target,
        reason,
        source,
        banned_at_ms: now_ms,
        expires_at_ms,
    })
}

/// Which of the `connected` peers (ID and every IP it is known by) a ban covers: the
/// connections to close when it is imposed.
pub(super) fn disconnects<'a>(
    ban: &Ban,
    now_ms: i64,
    connected: impl Iterator<Item = (&'a str, Vec<IpAddr>)>,
) -> Vec<String> {
    if ban.is_expired(now_ms) {
        return Vec::new();
    }
    connected
        .filter(|(id, ips)| ban.target.matches(Some(id), ips))
        .map(|(id, _)| id.to_string())
        .collect()
}

/// A stored ban row that does not describe a ban.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BanRowError {
    #[error("ban target '{0}' is not an address")]
    NotAnAddress(String),
    #[error("unknown ban kind '{0}'")]
    UnknownKind(String),
    #[error("unknown ban source '{0}'")]
    UnknownSource(String),
}

/// The stored form of a ban.
pub(crate) fn ban_to_row(ban: &Ban) -> BanRow {
    BanRow {
        target: ban.target.key(),
        kind: ban.target.kind().as_str().to_string(),
        reason: ban.reason.clone(),
        source: ban.source.as_str().to_string(),
        banned_at_ms: ban.banned_at_ms,
        expires_at_ms: ban.expires_at_ms,
    }
}

/// Rebuilds a ban from the store; a row that does not parse is reported, never guessed at.
pub(crate) fn ban_from_row(row: &BanRow) -> Result<Ban, BanRowError> {
    let target = match row.kind.as_str() {
        "peer" => BanTarget::Peer(row.target.clone()),
        "ip" | "cidr" => BanTarget::parse_network(&row.target)
            .ok_or_else(|| BanRowError::NotAnAddress(row.target.clone()))?,
        other => return Err(BanRowError::UnknownKind(other.to_string())),
    };
    let source = match row.source.as_str() {
        "manual" => BanSource::Manual,
        "automatic" => BanSource::Automatic,
        other => return Err(BanRowError::UnknownSource(other.to_string())),
    };
    Ok(Ban {
        target,
        reason: row.reason.clone(),
        source,
        banned_at_ms: row.banned_at_ms,
        expires_at_ms: row.expires_at_ms,
    })
}

/// Where bans persist.
pub(super) struct BanStore {
    store: Arc<dyn Store>,
}

impl BanStore {
    pub(super) fn new(store: Arc<dyn Store>) -> BanStore {
        BanStore { store }
    }

    /// The stored bans. Bans that expired while the node was down are deleted; a corrupt ban
    /// row stops start-up rather than silently letting a peer back in.
    pub(super) async fn load(&self, now_ms: i64) -> Result<BanList, StoreError> {
        let mut list = BanList::default();
        for row in self.store.load_bans().await? {
            let ban = ban_from_row(&row).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if ban.is_expired(now_ms) {
                self.store.delete_ban(&row.target).await?;
                tracing::info!(target = %row.target, "ban expired while the node was down");
            } else {
                list.insert(ban);
            }
        }
        Ok(list)
    }

    /// Stores a ban, replacing an expired one on the same target that may still be stored.
    pub(super) async fn save(&self, ban: &Ban) -> Result<(), StoreError> {
        self.store.delete_ban(&ban.target.key()).await?;
        self.store.insert_ban(&ban_to_row(ban)).await
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete_ban(key).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_bad_rows_are_reported() {
        let ban = Ban {
            target: BanTarget::parse_network("10.0.0.0/8").expect("cidr"),
            reason: "spam".into(),
            source: BanSource::Automatic,
            banned_at_ms: 1_000,
            expires_at_ms: Some(3_000),
        };
        assert_eq!(ban_from_row(&ban_to_row(&ban)), Ok(ban));
        let mut bad = BanRow {
            target: "x".into(),
            kind: "planet".into(),
            reason: String::new(),
            source: "manual".into(),
            banned_at_ms: 0,
            expires_at_ms: None,
        };
        assert_eq!(
            ban_from_row(&bad),
            Err(BanRowError::UnknownKind("planet".into()))
        );
        bad.kind = "ip".into();
        assert_eq!(
            ban_from_row(&bad),
            Err(BanRowError::NotAnAddress("x".into()))
        );
        bad.kind = "peer".into();
        bad.source = "rumour".into();
        assert_eq!(
            ban_from_row(&bad),
            Err(BanRowError::UnknownSource("rumour".into()))
        );
    }
}
