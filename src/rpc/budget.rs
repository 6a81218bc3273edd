//! What a peer can make this node hold while a message arrives. tonic buffers a gRPC message
//! whole before decoding it, so a half-sent one costs its declared size for as long as the peer
//! likes. Every inbound message's 5-byte prefix (compression flag, big-endian length) is read
//! here as it passes, before tonic sees it: before a session exists (`GetRegisterHeights`, the
//! handshake) a message may be at most [`SMALL_MESSAGE`] bytes; inside a session a larger one
//! first reserves its declared size from one budget shared by every peer
//! (`max_inbound_bytes_in_flight`, after rust-libp2p's resource manager) and gives it back once
//! its last byte is in. A message that does not fit is refused with `RESOURCE_EXHAUSTED` and
//! its stream ends: it is never buffered. Counted in `sorcha_peer_limit_hits_total`. The
//! answers of a peer this node dialled are read the same way ([`BudgetedChannel`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{Bytes, Service, http};
use tonic::server::NamedService;
use tonic::transport::Channel;

use crate::telemetry::Metrics;

/// Largest message taken before a session exists, and the size up to which a message in a
/// session needs no reservation. A `Hello` is a few hundred bytes and the largest
/// `GetRegisterHeights` request (1 000 queries of 64-character register IDs) under 80 KB;
/// 128 connections with 4 streams each can hold at most 64 MiB of such messages.
pub const SMALL_MESSAGE: usize = 128 * 1024;
/// Bytes of the gRPC length prefix before each message.
const PREFIX_LEN: usize = 5;
/// The one RPC whose messages may be large, once its handshake has welcomed the peer.
const SESSION_METHOD: &str = "/Session";

/// The bytes of large inbound messages still arriving, across every connection.
pub struct InboundBudget {
    bytes: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl InboundBudget {
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> Arc<InboundBudget> {
        Arc::new(InboundBudget {
            bytes: Arc::new(Semaphore::new(capacity.min(Semaphore::MAX_PERMITS))),
            metrics,
        })
    }

    /// Reserves `len` bytes for a message, or refuses it when they are not free now.
    fn reserve(&self, len: u32) -> Result<Reservation, Status> {
        match self.bytes.clone().try_acquire_many_owned(len) {
            Ok(permit) => {
                self.metrics.inbound_bytes_in_flight.inc_by(i64::from(len));
                Ok(Reservation {
                    _permit: permit,
                    len,
                    metrics: self.metrics.clone(),
                })
            }
            Err(_) => {
                self.metrics.limit_hit("max_inbound_bytes_in_flight");
                Err(Status::resource_exhausted(format!(
                    "a message of {len} bytes does not fit in this node's budget for messages in flight; try again later"
                )))
            }
        }
    }
}

/// Bytes of one message not yet whole, given back on drop.
struct Reservation {
    _permit: OwnedSemaphorePermit,
    len: u32,
    metrics: Arc<Metrics>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.metrics
            .inbound_bytes_in_flight
            .dec_by(i64::from(self.len));
    }
}

/// Whether a session stream's handshake has welcomed the peer: until then its messages are
/// small. Put in the request's extensions for the session handler, which opens it.
#[derive(Clone, Default, Debug)]
pub struct SessionGate(Arc<AtomicBool>);

impl SessionGate {
    /// From now on messages on this stream may be large (within the budget).
    pub fn open(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_open(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The peer-protocol service behind the budget: each request body is read through a
/// [`BudgetedBody`], and a session stream carries its [`SessionGate`].
#[derive(Clone)]
pub struct Budgeted<S> {
    inner: S,
    budget: Arc<InboundBudget>,
}

impl<S> Budgeted<S> {
    pub fn new(inner: S, budget: Arc<InboundBudget>) -> Budgeted<S> {
        Budgeted { inner, budget }
    }
}

impl<S: NamedService> NamedService for Budgeted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Budgeted<S>
where
    S: Service<http::Request<Body>> + NamedService,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> S::Future {
        let (mut parts, body) = request.into_parts();
        let gate = SessionGate::default();
        let method = parts
            .uri
            .path()
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(S::NAME));
        // Any other call stays small: its gate is never opened.
        if method == Some(SESSION_METHOD) {
            parts.extensions.insert(gate.clone());
        }
        let body = BudgetedBody::new(body, gate, self.budget.clone());
        self.inner
            .call(http::Request::from_parts(parts, Body::new(body)))
    }
}

/// A channel to a dialled peer whose answers are read through the budget as requests to this
/// node are: small until `gate` opens (the dialler opens it once the peer proved its key).
#[derive(Clone)]
pub struct BudgetedChannel {
    inner: Channel,
    gate: SessionGate,
    budget: Arc<InboundBudget>,
}

impl BudgetedChannel {
    pub fn new(inner: Channel, gate: SessionGate, budget: Arc<InboundBudget>) -> BudgetedChannel {
        BudgetedChannel {
            inner,
            gate,
            budget,
        }
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, tonic::transport::Error>> + Send>>;

impl Service<http::Request<Body>> for BudgetedChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> ResponseFuture {
        let (gate, budget) = (self.gate.clone(), self.budget.clone());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Body::new(BudgetedBody::new(body, gate, budget))))
        })
    }
}

