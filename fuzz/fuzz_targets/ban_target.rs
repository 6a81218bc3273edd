//! Ban targets and durations as operators, the admin API and the store give them: the
//! network-target parser (`peers::bans`), the unban lookup (`peers::banlist`), ban rows read
//! back from the store, durations (`clock::parse_duration`, the ban duration rule, expiry).
//! Checks that parsing is canonical (a key parses to the same target), that a subnet covers
//! its own addresses, that durations round-trip, and that no expiry lands in the past.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use sorcha_peer::clock::{format_duration, parse_duration};
use sorcha_peer::fuzzing::{ban_duration, ban_from_row, ban_to_row, unban_key};
use sorcha_peer::peers::bans::{self, MAX_BAN_DURATION};
use sorcha_peer::peers::{Ban, BanSource, BanTarget};
use sorcha_peer::store::BanRow;

/// This node's own addresses, for the self-ban rule.
const OWN_IPS: [&str; 3] = ["10.1.2.3", "::1", "2001:db8::7"];

// Lines: a ban target, a duration, "now" in unix ms, an unban text, a stored ban row
// (`target|kind|reason|source|banned_at|expires`), then the IDs of banned peers.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or_default();
    let (target_text, duration_text) = (next(), next());
    let now_ms = next().trim().parse().unwrap_or(1_800_000_000_000);
    let (unban_text, row_text) = (next(), next());
    let banned: Vec<String> = lines.map(str::to_string).collect();
    for ip in OWN_IPS {
        target(target_text, ip.parse().expect("an IP"));
    }
    duration(duration_text, now_ms);
    row(row_text);
    unban(unban_text, banned);
    let _ = bans::address_ip(target_text);
});

fn target(text: &str, own_ip: IpAddr) {
    let Some(target) = BanTarget::parse_network(text) else {
        return;
    };
    let key = target.key();
    assert_eq!(
        BanTarget::parse_network(&key).as_ref(),
        Some(&target),
        "{key}"
    );
    match &target {
        BanTarget::Ip(ip) => assert!(target.matches(None, &[*ip])),
        BanTarget::Cidr(net) => {
            assert!(target.matches(None, &[net.network()]));
            assert!(target.matches(None, &[net.broadcast()]));
        }
        BanTarget::Peer(_) => panic!("a network target is never a peer"),
    }
    if target.matches(None, &[own_ip]) && !own_ip.is_unspecified() {
        assert!(
            target.self_ban("self", &[own_ip]).is_some(),
            "a ban on ourselves is caught"
        );
    }
}

fn duration(text: &str, now_ms: i64) {
    if let Ok(d) = parse_duration(text) {
        let shown = format_duration(d);
        assert_eq!(parse_duration(&shown).ok(), Some(d), "{shown}");
        if let Ok(at) = bans::expiry(now_ms, d) {
            assert!(at > now_ms, "an expiry is after the ban");
        }
    }
    if let Ok(Some(d)) = ban_duration(Some(text)) {
        assert!(!d.is_zero() && d <= MAX_BAN_DURATION);
    }
}

fn row(text: &str) {
    let mut f = text.split('|');
    let mut field = || f.next().unwrap_or_default().to_string();
    let (target, kind, reason, source) = (field(), field(), field(), field());
    let row = BanRow {
        target,
        kind,
        reason,
        source,
        banned_at_ms: field().parse().unwrap_or(0),
        expires_at_ms: field().parse().ok(),
    };
    if let Ok(ban) = ban_from_row(&row) {
        let again = ban_to_row(&ban);
        assert_eq!(
            ban_from_row(&again).as_ref(),
            Ok(&ban),
            "a stored ban reads back"
        );
    }
}

fn unban(text: &str, ids: Vec<String>) {
    let bans: Vec<Ban> = ids
        .into_iter()
        .take(16)
        .map(|id| Ban {
            target: BanTarget::Peer(id),
            reason: "fuzz".into(),
            source: BanSource::Manual,
            banned_at_ms: 0,
            expires_at_ms: None,
        })
        .collect();
    let keys: Vec<String> = bans.iter().map(|b| b.target.key()).collect();
    if let Ok(key) = unban_key(bans, text, &[]) {
        let network = BanTarget::parse_network(text.trim()).is_some();
        assert!(
            network || keys.contains(&key),
            "an unban names a ban or an address"
        );
    }
}
