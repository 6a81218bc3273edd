//! The peer transport as an operator meets it: encrypted with nothing configured, the node's
//! certificate carrying its ID, a relay holding another key refused, and a plaintext node and a
//! TLS node each saying why they cannot talk.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sorcha_peer::config::PeerTls;
use sorcha_peer::identity::{Identity, peer_id_for};
use sorcha_peer::transport::{Transport, nodekey};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::common::serve::Serve;
use crate::common::{HEARTBEAT, PATIENCE, TestCluster, holds_for, metric, tools, wait_until};

/// Copies `from` to `to`, appending every byte to `record`, until either side closes.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    record: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        record
            .lock()
            .expect("record lock")
            .extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A TCP relay on `ip` to `to` that keeps a copy of every byte it forwards, both ways (what a
/// capture on the path sees).
async fn recording_relay(
    ip: &str,
    to: SocketAddr,
) -> (SocketAddr, Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind relay");
    let addr = listener.local_addr().expect("relay address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(to).await else {
                continue;
            };
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            tokio::spawn(pump(in_read, out_write, record.clone()));
            tokio::spawn(pump(out_read, in_write, record.clone()));
        }
    });
    (addr, seen, task)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Origin A, and B reaching it only through a recording relay; B submits `payload` and waits
/// until A has sealed it and B holds it sealed. Returns what crossed the relay.
async fn submit_through_relay(net: &mut TestCluster, mode: PeerTls, payload: &[u8]) -> Vec<u8> {
    let mut a = net
        .start(|c| {
            c.peer_tls = mode;
            c.max_outbound = 0;
        })
        .await;
    a.client
        .create_register("secrets", true)
        .await
        .expect("register");
    let relay_ip = net.ip();
    let (relay, seen, relay_task) = recording_relay(&relay_ip, a.peer_addr).await;
    let mut b = net
        .start(|c| {
            c.peer_tls = mode;
            c.seeds = vec![relay.to_string()];
        })
        .await;
    b.wait_for_state(&a.peer_id, "connected", PATIENCE).await;
    wait_until("B sees the register", PATIENCE, || async {
        b.client
            .available_registers()
            .await
            .is_ok_and(|r| r.iter().any(|a| a.register_id == "secrets"))
    })
    .await;
    b.client
        .subscribe("secrets", "full-replica")
        .await
        .expect("subscribe");
    wait_until("B holds the register", PATIENCE, || async {
        b.register("secrets").await.is_some()
    })
    .await;
    let submitted = b
        .client
        .submit("secrets", payload.to_vec())
        .await
        .expect("submit");
    a.wait_sealed("secrets", &submitted.transaction_id, PATIENCE)
        .await;
    b.wait_sealed("secrets", &submitted.transaction_id, PATIENCE)
        .await;
    relay_task.abort();
    a.stop().await;
    b.stop().await;
    seen.lock().expect("record lock").clone()
}

/// Two nodes with no TLS settings exchange a transaction; nothing of it crosses the wire in
/// the clear. The same run with `peer_tls = "off"` shows the relay does see plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_traffic_is_encrypted_with_nothing_configured() {
    let payload = format!(
        "payload-only-the-nodes-may-read-{}",
        hex::encode(rand::random::<[u8; 8]>())
    );
    let seen = submit_through_relay(
        &mut TestCluster::new(),
        PeerTls::NodeKey,
        payload.as_bytes(),
    )
    .await;
    assert!(
        seen.len() > 1000,
        "the relay carried only {} bytes",
        seen.len()
    );
    assert!(
        !contains(&seen, payload.as_bytes()),
        "the payload crossed the wire in the clear"
    );
    assert!(
        !contains(&seen, b"secrets"),
        "the register name crossed in the clear"
    );
    assert!(
        !contains(&seen, b"PRI * HTTP/2.0"),
        "HTTP/2 ran in the clear"
    );

    let plain =
        submit_through_relay(&mut TestCluster::new(), PeerTls::Off, payload.as_bytes()).await;
    assert!(
        contains(&plain, payload.as_bytes()),
        "with peer_tls = \"off\" the relay should see the payload (else this test proves nothing)"
    );
}

/// A man in the middle that terminates TLS with its own key and dials on with it gets no
/// session: the node it dialled sees a certificate that does not match the identity claimed
/// in the handshake, and refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_holding_another_key_is_refused() {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.max_outbound = 0).await;
    let relay_ip = net.ip();
    let listener = TcpListener::bind((relay_ip.as_str(), 0))
        .await
        .expect("bind relay");
    let relay = listener.local_addr().expect("relay address");
    let mallory = Arc::new(Identity::generate());
    let target = a.peer_addr;
    let mitm = tokio::spawn(async move {
        let transport = Arc::new(Transport::new(PeerTls::NodeKey, &mallory).expect("transport"));
        while let Ok((tcp, remote)) = listener.accept().await {
            let transport = transport.clone();
            tokio::spawn(async move {
                let Ok(inbound) = transport.accept(tcp, remote).await else {
                    return;
                };
                let Ok(outbound) = transport.connect(target, None, None).await else {
                    return;
                };
                let (mut i, mut o) = (inbound.stream, outbound.stream);
                let _ = tokio::io::copy_bidirectional(&mut i, &mut o).await;
            });
        }
    });
    let mut b = net.start(|c| c.seeds = vec![relay.to_string()]).await;
    wait_until("A refuses the relayed handshake", PATIENCE, || async {
        let text = a.client.metrics().await.expect("metrics");
        metric(
            &text,
            "sorcha_peer_transport_refusals_total{direction=\"inbound\",reason=\"wrong_key\"}",
        ) >= 1.0
    })
    .await;
    holds_for("no session through the relay", HEARTBEAT * 10, || async {
        a.client
            .peers(Some("connected"), None, None)
            .await
            .expect("peers")
            .is_empty()
            && b.client
                .peers(Some("connected"), None, None)
                .await
                .expect("peers")
                .is_empty()
    })
    .await;
    mitm.abort();
    a.stop().await;
    b.stop().await;
}