/// A request body read through the budget (see the module header).
pub struct BudgetedBody<B> {
    /// Dropped at a refusal, so the transport stops taking the peer's bytes for the stream.
    inner: Option<B>,
    gate: SessionGate,
    budget: Arc<InboundBudget>,
    framing: Framing,
    held: Option<Reservation>,
}

impl<B> BudgetedBody<B> {
    pub fn new(inner: B, gate: SessionGate, budget: Arc<InboundBudget>) -> BudgetedBody<B> {
        BudgetedBody {
            inner: Some(inner),
            gate,
            budget,
            framing: Framing::default(),
            held: None,
        }
    }

    /// Follows the framing through `data`, admitting each message whose prefix completes.
    fn track(&mut self, data: &[u8]) -> Result<(), Status> {
        let BudgetedBody {
            gate,
            budget,
            framing,
            held,
            ..
        } = self;
        framing.feed(data, |event| match event {
            Event::Starts(len) => {
                *held = admit(gate, budget, len)?;
                Ok(())
            }
            Event::Whole => {
                *held = None;
                Ok(())
            }
        })
    }
}

/// What a message of `len` bytes needs before it may be buffered.
fn admit(
    gate: &SessionGate,
    budget: &InboundBudget,
    len: u32,
) -> Result<Option<Reservation>, Status> {
    if usize::try_from(len).is_ok_and(|len| len <= SMALL_MESSAGE) {
        return Ok(None);
    }
    if !gate.is_open() {
        budget.metrics.limit_hit("pre_session_message_size");
        return Err(Status::resource_exhausted(format!(
            "a message of {len} bytes before a session is established (at most {SMALL_MESSAGE})"
        )));
    }
    budget.reserve(len).map(Some)
}

impl<B> HttpBody for BudgetedBody<B>
where
    B: HttpBody<Data = Bytes, Error = Status> + Unpin,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Err(refused) = this.track(data)
        {
            this.inner = None;
            this.held = None;
            return Poll::Ready(Some(Err(refused)));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |inner| inner.size_hint())
    }
}

/// A point in the gRPC framing of a body.
#[derive(Debug, PartialEq)]
enum Event {
    /// A message of this many bytes begins (its prefix is complete).
    Starts(u32),
    /// The message that began last is complete.
    Whole,
}

/// Where the body is in its framing: inside a prefix, or inside a message.
#[derive(Default)]
struct Framing {
    prefix: [u8; PREFIX_LEN],
    prefix_read: usize,
    /// Bytes of the current message still to come.
    remaining: u32,
}

