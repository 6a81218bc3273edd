//! Every admin API request body: read as the routes read it (`admin::json_body`, the serde
//! bodies of `api/`), then the checks the handler applies before
//! it changes anything. The first byte picks the route, the rest is the body. Checks that a
//! body read once reads the same after a trip through serde, and that what the checks accept
//! is within their rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sorcha_peer::api::{
    AdvertiseRequest, BanRequest, BatchSubmitRequest, BulkAdvertiseRequest, ConnectRequest,
    CreateRegisterRequest, SubscribeRequest,
};
use sorcha_peer::config::validate_host_port;
use sorcha_peer::fuzzing::{admin_json_body, ban_duration, new_ban};
use sorcha_peer::ledger::{Mode, validate_register_id};
use sorcha_peer::peers::bans::{MAX_BAN_DURATION, MAX_REASON_LEN};
use sorcha_peer::peers::{BanSource, BanTarget};
use sorcha_peer::service::advertisements::{Advertisement, Advertisements, MAX_ADVERTISEMENTS};

fuzz_target!(|data: &[u8]| {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    match route % 8 {
        0 => ban(body),
        1 => {
            if let Some(r) = read::<CreateRegisterRequest>(body) {
                if let Some(id) = r.register_id {
                    let _ = validate_register_id(&id);
                }
            }
        }
        2 => {
            if let Some(SubscribeRequest { mode: Some(text) }) = read(body) {
                if let Some(mode) = Mode::parse(&text) {
                    assert_eq!(Mode::parse(mode.as_str()), Some(mode));
                }
            }
        }
        3 => {
            if let Some(ConnectRequest { address: Some(a) }) = read(body) {
                let _ = validate_host_port(a.trim());
            }
        }
        4 => {
            let _ = read::<BatchSubmitRequest>(body);
        }
        5 => {
            if let Some(r) = read_plain::<BulkAdvertiseRequest>(body) {
                let items = r.advertisements.into_iter().map(advertisement).collect();
                bulk(items, r.full_sync);
            }
        }
        6 => {
            if let Some(r) = read_plain::<AdvertiseRequest>(body) {
                let ads = Advertisements::default();
                let item = Advertisement {
                    register_id: "fuzz-register".into(),
                    name: r.name,
                    description: r.description,
                    is_public: r.is_public,
                    latest_version: 0,
                    latest_docket_version: 0,
                    updated_at_ms: 0,
                };
                if ads.set_public(item).is_ok() {
                    assert!(ads.list().len() <= 1);
                }
            }
        }
        _ => {
            // `distribute`: the body must be a JSON object, kept byte for byte.
            let _ = serde_json::from_slice::<serde_json::Value>(body).map(|v| v.is_object());
        }
    }
});

/// A body as the admin routes read it; once read, it must read the same after serde.
fn read<T: Default + DeserializeOwned + Serialize>(body: &[u8]) -> Option<T> {
    let value: T = admin_json_body(body).ok()?;
    round_trip(&value);
    Some(value)
}

/// A body as the platform's REST routes read it (axum's `Json`, no blank default).
fn read_plain<T: DeserializeOwned + Serialize>(body: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(body).ok()?;
    round_trip(&value);
    Some(value)
}

fn round_trip<T: DeserializeOwned + Serialize>(value: &T) {
    let json = serde_json::to_value(value).expect("serialises");
    let again: T = serde_json::from_value(json.clone()).expect("reads what it wrote");
    assert_eq!(serde_json::to_value(&again).expect("serialises"), json);
}

/// `POST /api/bans` and `POST /api/peers/{id}/ban`, up to the peer table.
fn ban(body: &[u8]) {
    let Some(r) = read::<BanRequest>(body) else {
        return;
    };
    let duration = match (r.duration, r.duration_minutes) {
        (Some(_), Some(_)) | (None, Some(0)) => return,
        (None, Some(minutes)) => Some(format!("{minutes}m")),
        (text, None) => text,
    };
    let Ok(duration) = ban_duration(duration.as_deref()) else {
        return;
    };
    if let Some(d) = duration {
        assert!(!d.is_zero() && d <= MAX_BAN_DURATION);
    }
    let target = r
        .target
        .as_deref()
        .and_then(BanTarget::parse_network)
        .unwrap_or_else(|| BanTarget::Peer("0123456789abcdef0123456789abcdef".into()));
    let now = 1_800_000_000_000;
    if let Ok(ban) = new_ban(target, r.reason, duration, BanSource::Manual, now) {
        assert!(ban.reason.chars().count() <= MAX_REASON_LEN);
        assert!(!ban.reason.trim().is_empty());
        assert_eq!(ban.expires_at_ms.is_some(), duration.is_some());
        assert!(ban.expires_at_ms.is_none_or(|at| at > now));
    }
}

fn advertisement(a: sorcha_peer::api::AdvertisementDto) -> Advertisement {
    Advertisement {
        register_id: a.register_id,
        name: a.name,
        description: a.description,
        is_public: a.is_public,
        latest_version: a.latest_version,
        latest_docket_version: a.latest_docket_version,
        updated_at_ms: 0,
    }
}

/// `POST /api/registers/bulk-advertise`: all or nothing, each item checked, bounded.
fn bulk(items: Vec<Advertisement>, full_sync: bool) {
    let ads = Advertisements::default();
    let count = items.len();
    let valid = items
        .iter()
        .all(|i| validate_register_id(&i.register_id).is_ok());
    match ads.bulk(items, full_sync) {
        Ok(outcome) => {
            assert!(valid);
            assert_eq!(outcome.processed, count);
            assert!(ads.list().len() <= MAX_ADVERTISEMENTS.min(count));
            for held in ads.list() {
                assert!(validate_register_id(&held.register_id).is_ok());
            }
        }
        Err(_) => assert!(ads.list().is_empty(), "a refused update changes nothing"),
    }
}
