//! OpenTelemetry traces: nodes with `otlp_endpoint` send their spans over OTLP/gRPC to a
//! receiver the test runs (the collector's `TraceService`, from `opentelemetry-proto`), each
//! span with the peer and register it concerns; a collector that never answers neither stops
//! nor holds up a node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::common::{PATIENCE, TestCluster, replicate_along, wait_for};

/// One span as the collector received it, with its resource's attributes.
#[derive(Clone, Debug)]
struct Received {
    name: String,
    /// `service.name`, `service.instance.id`, … of the node that sent it.
    resource: BTreeMap<String, String>,
    attributes: BTreeMap<String, String>,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    kind: i32,
}

impl Received {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
    fn sent_by(&self, peer_id: &str) -> bool {
        self.resource.get("service.instance.id").map(String::as_str) == Some(peer_id)
    }
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

/// A minimal OTLP/gRPC collector that keeps what it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.spans.lock().expect("collector lock");
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    kept.push(Received {
                        name: span.name,
                        resource: resource.clone(),
                        attributes: attributes(&span.attributes),
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        kind: span.kind,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// Serves on a port-0 listener at `ip`; returns the endpoint URL.
    async fn start(&self, ip: &str) -> String {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind collector");
        let addr: SocketAddr = listener.local_addr().expect("collector address");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().expect("collector lock").clone()
    }

    /// Waits for a span named `name` from node `peer_id` that `matches`.
    async fn span(
        &self,
        name: &str,
        peer_id: &str,
        matches: impl Fn(&Received) -> bool,
    ) -> Received {
        let what = format!("a '{name}' span from {peer_id}");
        wait_for(&what, PATIENCE, || async {
            self.spans()
                .into_iter()
                .find(|s| s.name == name && s.sent_by(peer_id) && matches(s))
        })
        .await
    }
}

/// SPAN_KIND_SERVER in OTLP.
const KIND_SERVER: i32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn spans_reach_the_collector_with_peer_and_register() {
    let mut net = TestCluster::new();
    let collector = Collector::default();
    let endpoint = collector.start(&net.ip()).await;
    let a = net
        .start(|c| c.otlp_endpoint = Some(endpoint.clone()))
        .await;
    let seed = a.seed();
    let b = net
        .start(|c| {
            c.otlp_endpoint = Some(endpoint.clone());
            c.seeds = vec![seed];
        })
        .await;
    a.client
        .create_register("traced", true)
        .await
        .expect("create");
    // A docket before the replica subscribes, so that it syncs a batch.
    let first = a
        .client
        .submit("traced", b"sealed before the replica came".to_vec())
        .await
        .expect("submit")
        .transaction_id;
    a.wait_sealed("traced", &first, PATIENCE).await;
    replicate_along(&[&a, &b], "traced").await;
    let tx = b
        .client
        .submit("traced", b"a traced transaction".to_vec())
        .await
        .expect("submit")
        .transaction_id;
    b.wait_sealed("traced", &tx, PATIENCE).await;

    // Admin requests: method, route, status; a server span named after the route.
    let created = collector
        .span("POST /api/registers", &a.peer_id, |s| {
            !s.attr("http.response.status_code").is_empty()
        })
        .await;
    assert_eq!(created.attr("http.request.method"), "POST");
    assert_eq!(created.attr("http.route"), "/api/registers");
    assert!(
        created.attr("http.response.status_code").starts_with('2'),
        "{created:?}"
    );
    assert_eq!(created.kind, KIND_SERVER);
    assert!(
        created.parent_span_id.is_empty(),
        "a request starts a trace"
    );
    assert_eq!(created.trace_id.len(), 16);
    assert_eq!(created.span_id.len(), 8);
    assert_eq!(
        created.resource.get("service.name").map(String::as_str),
        Some("sorcha-peer")
    );

    // The origin sealed the transaction: register, docket number, transaction count.
    let seal = collector
        .span("seal", &a.peer_id, |s| {
            s.attr("register.id") == "traced" && s.attr("docket.number") == "2"
        })
        .await;
    assert!(
        seal.attr("docket.number")
            .parse::<u64>()
            .is_ok_and(|n| n >= 1),
        "{seal:?}"
    );
    assert_eq!(seal.attr("tx.count"), "1", "{seal:?}");

    // The origin pulled the transaction announced by the other node.
    let pull = collector
        .span("gossip pull", &a.peer_id, |s| {
            s.attr("register.id") == "traced" && s.attr("delivered") == "1"
        })
        .await;
    assert_eq!(pull.attr("peer.id"), b.peer_id);
    assert_eq!(pull.attr("tx.count"), "1");

    // The replica caught up from the origin in batches.
    let batch = collector
        .span("sync batch", &b.peer_id, |s| {
            s.attr("register.id") == "traced"
        })
        .await;
    assert_eq!(batch.attr("peer.id"), a.peer_id);
    assert!(batch.attr("from").parse::<u64>().is_ok(), "{batch:?}");
    assert!(
        batch.attr("count").parse::<u64>().is_ok_and(|n| n >= 1),
        "{batch:?}"
    );

    // The handshake, on each side: the peer proven, the direction, the remote address.
    let dialled = collector
        .span("handshake", &b.peer_id, |s| s.attr("peer.id") == a.peer_id)
        .await;
    assert_eq!(dialled.attr("direction"), "outbound");
    assert_eq!(dialled.attr("outcome"), "completed");
    assert_eq!(dialled.attr("network.peer.address"), a.seed());
    let accepted = collector
        .span("handshake", &a.peer_id, |s| s.attr("peer.id") == b.peer_id)
        .await;
    assert_eq!(accepted.attr("direction"), "inbound");
    assert_eq!(accepted.attr("outcome"), "completed");
    assert!(
        accepted
            .attr("network.peer.address")
            .starts_with(&format!("{}:", b.peer_addr.ip())),
        "{accepted:?}"
    );

    // Heartbeats and peer exchanges, each with the peer it went to.
    for (node, other) in [(&a, &b), (&b, &a)] {
        collector
            .span("heartbeat", &node.peer_id, |s| {
                s.attr("peer.id") == other.peer_id && s.attr("error").is_empty()
            })
            .await;
        collector
            .span("peer exchange", &node.peer_id, |s| {
                s.attr("peer.id") == other.peer_id && !s.attr("received").is_empty()
            })
            .await;
    }

    // Each node exported only its own spans.
    let spans = collector.spans();
    assert!(
        spans
            .iter()
            .all(|s| s.sent_by(&a.peer_id) || s.sent_by(&b.peer_id)),
        "spans from elsewhere: {spans:?}"
    );
    assert!(
        !spans
            .iter()
            .any(|s| s.name == "seal" && s.sent_by(&b.peer_id)),
        "only the origin seals"
    );
    let (mut a, mut b) = (a, b);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_does_not_hold_up_the_node() {
    let mut net = TestCluster::new();
    // Accepts connections and never says a word.
    let silent = TcpListener::bind((net.ip().as_str(), 0))
        .await
        .expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("address"));
    let (connected, mut first) = tokio::sync::mpsc::channel(1);
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
            let _ = connected.try_send(());
        }
    });
    let mut node = net.start(|c| c.otlp_endpoint = Some(endpoint)).await;
    node.client
        .create_register("quiet", true)
        .await
        .expect("create");
    // The node's exporter has connected and waits for an answer that never comes...
    tokio::time::timeout(PATIENCE, first.recv())
        .await
        .expect("the exporter connects to the collector");
    // ... while traced requests go on being answered.
    for _ in 0..200 {
        node.client.status().await.expect("status answers");
    }
    let tx = node
        .client
        .submit("quiet", b"sealed regardless".to_vec())
        .await
        .expect("submit")
        .transaction_id;
    node.wait_sealed("quiet", &tx, PATIENCE).await;
    // Shutdown gives up on the collector after its flush deadline rather than waiting for it.
    tokio::time::timeout(Duration::from_secs(15), node.stop())
        .await
        .expect("the node stops although the collector never answers");
    holder.abort();
}
