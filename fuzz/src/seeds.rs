//! Writes the committed seed corpora (`fuzz/corpus/<target>/`): real, valid inputs made with
//! the node's own code (frames, a sealed docket chain, the example config, a signed JWT, the
//! fixture CA's certificate and revocation list). Not a fuzz target; run by hand with
//! `fuzz/run.sh --seeds` after a format changes.

use std::fs;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey};
use prost::Message;
use sorcha_peer::identity::{self, NONCE_LEN, Role};
use sorcha_peer::ledger::{self, CompactDocket};
use sorcha_peer::messages::{Message as PlatformMessage, Recipient};
use sorcha_peer::protocol::convert;
use sorcha_peer::protocol::pb::{self, frame::Body};
use sorcha_peer::rpc::PROTOCOL_VERSION;

// The seed writer only builds inputs; the target reads them.
#[allow(dead_code)]
#[path = "../fuzz_targets/docket_chain_input.rs"]
mod docket_chain_input;
#[path = "seeds_platform.rs"]
mod platform;
#[path = "seeds_session.rs"]
mod session;
#[allow(dead_code)]
#[path = "../fuzz_targets/session_input.rs"]
mod session_input;

use session_input::{chain, height};

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    frames(&root.join("peer_frame"));
    handshake(&root.join("handshake"));
    docket_chain(&root.join("docket_chain"));
    admin_body(&root.join("admin_body"));
    ban_target(&root.join("ban_target"));
    config(&root.join("config"));
    jwt(&root.join("jwt"));
    certificate(&root.join("certificate"));
    platform::platform_request(&root.join("platform_request"));
    session::session(&root.join("session"));
}