/// `openssl s_client` to the peer port sees TLS 1.3 and a certificate whose key is the node's
/// ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_sees_tls13_and_a_certificate_holding_the_node_key() {
    let Some(openssl) = tools::require("openssl_sees_tls13", "openssl") else {
        return;
    };
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let mut cmd = Command::new(openssl);
    cmd.args([
        "s_client",
        "-connect",
        &a.peer_addr.to_string(),
        "-showcerts",
    ]);
    let (_, stdout, stderr) =
        tokio::task::spawn_blocking(move || tools::run_bounded(cmd, b"", Duration::from_secs(10)))
            .await
            .expect("openssl");
    assert!(stdout.contains("TLSv1.3"), "{stdout}\n{stderr}");
    let pem_start = stdout
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let cert = CertificateDer::from_pem_slice(&stdout.as_bytes()[pem_start..]).expect("PEM");
    let key = nodekey::node_key_of(&cert).expect("an Ed25519 node key");
    assert_eq!(peer_id_for(&key), a.peer_id);
    assert!(
        stdout.contains(&a.peer_id),
        "the subject names the peer ID: {stdout}"
    );
    a.stop().await;
}

/// A plaintext node and TLS nodes cannot talk, and each says why in its log: the TLS node a
/// plaintext node dials, the plaintext node a TLS node dials, and both dialling sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_node_and_a_tls_node_name_the_mismatch() {
    let mut net = TestCluster::new();
    let tls = Serve::start(&net.ip(), &[], &[]);
    let tls_addr = tls.peer_address().await;
    let plain = Serve::start(&net.ip(), &[("SORCHA_PEER_PEER_TLS", "off")], &[tls_addr]);
    let plain_addr = plain.peer_address().await;
    let dialler = Serve::start(&net.ip(), &[], &[plain_addr]);
    plain
        .wait_log(
            "the plaintext node warns at start",
            "peer traffic is plaintext",
        )
        .await;
    tls.wait_log(
        "the TLS node names a plaintext dialler",
        "speaks plaintext, but this node requires TLS",
    )
    .await;
    plain
        .wait_log(
            "the plaintext node says why its seed fails",
            "does that to plaintext peers",
        )
        .await;
    plain
        .wait_log(
            "the plaintext node names a TLS dialler",
            "speaks TLS, but this node has peer_tls",
        )
        .await;
    dialler
        .wait_log(
            "the TLS dialler says why the plaintext seed fails",
            "closed the connection during the TLS handshake: it may run with peer_tls",
        )
        .await;
}

/// Root only (CI runs as root): `tcpdump -i lo` while two nodes with default settings exchange
/// a transaction captures none of its payload; the same with `peer_tls = "off"` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_capture_shows_no_payload() {
    const TEST: &str = "a_loopback_capture_shows_no_payload";
    if !crate::common::faults::is_root() {
        crate::common::faults::skip(TEST, "capturing on lo needs root");
        return;
    }
    let Some(tcpdump) = tools::require(TEST, "tcpdump") else {
        return;
    };
    let payload = format!(
        "captured-payload-{}",
        hex::encode(rand::random::<[u8; 8]>())
    );
    for (mode, expect_seen) in [(PeerTls::NodeKey, false), (PeerTls::Off, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let capture = dir.path().join("lo.pcap");
        let mut net = TestCluster::new();
        let subnet = net.subnet();
        let mut dump = Command::new(&tcpdump)
            .args(["-i", "lo", "-U", "--immediate-mode", "-s", "0", "-w"])
            .arg(&capture)
            .args(["net", &subnet])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        // tcpdump says "listening on lo" once it captures.
        let stderr = dump.stderr.take().expect("stderr");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let said = std::thread::spawn(move || {
            let mut said = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = ready_tx.send(());
                }
                said.push_str(&line);
                said.push('\n');
            }
            said
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("tcpdump started capturing");
        let relayed = submit_through_relay(&mut net, mode, payload.as_bytes()).await;
        // Stopped too early, tcpdump drops what it has not written yet: wait for the file to
        // hold about what crossed the relay (each byte crosses lo twice, plus headers).
        wait_until("tcpdump to write the exchange", PATIENCE, || async {
            std::fs::metadata(&capture).map(|m| m.len()).unwrap_or(0) > relayed.len() as u64
        })
        .await;
        let stopped = Command::new("kill")
            .args(["-INT", &dump.id().to_string()])
            .status()
            .expect("run kill");
        assert!(stopped.success(), "tcpdump could not be stopped");
        dump.wait().expect("tcpdump exits");
        let said = said.join().unwrap_or_default();
        let bytes = std::fs::read(&capture).expect("capture file");
        assert!(
            bytes.len() > 1000,
            "the capture holds only {} bytes; tcpdump said:\n{said}",
            bytes.len()
        );
        assert_eq!(
            contains(&bytes, payload.as_bytes()),
            expect_seen,
            "peer_tls = {mode}: payload in the capture should be {expect_seen}"
        );
    }
}

/// In node-key mode there is no CA-issued certificate to expire: there is no expiry gauge (a
/// 0 would set off every "certificate expires" alert).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_certificate_expiry_is_reported_without_a_ca() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let text = a.client.metrics().await.expect("metrics");
    let name = "sorcha_peer_tls_certificate_expiry_timestamp_seconds";
    assert!(
        !text.lines().any(|l| l.starts_with(name)),
        "a sample in node-key mode:\n{text}"
    );
    a.stop().await;
}
