//! What an operator asks of the registers held: subscribe to one a peer offers, unsubscribe
//! (keeping or dropping what is held), purge, and which registers only given peers carry (the
//! guard before banning them). A child of `replication`, so it sees `Registers`' fields.

use std::sync::Arc;

use super::{
    Mode, PeerMessage, Purged, RegisterError, Registers, Role, SubscriptionRecord,
    SubscriptionTask, SubscriptionView,
};
use crate::ledger;

impl Registers {
    /// Subscribes to a register some connected peer advertises; `true` with the view when a
    /// subscription was made, `false` when it existed already in this mode (nothing changed).
    pub async fn subscribe(
        self: &Arc<Self>,
        register_id: &str,
        mode: Mode,
    ) -> Result<(SubscriptionView, bool), RegisterError> {
        ledger::validate_register_id(register_id)
            .map_err(|e| RegisterError::Invalid(e.to_string()))?;
        if let Some(current) = self.subs.status(register_id) {
            // The same subscription again changes nothing (scripts can repeat it).
            if current.mode == mode {
                return self
                    .subscription(register_id)
                    .map(|view| (view, false))
                    .ok_or_else(|| RegisterError::NotFound(register_id.to_string()));
            }
            return Err(RegisterError::Conflict(format!(
                "already subscribed to '{register_id}' as {}; unsubscribe first to change the mode",
                current.mode.as_str()
            )));
        }
        let held = self.chain.get(register_id);
        if let Some(h) = &held {
            check_mode_switch(register_id, h, mode)?;
        }
        if self.peers.carriers(register_id).is_empty() {
            return Err(RegisterError::NotFound(format!(
                "no connected peer advertises register '{register_id}'"
            )));
        }
        // Data held already (an earlier subscription) now serves the new mode.
        let previous_role = held.as_ref().map(|h| h.role);
        if held.is_some() {
            self.chain.set_role(register_id, mode.role()).await?;
        }
        let now = self.clock.now_ms();
        let record = SubscriptionRecord {
            register_id: register_id.to_string(),
            mode,
            created_at_ms: now,
        };
        if let Err(e) = self.store.put_subscription(&record).await {
            // Nothing changes on failure: the role goes back too.
            if let Some(role) = previous_role
                && let Err(undo) = self.chain.set_role(register_id, role).await
            {
                tracing::error!(
                    register = register_id,
                    "cannot restore the role of a register after a failed subscribe: {undo}"
                );
            }
            return Err(e.into());
        }
        self.start_subscription(register_id, mode, now);
        tracing::info!(register = register_id, mode = mode.as_str(), "subscribed");
        self.subscription(register_id)
            .map(|view| (view, true))
            .ok_or_else(|| RegisterError::NotFound(register_id.to_string()))
    }

    pub(super) fn start_subscription(&self, register_id: &str, mode: Mode, created_at_ms: i64) {
        let cancel = self.shutdown.child_token();
        let wake = self
            .subs
            .insert(register_id, mode, created_at_ms, cancel.clone());
        let task = SubscriptionTask {
            ctx: self.sync.clone(),
            register_id: register_id.to_string(),
            mode,
            wake,
            cancel,
        };
        // The task ends when the subscription is cancelled (unsubscribe or node shutdown); a
        // node already shutting down starts none.
        self.tasks.spawn(task.run());
    }

    /// Stops a subscription at once; the data stays unless `purge`.
    pub async fn unsubscribe(
        &self,
        register_id: &str,
        purge: bool,
    ) -> Result<Option<Purged>, RegisterError> {
        let Some(removed) = self.subs.remove(register_id) else {
            return Err(RegisterError::NotFound(format!(
                "not subscribed to '{register_id}'"
            )));
        };
        for peer in &removed.following {
            self.peers.send(
                peer,
                PeerMessage::Follow {
                    register_id: register_id.to_string(),
                    follow: false,
                },
            );
        }
        self.store.delete_subscription(register_id).await?;
        tracing::info!(register = register_id, purge, "unsubscribed");
        if purge {
            self.purge(register_id).await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// Deletes a replicated register's data. Refused for registers this node originates and
    /// while a subscription is active.
    pub async fn purge(&self, register_id: &str) -> Result<Purged, RegisterError> {
        match self.chain.get(register_id) {
            None => {
                return Err(RegisterError::NotFound(format!(
                    "no data held for '{register_id}'"
                )));
            }
            Some(h) if h.role == Role::Origin => {
                return Err(RegisterError::Conflict(format!(
                    "this node is the origin of '{register_id}'; its data cannot be purged"
                )));
            }
            Some(_) => {}
        }
        if self.subs.contains(register_id) {
            return Err(RegisterError::Conflict(format!(
                "'{register_id}' is still subscribed; unsubscribe first (or use unsubscribe --purge)"
            )));
        }
        let (transactions, dockets) = self.chain.remove(register_id).await?;
        self.server.forget(register_id);
        self.advertise();
        tracing::info!(register = register_id, transactions, dockets, "purged");
        Ok(Purged {
            transactions,
            dockets,
        })
    }

    /// Registers (among `registers`) for which the given peers are the only connected source
    /// of an active subscription: banning them would cut replication off.
    pub fn sole_source_of(&self, peer_ids: &[String]) -> Vec<String> {
        self.subs
            .ids()
            .into_iter()
            .filter(|register_id| {
                let carriers = self.peers.carriers(register_id);
                !carriers.is_empty() && carriers.iter().all(|(id, _)| peer_ids.contains(id))
            })
            .collect()
    }
}

/// Whether a register held here as `held` may be subscribed in `mode`: never at its origin,
/// and never as a full replica over a forward-only start (its history is not held, and a
/// full replica promises every docket from the genesis).
pub(super) fn check_mode_switch(
    register_id: &str,
    held: &super::chain::Held,
    mode: Mode,
) -> Result<(), RegisterError> {
    if held.role == Role::Origin {
        return Err(RegisterError::Conflict(format!(
            "this node is the origin of '{register_id}'"
        )));
    }
    if mode == Mode::FullReplica && held.base_height > 0 {
        return Err(RegisterError::Conflict(format!(
            "'{register_id}' is held here forward-only from docket {base}: dockets 0 to {last} \
             are not held, and a full replica holds every docket from the genesis. To replicate \
             it in full, run `sorcha-peer registers purge {register_id}` and subscribe again \
             with --mode full-replica (the whole chain is then pulled and verified); to keep \
             following it from docket {base}, subscribe with --mode forward-only",
            base = held.base_height,
            last = held.base_height - 1,
        )));
    }
    Ok(())
}