impl Framing {
    /// Follows `data`, calling `on` at each [`Event`]; stops at the first refusal.
    fn feed(
        &mut self,
        mut data: &[u8],
        mut on: impl FnMut(Event) -> Result<(), Status>,
    ) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data.len().min(self.remaining as usize);
                data = &data[n..];
                // n is at most `remaining`, a u32.
                self.remaining -= n as u32;
                if self.remaining == 0 {
                    on(Event::Whole)?;
                }
                continue;
            }
            let n = data.len().min(PREFIX_LEN - self.prefix_read);
            self.prefix[self.prefix_read..self.prefix_read + n].copy_from_slice(&data[..n]);
            self.prefix_read += n;
            data = &data[n..];
            if self.prefix_read == PREFIX_LEN {
                self.prefix_read = 0;
                let [_, a, b, c, d] = self.prefix;
                let len = u32::from_be_bytes([a, b, c, d]);
                on(Event::Starts(len))?;
                self.remaining = len;
                if len == 0 {
                    on(Event::Whole)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use tonic::Code;

    fn events(chunks: &[&[u8]]) -> Vec<Event> {
        let mut framing = Framing::default();
        let mut seen = Vec::new();
        for chunk in chunks {
            framing
                .feed(chunk, |e| {
                    seen.push(e);
                    Ok(())
                })
                .expect("no refusal");
        }
        seen
    }

    fn prefix(len: u32) -> Vec<u8> {
        let mut p = vec![0];
        p.extend_from_slice(&len.to_be_bytes());
        p
    }

    #[test]
    fn prefixes_split_anywhere_are_followed() {
        let mut body = prefix(3);
        body.extend_from_slice(b"abc");
        body.extend(prefix(0));
        body.extend(prefix(70_000));
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(
                events(&[a, b]),
                vec![
                    Event::Starts(3),
                    Event::Whole,
                    Event::Starts(0),
                    Event::Whole,
                    Event::Starts(70_000)
                ],
                "split at {split}"
            );
        }
        let one_by_one: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(events(&one_by_one).len(), 5);
    }

    #[test]
    fn a_message_is_whole_after_its_last_byte() {
        let mut first = prefix(200_000);
        first.extend(vec![7; 100_000]);
        let second = vec![7; 99_999];
        assert_eq!(events(&[&first, &second]), vec![Event::Starts(200_000)]);
        assert_eq!(
            events(&[&first, &second, &[7]]),
            vec![Event::Starts(200_000), Event::Whole]
        );
    }

    fn budget(capacity: usize) -> (Arc<InboundBudget>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        (InboundBudget::new(capacity, metrics.clone()), metrics)
    }

    #[test]
    fn large_messages_before_a_session_are_refused_and_small_ones_pass() {
        let (budget, metrics) = budget(1 << 30);
        let closed = SessionGate::default();
        assert!(admit(&closed, &budget, SMALL_MESSAGE as u32).is_ok());
        let refused = admit(&closed, &budget, SMALL_MESSAGE as u32 + 1).err();
        assert!(refused.is_some_and(|s| s.code() == Code::ResourceExhausted));
        assert_eq!(metrics.inbound_bytes_in_flight.get(), 0);
    }

    #[test]
    fn the_budget_is_shared_and_given_back_when_a_message_is_whole() {
        let (budget, metrics) = budget(1_000_000);
        let open = SessionGate::default();
        open.open();
        let first = admit(&open, &budget, 600_000).expect("fits");
        assert_eq!(metrics.inbound_bytes_in_flight.get(), 600_000);
        assert!(admit(&open, &budget, 500_000).is_err());
        // Small messages need no reservation, however full the budget.
        assert!(admit(&open, &budget, 1000).is_ok());
        drop(first);
        assert_eq!(metrics.inbound_bytes_in_flight.get(), 0);
        assert!(admit(&open, &budget, 500_000).is_ok());
    }

    #[test]
    fn the_largest_honest_pre_session_messages_are_small() {
        use super::super::pb;
        let id = "r".repeat(crate::ledger::MAX_REGISTER_ID_LEN);
        let heights = pb::RegisterHeightsRequest {
            at: (0..super::super::MAX_HEIGHT_QUERIES)
                .map(|_| pb::HeightQuery {
                    register_id: id.clone(),
                    height: u64::MAX,
                })
                .collect(),
        };
        assert!(heights.encoded_len() <= SMALL_MESSAGE);
        let hello = pb::Hello {
            node_info: pb::NodeInfo {
                public_key: vec![0; 32],
                listen_address: format!("{}:65535", "h".repeat(253)),
                name: "n".repeat(crate::config::MAX_NAME_LEN),
                protocol_version: 1,
                software_version: "v".repeat(crate::config::MAX_NAME_LEN),
                capabilities: vec!["heartbeat".into(), "peer-exchange".into()],
                platform_address: String::new(),
            }
            .encode_to_vec(),
            nonce: vec![0; 32],
            observed_address: format!("{}:65535", "h".repeat(253)),
            dial_back: true,
        };
        assert!(hello.encoded_len() <= SMALL_MESSAGE);
    }
}
