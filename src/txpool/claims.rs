//! In-flight claims: the exact set of transactions (by short ID, all gossip may know of one)
//! whose payloads gossip is fetching right now. Gossip pulls claim their IDs, so two gossip
//! pulls never fetch the same payload at once, and a docket push that lacks payloads first
//! waits for the claims on them rather than pulling them a second time. A push's own pull
//! takes no claim, so gossip may still fetch a payload a push is fetching: taking one there
//! changed nothing measurable (issue 18: gossip copies stay at 31/32 per node, every one of
//! them needed). A claim is held by a [`Claim`] guard and released when the guard is dropped
//! (also when its task is cancelled); every release wakes whoever waits for those IDs, without
//! polling.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::ledger::{ShortId, short_id};
use crate::protocol::TxRef;

/// The IDs being fetched, and the wake-up for those waiting for them.
#[derive(Default)]
pub(crate) struct Claims {
    inflight: Mutex<HashSet<ShortId>>,
    released: Notify,
}

/// IDs claimed by one fetch; released (and waiters woken) when dropped.
pub struct Claim<'a> {
    claims: &'a Claims,
    ids: Vec<TxRef>,
}

impl Claim<'_> {
    /// The transactions this fetch holds.
    pub fn ids(&self) -> &[TxRef] {
        &self.ids
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        {
            let mut inflight = self.claims.lock();
            for id in &self.ids {
                inflight.remove(&id.short());
            }
        }
        self.claims.released.notify_waiters();
    }
}

impl Claims {
    fn lock(&self) -> MutexGuard<'_, HashSet<ShortId>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims every ID nobody else is fetching. Returns the claim and the IDs someone else
    /// holds already (in the given order).
    pub(crate) fn claim(&self, ids: Vec<TxRef>) -> (Claim<'_>, Vec<TxRef>) {
        let mut claimed = Vec::with_capacity(ids.len());
        let mut taken = Vec::new();
        {
            let mut inflight = self.lock();
            for id in ids {
                if inflight.insert(id.short()) {
                    claimed.push(id);
                } else {
                    taken.push(id);
                }
            }
        }
        (
            Claim {
                claims: self,
                ids: claimed,
            },
            taken,
        )
    }

    pub(crate) fn is_claimed(&self, id: &[u8; 32]) -> bool {
        self.lock().contains(&short_id(id))
    }

    /// Waits until none of `ids` is claimed any more, at most `within`. Returns whether they
    /// were all released in time.
    pub(crate) async fn wait_released(&self, ids: &[[u8; 32]], within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            // Registered before checking, so a release in between is not missed.
            notified.as_mut().enable();
            if !ids.iter().any(|id| self.is_claimed(id)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_claimed_once_until_released() {
        let claims = Claims::default();
        let (a, b) = ([1; 32], [2; 32]);
        let (first, taken) = claims.claim(vec![TxRef::Full(a), TxRef::Full(b)]);
        assert_eq!(first.ids(), &[TxRef::Full(a), TxRef::Full(b)]);
        assert!(taken.is_empty());
        // Named by its short ID, it is the same transaction.
        let (second, taken) = claims.claim(vec![TxRef::Short([2; 16])]);
        assert!(second.ids().is_empty());
        assert_eq!(taken, vec![TxRef::Short([2; 16])]);
        drop(first);
        assert!(!claims.is_claimed(&a) && !claims.is_claimed(&b));
        let (third, _) = claims.claim(vec![TxRef::Full(b)]);
        assert_eq!(third.ids(), &[TxRef::Full(b)]);
    }

    #[tokio::test]
    async fn a_waiter_wakes_on_release_not_at_its_deadline() {
        let claims = Claims::default();
        let id = [7; 32];
        let (claim, _) = claims.claim(vec![TxRef::Full(id)]);
        let holder = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(claim);
        };
        let waiter = async {
            let started = std::time::Instant::now();
            let released = claims.wait_released(&[id], Duration::from_secs(10)).await;
            (released, started.elapsed())
        };
        let ((), (released, waited)) = tokio::join!(holder, waiter);
        assert!(released);
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(!claims.is_claimed(&id));
    }

    #[tokio::test]
    async fn a_claim_that_is_not_released_times_out() {
        let claims = Claims::default();
        let (_held, _) = claims.claim(vec![TxRef::Short([9; 16])]);
        let started = std::time::Instant::now();
        assert!(
            !claims
                .wait_released(&[[9; 32]], Duration::from_millis(50))
                .await
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        // IDs nobody holds are released already.
        assert!(
            claims
                .wait_released(&[[8; 32]], Duration::from_millis(1))
                .await
        );
    }
}