fn put(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::create_dir_all(dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("seed");
}

fn frame(body: Body) -> Vec<u8> {
    pb::Frame { body: Some(body) }.encode_to_vec()
}

fn node_info(key: &SigningKey, listen: &str) -> Vec<u8> {
    pb::NodeInfo {
        public_key: key.verifying_key().to_bytes().to_vec(),
        listen_address: listen.into(),
        name: "seed-node".into(),
        protocol_version: PROTOCOL_VERSION,
        software_version: sorcha_peer::VERSION.into(),
        capabilities: vec!["heartbeat".into(), "peer-exchange".into()],
        platform_address: String::new(),
    }
    .encode_to_vec()
}

/// A platform message for every peer, sent at `timestamp_ms`, signed by its origin.
fn platform_message(timestamp_ms: i64) -> PlatformMessage {
    let mut message = PlatformMessage {
        origin: String::new(),
        nonce: 1,
        recipient: Recipient::All,
        message_type: 1,
        payload: b"{\"docket\":1}".to_vec(),
        timestamp_ms,
        hops_left: 4,
        origin_key: [0; 32],
        signature: Vec::new(),
    };
    message.sign(&SigningKey::from_bytes(&[8; 32]));
    message
}

fn frames(dir: &Path) {
    let key = SigningKey::from_bytes(&[4; 32]);
    let peer = identity::peer_id_for(&[6; 32]);
    put(
        dir,
        "hello",
        frame(Body::Hello(pb::Hello {
            node_info: node_info(&key, "0.0.0.0:5000"),
            nonce: vec![9; NONCE_LEN],
            observed_address: "192.0.2.1:5000".into(),
            dial_back: false,
        })),
    );
    put(
        dir,
        "ping",
        frame(Body::Ping(pb::Ping {
            sequence: 7,
            sent_at_ms: 1_700_000_000_000,
            registers: vec![height()],
        })),
    );
    put(
        dir,
        "exchange",
        frame(Body::ExchangeRequest(pb::PeerExchangeRequest {
            request_id: 3,
            peers: vec![pb::PeerAddress {
                peer_id: peer.clone(),
                address: "192.0.2.9:5000".into(),
                last_seen_ms: 1_700_000_000_000,
            }],
            max_peers: 50,
        })),
    );
    let chain = chain();
    put(
        dir,
        "docket_batch",
        frame(Body::DocketBatch(pb::DocketBatch {
            request_id: 4,
            register_id: "seed-register".into(),
            dockets: chain.iter().map(convert::docket_to_wire).collect(),
            error: String::new(),
        })),
    );
    put(
        dir,
        "docket_push",
        frame(Body::DocketPush(pb::DocketPush {
            docket: Some(convert::compact_to_wire(&CompactDocket::from_full(
                &chain[1],
            ))),
        })),
    );
    put(
        dir,
        "announce",
        frame(Body::Announce(pb::Announce {
            register_id: "seed-register".into(),
            tx_ids: vec![ledger::tx_hash(b"tx one").to_vec()],
            short_ids: Vec::new(),
        })),
    );
    put(
        dir,
        "announce_short",
        frame(Body::Announce(pb::Announce {
            register_id: "seed-register".into(),
            tx_ids: Vec::new(),
            short_ids: ledger::short_id(&ledger::tx_hash(b"tx two")).to_vec(),
        })),
    );
    put(
        dir,
        "goodbye",
        frame(Body::Goodbye(pb::Goodbye {
            reason: "shutting down".into(),
            ..Default::default()
        })),
    );
    let mut message = platform_message(1_800_000_000_000);
    put(
        dir,
        "platform_message",
        frame(Body::PlatformMessage(convert::platform_to_wire(&message))),
    );
    // Regression: a timestamp whose difference from "now" overflowed the relay's age check.
    message.timestamp_ms = 1_800_000_000_000i64.wrapping_add(i64::MIN);
    message.sign(&SigningKey::from_bytes(&[8; 32]));
    put(
        dir,
        "platform_message_old",
        frame(Body::PlatformMessage(convert::platform_to_wire(&message))),
    );
}

fn handshake(dir: &Path) {
    let key = SigningKey::from_bytes(&[4; 32]);
    let info = node_info(&key, "198.51.100.4:5000");
    let nonce = vec![2; NONCE_LEN];
    let t = identity::transcript(b"the dialler's node info", &[5; NONCE_LEN], &info, &nonce);
    let dir_key = std::env::temp_dir().join(format!("sorcha-seeds-{}", std::process::id()));
    fs::create_dir_all(&dir_key).expect("temp");
    fs::write(
        dir_key.join(identity::NODE_KEY_FILE),
        hex::encode([4u8; 32]),
    )
    .expect("key");
    let ours = identity::Identity::load_or_create(&dir_key).expect("identity");
    let _ = fs::remove_dir_all(&dir_key);
    put(
        dir,
        "hello_ack",
        frame(Body::HelloAck(pb::HelloAck {
            signature: ours.sign_transcript(Role::Acceptor, &t),
            node_info: info.clone(),
            nonce,
            observed_address: "192.0.2.1:40000".into(),
        })),
    );
    put(
        dir,
        "hello",
        frame(Body::Hello(pb::Hello {
            node_info: node_info(&key, "[::]:5000"),
            nonce: vec![1; NONCE_LEN],
            observed_address: "node.example:5000".into(),
            dial_back: true,
        })),
    );
    put(
        dir,
        "auth",
        frame(Body::Auth(pb::Auth {
            signature: ours.sign_transcript(Role::Dialer, &t),
        })),
    );
}

/// Byte strings that the target reads as real chains of a few dockets: found by trying
/// deterministic pseudo-random bytes (the `arbitrary` format has no writer).
fn docket_chain(dir: &Path) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut found = 0;
    for attempt in 0..200_000 {
        let bytes: Vec<u8> = (0..160)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let Ok(input) = docket_chain_input::Input::arbitrary_take_rest(Unstructured::new(&bytes))
        else {
            continue;
        };
        if let docket_chain_input::Input::Chain { batches, .. } = &input {
            if batches.iter().filter(|b| !b.is_empty()).count() >= 2 + found {
                put(dir, &format!("chain_{found}"), &bytes);
                found += 1;
            }
        }
        if found == 3 || attempt == 199_999 {
            break;
        }
    }
    put(dir, "raw", [1u8; 96]);
}

