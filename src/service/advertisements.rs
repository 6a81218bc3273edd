//! Registers the platform's local Register service holds, as it reports them (REST
//! `bulk-advertise` and `advertise`): their names, descriptions, visibility and versions.
//!
//! These are the Register service's registers, not this node's: the node cannot serve their
//! dockets, so it never advertises them to peers as held (what it advertises on the peer
//! protocol is only what it holds and has verified). They are kept for the platform and the
//! operator to read, in memory and bounded: the Register service sends the full list at its
//! start and every five minutes (`fullSync`), so nothing is lost by a restart of this node
//! for longer than that.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::ledger;

/// Most advertisements held (the Register service's registers).
pub const MAX_ADVERTISEMENTS: usize = 10_000;
/// Longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 2048;

/// One register as the Register service reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Advertisement {
    pub register_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_public: bool,
    pub latest_version: u64,
    pub latest_docket_version: u64,
    pub updated_at_ms: i64,
}

/// What a bulk update did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    pub processed: usize,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
}

/// Why an update was refused (nothing was changed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdvertiseError {
    #[error("advertisement {index}: {reason}")]
    Invalid { index: usize, reason: String },
    #[error("at most {limit} registers can be advertised; this update would hold {count}")]
    TooMany { count: usize, limit: usize },
}

/// The advertisements held, by register.
#[derive(Default)]
pub struct Advertisements {
    inner: Mutex<BTreeMap<String, Advertisement>>,
}

impl Advertisements {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Advertisement>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every advertisement held, by register.
    pub fn list(&self) -> Vec<Advertisement> {
        self.lock().values().cloned().collect()
    }

    pub fn get(&self, register_id: &str) -> Option<Advertisement> {
        self.lock().get(register_id).cloned()
    }

    /// Adds or updates every item; with `full_sync`, removes those not listed. Every item is
    /// checked first: one bad item refuses the whole update and changes nothing.
    pub fn bulk(
        &self,
        items: Vec<Advertisement>,
        full_sync: bool,
    ) -> Result<BulkOutcome, AdvertiseError> {
        for (index, item) in items.iter().enumerate() {
            check(item).map_err(|reason| AdvertiseError::Invalid { index, reason })?;
        }
        let mut held = self.lock();
        let listed: std::collections::HashSet<&str> =
            items.iter().map(|i| i.register_id.as_str()).collect();
        let kept = if full_sync {
            held.keys().filter(|k| listed.contains(k.as_str())).count()
        } else {
            held.len()
        };
        let new = listed.iter().filter(|id| !held.contains_key(**id)).count();
        if kept + new > MAX_ADVERTISEMENTS {
            return Err(AdvertiseError::TooMany {
                count: kept + new,
                limit: MAX_ADVERTISEMENTS,
            });
        }
        let mut outcome = BulkOutcome {
            processed: items.len(),
            ..BulkOutcome::default()
        };
        if full_sync {
            let before = held.len();
            held.retain(|id, _| listed.contains(id.as_str()));
            outcome.removed = before - held.len();
        }
        for item in items {
            match held.insert(item.register_id.clone(), item.clone()) {
                None => outcome.added += 1,
                Some(old) if old != item => outcome.updated += 1,
                Some(_) => {}
            }
        }
        Ok(outcome)
    }

    /// A register became public (advertised, keeping what is known of it) or private
    /// (removed, as the original did). Returns whether anything changed.
    pub fn set_public(&self, item: Advertisement) -> Result<bool, AdvertiseError> {
        check(&item).map_err(|reason| AdvertiseError::Invalid { index: 0, reason })?;
        let mut held = self.lock();
        if !item.is_public {
            return Ok(held.remove(&item.register_id).is_some());
        }
        if !held.contains_key(&item.register_id) && held.len() >= MAX_ADVERTISEMENTS {
            return Err(AdvertiseError::TooMany {
                count: held.len() + 1,
                limit: MAX_ADVERTISEMENTS,
            });
        }
        let merged = match held.get(&item.register_id) {
            Some(old) => Advertisement {
                name: item.name.or_else(|| old.name.clone()),
                description: item.description.or_else(|| old.description.clone()),
                latest_version: old.latest_version,
                latest_docket_version: old.latest_docket_version,
                ..item
            },
            None => item,
        };
        let changed = held.get(&merged.register_id) != Some(&merged);
        held.insert(merged.register_id.clone(), merged);
        Ok(changed)
    }
}

