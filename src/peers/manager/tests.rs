//! The peer facade on a manual clock and an in-memory store: rules that depend on time are
//! checked at the exact millisecond, without waiting and without a network.

use std::sync::Arc;
use std::time::Duration;

use super::PeerManager;
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::events::{EventKind, Events};
use crate::identity::Identity;
use crate::peers::BanSource;
use crate::store::{self, Store};
use crate::telemetry::Metrics;

async fn manager(clock: &ManualClock) -> (PeerManager, Arc<dyn Store>, Arc<Events>) {
    let store = store::open_in_memory().await.expect("store");
    let events = Arc::new(Events::new());
    let manager = PeerManager::load(
        Arc::new(Identity::generate()),
        Arc::new(Config::defaults().expect("defaults")),
        store.clone(),
        Arc::new(Metrics::new()),
        events.clone(),
        Clock::Manual(clock.clone()),
    )
    .await
    .expect("load");
    (manager, store, events)
}

fn expired_unbans(events: &Events) -> usize {
    (events.recent(100).iter())
        .filter(|e| matches!(e.kind, EventKind::PeerUnbanned { expired: true, .. }))
        .count()
}

#[tokio::test]
async fn a_ban_holds_until_its_last_millisecond_then_ends_and_leaves_the_store() {
    let clock = ManualClock::new(1_800_000_000_000);
    let (manager, store, events) = manager(&clock).await;
    let target = manager.parse_target("203.0.113.7").expect("target");
    let hour = Duration::from_secs(3600);
    manager
        .ban(target, Some("test".into()), Some(hour), BanSource::Manual)
        .await
        .expect("ban");

    clock.advance(hour - Duration::from_millis(1));
    manager.expire_bans().await.expect("expire");
    assert_eq!(
        manager.bans().len(),
        1,
        "in force a millisecond before its end"
    );
    assert_eq!(store.load_bans().await.expect("bans").len(), 1);
    assert_eq!(expired_unbans(&events), 0);

    clock.advance(Duration::from_millis(1));
    assert!(manager.bans().is_empty(), "over at its end, tidied or not");
    manager.expire_bans().await.expect("expire");
    assert!(store.load_bans().await.expect("bans").is_empty(), "deleted");
    assert_eq!(expired_unbans(&events), 1, "told once");
    manager.expire_bans().await.expect("expire");
    assert_eq!(expired_unbans(&events), 1, "and only once");
}

#[tokio::test]
async fn a_ban_without_a_duration_outlives_any_wait() {
    let clock = ManualClock::new(1_800_000_000_000);
    let (manager, store, _) = manager(&clock).await;
    let target = manager.parse_target("198.51.100.0/24").expect("target");
    manager
        .ban(target, None, None, BanSource::Manual)
        .await
        .expect("ban");
    clock.advance(Duration::from_secs(10 * 365 * 24 * 3600));
    manager.expire_bans().await.expect("expire");
    assert_eq!(manager.bans().len(), 1);
    assert_eq!(store.load_bans().await.expect("bans").len(), 1);
}
