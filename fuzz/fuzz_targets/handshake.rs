//! The identity handshake's checks: a `Hello`/`HelloAck` frame decoded, its `NodeInfo` checked
//! as `rpc::handshake` checks it, and the signed transcript verified. Checks that an accepted
//! `NodeInfo` has a key, the protocol version and a usable address, and that no signature but
//! the real one (right key, right role, right transcript) is ever accepted.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use sorcha_peer::config::validate_host_port;
use sorcha_peer::fuzzing::handshake_info;
use sorcha_peer::identity::{self, Identity, NONCE_LEN, Role};
use sorcha_peer::protocol::pb::{self, frame::Body};
use sorcha_peer::rpc::PROTOCOL_VERSION;

/// A node identity read the way a node reads its `node.key` (once per process).
fn ours() -> &'static Identity {
    static OURS: OnceLock<Identity> = OnceLock::new();
    OURS.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("sorcha-fuzz-handshake-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join(identity::NODE_KEY_FILE), hex::encode([4u8; 32])).expect("key");
        let identity = Identity::load_or_create(&dir).expect("reads the key");
        let _ = std::fs::remove_dir_all(&dir);
        identity
    })
}

const SEEN_FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = pb::Frame::decode(data) else {
        return;
    };
    match frame.body {
        Some(Body::Hello(h)) => {
            node_info(&h.node_info, &h.nonce);
        }
        Some(Body::HelloAck(ack)) => {
            if let Some(key) = node_info(&ack.node_info, &ack.nonce) {
                transcript(&key, &ack.node_info, &ack.nonce, &ack.signature);
            }
        }
        Some(Body::Auth(auth)) => {
            // A signature with nothing to go on: it must not verify for any key we know of.
            let key = SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes();
            let t = identity::transcript(b"local", &[0; NONCE_LEN], b"remote", &[1; NONCE_LEN]);
            assert!(identity::verify_transcript(&key, Role::Dialer, &t, &auth.signature).is_err());
        }
        _ => {}
    }
});

/// The checked `NodeInfo`'s public key, when the handshake accepts it.
fn node_info(bytes: &[u8], nonce: &[u8]) -> Option<[u8; 32]> {
    let (info, address) = handshake_info(bytes, nonce, SEEN_FROM).ok()?;
    assert_eq!(nonce.len(), NONCE_LEN);
    assert_eq!(info.protocol_version, PROTOCOL_VERSION);
    let key: [u8; 32] = info
        .public_key
        .as_slice()
        .try_into()
        .expect("a 32-byte key");
    match info.listen_address.parse::<SocketAddr>() {
        Ok(listen) if listen.ip().is_unspecified() => {
            assert_eq!(
                address,
                SocketAddr::new(SEEN_FROM, listen.port()).to_string()
            );
        }
        Ok(listen) => assert_eq!(address.parse::<SocketAddr>(), Ok(listen)),
        Err(_) => {
            assert_eq!(address, info.listen_address);
            assert!(validate_host_port(&address).is_ok());
        }
    }
    let port = address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok());
    assert!(
        port.is_some_and(|p| p > 0),
        "a peer listens on a port: {address}"
    );
    Some(key)
}

/// The acceptor's signature over the transcript, as the dialler checks it; and the same
/// transcript signed for real, which must verify only for its own role.
fn transcript(key: &[u8; 32], remote_info: &[u8], remote_nonce: &[u8], signature: &[u8]) {
    let local = b"the dialler's node info";
    let nonce = [5u8; NONCE_LEN];
    let t = identity::transcript(local, &nonce, remote_info, remote_nonce);
    // The fuzzer cannot sign for a key it does not hold; a verifying signature here would be
    // a forgery, unless it names one of our own test keys.
    let ours = ours();
    let ours_key = ours.public_key();
    if *key != ours_key {
        assert!(identity::verify_transcript(key, Role::Acceptor, &t, signature).is_err());
    }
    let real = ours.sign_transcript(Role::Acceptor, &t);
    assert!(identity::verify_transcript(&ours_key, Role::Acceptor, &t, &real).is_ok());
    assert!(identity::verify_transcript(&ours_key, Role::Dialer, &t, &real).is_err());
    let bare = ours.signing_key().sign(&t).to_bytes();
    assert!(
        identity::verify_transcript(&ours_key, Role::Acceptor, &t, &bare).is_err(),
        "a signature without the role's domain is refused"
    );
}
