//! JWTs and `Authorization` headers as the admin API and the platform listener read them
//! (`admin::auth::Authenticator::principal`, which `platform::auth` calls too), with a node
//! configured for HS256, an issuer and an audience.
//!
//! Three modes: a raw header value; a token whose header and claims the fuzzer writes and that
//! is signed with the node's key (so the claim checks run); the same signed with another key.
//! Checks: another key's token is never taken; a taken token is within its lifetime rules, has
//! the issuer and audience, and a reader tier never manages peers.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sorcha_peer::admin::auth::{Authenticator, JWT_LEEWAY, JwtVerifier, Principal};
use sorcha_peer::config::{Layers, Source};

const KEY: &str = "fuzzing-key-of-at-least-thirty-two-bytes";
const ADMIN_TOKEN: &str = "the-admin-token";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "sorcha";
const MAX_LIFETIME_SECS: f64 = 3600.0;

fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let mut layers = Layers::default();
        let file = format!(
            "jwt_key = \"{KEY}\"\njwt_issuer = \"{ISSUER}\"\njwt_audience = \"{AUDIENCE}\"\n\
             jwt_max_lifetime = \"1h\"\nadmin_open_cidrs = [\"10.0.0.0/8\"]\n"
        );
        layers.add_toml(&file, Source::Default).expect("config");
        let config = layers.resolve().expect("resolves");
        let jwt = JwtVerifier::from_config(&config).expect("verifier");
        Authenticator::new(&config, ADMIN_TOKEN.into(), jwt)
    })
}

// The first byte picks the mode: a raw header value, or a token signed with this node's key
// or with another, whose header and claims are the rest split at a NUL byte.
fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (value, signed_claims, other_key) = match mode % 3 {
        0 => (rest.to_vec(), None, false),
        signed => {
            let other_key = signed == 2;
            let at = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            let head = &rest[..at];
            let claims = rest.get(at + 1..).unwrap_or_default().to_vec();
            let key = if other_key {
                "another-key-of-at-least-thirty-two-bytes"
            } else {
                KEY
            };
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(head),
                URL_SAFE_NO_PAD.encode(&claims)
            );
            let Ok(signature) = jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &EncodingKey::from_secret(key.as_bytes()),
                Algorithm::HS256,
            ) else {
                return;
            };
            (
                format!("Bearer {input}.{signature}").into_bytes(),
                Some(claims),
                other_key,
            )
        }
    };
    let Ok(value) = HeaderValue::from_bytes(&value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    let remote = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    match authenticator().principal(&headers, remote) {
        Ok(Principal::Jwt {
            manages_peers,
            reads_only,
            ..
        }) => {
            assert!(!other_key, "a token signed with another key is refused");
            assert!(
                !(manages_peers && reads_only),
                "a reader tier manages nothing"
            );
            if let Some(claims) = signed_claims {
                check_claims(&claims, now);
            }
        }
        Ok(Principal::AdminToken) => {
            let sent = headers[header::AUTHORIZATION].to_str().unwrap_or_default();
            assert!(
                sent.trim_end().ends_with(ADMIN_TOKEN),
                "only the admin token is the admin"
            );
        }
        Ok(Principal::Anonymous { .. }) => panic!("a request with credentials is not anonymous"),
        Err(_) => {}
    }
});

/// What a taken token's claims must say.
fn check_claims(claims: &[u8], now: f64) {
    let claims: serde_json::Map<String, Value> =
        serde_json::from_slice(claims).expect("taken claims are a JSON object");
    let leeway = JWT_LEEWAY.as_secs_f64();
    let number = |name: &str| claims.get(name).and_then(Value::as_f64);
    let exp = number("exp").expect("exp is required");
    let iat = number("iat").expect("iat is required");
    assert!(exp + leeway >= now, "not expired");
    assert!(iat <= now + leeway, "not issued in the future");
    assert!(exp - iat <= MAX_LIFETIME_SECS, "not too long-lived");
    assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER));
    let aud = claims.get("aud").expect("aud is required");
    let names_ours = match aud {
        Value::String(a) => a == AUDIENCE,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    assert!(names_ours, "the audience is ours: {aud}");
}