fn check(item: &Advertisement) -> Result<(), String> {
    ledger::validate_register_id(&item.register_id).map_err(|e| e.to_string())?;
    if item.name.as_ref().is_some_and(|n| n.len() > MAX_NAME_BYTES) {
        return Err(format!("name is longer than {MAX_NAME_BYTES} bytes"));
    }
    if item
        .description
        .as_ref()
        .is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES)
    {
        return Err(format!(
            "description is longer than {MAX_DESCRIPTION_BYTES} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(id: &str, version: u64) -> Advertisement {
        Advertisement {
            register_id: id.into(),
            name: Some(format!("{id} name")),
            description: None,
            is_public: true,
            latest_version: version,
            latest_docket_version: version / 10,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn bulk_counts_what_it_added_updated_and_removed() {
        let ads = Advertisements::default();
        let first = ads.bulk(vec![ad("a", 1), ad("b", 1)], true).expect("first");
        assert_eq!((first.added, first.updated, first.removed), (2, 0, 0));
        let second = ads
            .bulk(vec![ad("a", 1), ad("c", 1), ad("b", 2)], false)
            .expect("second");
        assert_eq!((second.added, second.updated, second.removed), (1, 1, 0));
        let full = ads.bulk(vec![ad("c", 1)], true).expect("full sync");
        assert_eq!((full.processed, full.added, full.removed), (1, 0, 2));
        assert_eq!(ads.list(), vec![ad("c", 1)]);
    }

    #[test]
    fn one_bad_item_changes_nothing() {
        let ads = Advertisements::default();
        ads.bulk(vec![ad("a", 1)], false).expect("a");
        let mut long = ad("b", 1);
        long.name = Some("x".repeat(MAX_NAME_BYTES + 1));
        for bad in [vec![ad("c", 1), ad("no spaces", 1)], vec![ad("c", 1), long]] {
            let refused = ads.bulk(bad, true);
            assert!(
                matches!(refused, Err(AdvertiseError::Invalid { index: 1, .. })),
                "{refused:?}"
            );
            assert_eq!(ads.list(), vec![ad("a", 1)]);
        }
    }

    #[test]
    fn the_number_held_is_bounded() {
        let ads = Advertisements::default();
        let many: Vec<Advertisement> = (0..MAX_ADVERTISEMENTS)
            .map(|i| ad(&format!("r{i}"), 1))
            .collect();
        ads.bulk(many, false).expect("at the bound");
        let refused = ads.bulk(vec![ad("one-more", 1)], false);
        assert!(matches!(refused, Err(AdvertiseError::TooMany { .. })));
        assert!(ads.set_public(ad("one-more", 1)).is_err());
        // A full sync that replaces them is fine.
        ads.bulk(vec![ad("one-more", 1)], true).expect("replace");
        assert_eq!(ads.list().len(), 1);
    }

    #[test]
    fn private_removes_and_public_keeps_what_is_known() {
        let ads = Advertisements::default();
        ads.bulk(vec![ad("a", 7)], false).expect("a");
        let mut again = ad("a", 0);
        again.name = None;
        assert!(!ads.set_public(again).expect("public"));
        assert_eq!(ads.get("a"), Some(ad("a", 7)));
        let mut private = ad("a", 0);
        private.is_public = false;
        assert!(ads.set_public(private).expect("private"));
        assert!(ads.get("a").is_none());
    }
}