fn admin_body(dir: &Path) {
    let bodies: [(&str, u8, &str); 9] = [
        (
            "ban",
            0,
            r#"{"target":"10.0.0.0/8","reason":"abuse","duration":"1h"}"#,
        ),
        (
            "ban_minutes",
            0,
            r#"{"reason":"flooding","durationMinutes":30,"force":true}"#,
        ),
        (
            "create_register",
            1,
            r#"{"registerId":"orders-2026","isPublic":true}"#,
        ),
        ("subscribe", 2, r#"{"mode":"forward-only"}"#),
        ("connect", 3, r#"{"address":"198.51.100.4:5000"}"#),
        ("batch", 4, r#"{"payloads":["{\"a\":1}","second"]}"#),
        (
            "bulk_advertise",
            5,
            r#"{"advertisements":[{"registerId":"reg-a","name":"A","isPublic":true,"latestVersion":3,"latestDocketVersion":1}],"fullSync":true}"#,
        ),
        (
            "advertise",
            6,
            r#"{"isPublic":true,"name":"A","description":"the register A"}"#,
        ),
        (
            "distribute",
            7,
            r#"{"transactionId":"x","payload":{"k":"v"}}"#,
        ),
    ];
    for (name, route, body) in bodies {
        put(dir, name, [&[route][..], body.as_bytes()].concat());
    }
}

fn ban_target(dir: &Path) {
    let peer = identity::peer_id_for(&[6; 32]);
    put(
        dir,
        "cidr",
        format!(
            "10.1.2.3/8\n7d\n1800000000000\n10.0.0.0/8\n10.0.0.0/8|cidr|abuse|manual|1700000000000|1800000000000\n{peer}"
        ),
    );
    put(
        dir,
        "peer",
        format!(
            "::ffff:192.0.2.1\n90s\n0\n{}\n{peer}|peer|banned by operator|automatic|1|\n{peer}",
            &peer[..8]
        ),
    );
    put(
        dir,
        "v6",
        "2001:db8::/32\n1h 30m\n-5\n2001:db8::/32\n::1|ip|r|manual|0|\n",
    );
}

fn config(dir: &Path) {
    let example = include_str!("../../examples/sorcha-peer.toml");
    put(
        dir,
        "example",
        [
            example.as_bytes(),
            b"\0SORCHA_PEER_HEARTBEAT_INTERVAL=5s\nSORCHA_PEER_MAX_OUTBOUND=4\n",
        ]
        .concat(),
    );
    put(dir, "defaults", sorcha_peer::config::Config::default_file());
    put(
        dir,
        "env_only",
        "\0SORCHA_PEER_LISTEN=127.0.0.1:6000\nSORCHA_PEER_JWT_KEY=0123456789abcdef0123456789abcdef\nSORCHA_PEER_PEER_TLS=off\nSORCHA_PEER_TYPO=1\n",
    );
}

fn jwt(dir: &Path) {
    let header = br#"{"alg":"HS256","typ":"JWT"}"#;
    let claims = br#"{"sub":"register-service","iss":"https://issuer.example","aud":["sorcha"],"org_id":"org-1","token_type":"service","iat":1800000000,"exp":1800001800}"#;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = EncodingKey::from_secret(b"fuzzing-key-of-at-least-thirty-two-bytes");
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).expect("sign");
    put(
        dir,
        "bearer",
        [&[0u8][..], format!("Bearer {input}.{signature}").as_bytes()].concat(),
    );
    put(dir, "admin_token", b"\0bearer   the-admin-token");
    put(dir, "signed", [&[1u8][..], header, b"\0", claims].concat());
    put(
        dir,
        "other_key",
        [
            &[2u8][..],
            header,
            b"\0",
            br#"{"aud":"x:consumer","exp":1,"iat":0}"#,
        ]
        .concat(),
    );
}

fn certificate(dir: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let read = |name: &str| fs::read(fixtures.join(name)).expect("fixture");
    put(dir, "crl", [&[0u8][..], &read("crl.pem")].concat());
    put(dir, "cert", [&[1u8][..], &read("node-cert.pem")].concat());
    put(dir, "ca", [&[2u8][..], &read("ca.pem")].concat());
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(&read("node-cert.pem"))
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
        .expect("DER");
    put(dir, "der", [&[3u8][..], &der].concat());
    // The node key (the fixture certificate's) as the PKCS #8 PEM a listener is given.
    let dir_key = std::env::temp_dir().join(format!("sorcha-seeds-cert-{}", std::process::id()));
    fs::create_dir_all(&dir_key).expect("temp");
    fs::write(
        dir_key.join(identity::NODE_KEY_FILE),
        hex::encode([4u8; 32]),
    )
    .expect("key");
    let node = identity::Identity::load_or_create(&dir_key).expect("identity");
    let _ = fs::remove_dir_all(&dir_key);
    let key_pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(node.pkcs8_der())
    );
    put(
        dir,
        "server",
        [
            &[4u8][..],
            &read("node-cert.pem"),
            b"\0",
            key_pem.as_bytes(),
        ]
        .concat(),
    );
}
