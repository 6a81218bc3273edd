//! One peer session once the handshake (in [`super::handshake`]) is done: the loop that
//! exchanges heartbeats, peer lists, announcements and requests until either side leaves,
//! heartbeats go unanswered, or the stream breaks.

use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use tracing::field::Empty;
use tracing::{Span, info_span};

use super::frames::{frame, push, say_goodbye};
use super::outbox::Outbox;
use super::pb::{self, frame::Body};
use super::pending::{Pending, PendingRequests};
use super::{Services, convert};
use crate::clock::now_ms;
use crate::peers::{CloseOutcome, SessionCommand, SessionHandle};
use crate::protocol::{
    PeerMessage, PeerRequest, PeerResponse, RequestError, ServedTransactions, tx_refs,
};
use crate::service::liveness::{self, Verdict};

/// Inbound storage work (docket requests, pushes, submissions) queued per session before the
/// peer counts as flooding us.
const WORK_QUEUE: usize = 1024;

/// Inbound work that touches storage, handled in order by one task per session so the frame
/// loop never waits on the database.
enum Work {
    ServeDockets(pb::DocketRequest),
    ServeTransactions(pb::PullTransactions),
}

async fn run_worker(
    services: Services,
    peer_id: String,
    mut work: mpsc::Receiver<Work>,
    outbox: Outbox,
) -> String {
    while let Some(item) = work.recv().await {
        let reply = match item {
            Work::ServeDockets(r) => {
                let (dockets, error) = match services
                    .registers
                    .serve_dockets(
                        &r.register_id,
                        r.from_number,
                        r.max_dockets,
                        r.headers_only,
                        r.max_bytes,
                    )
                    .await
                {
                    Ok(batch) => (
                        batch.iter().map(convert::docket_to_wire).collect(),
                        String::new(),
                    ),
                    Err(e) => (Vec::new(), e.to_string()),
                };
                Some(Body::DocketBatch(pb::DocketBatch {
                    request_id: r.request_id,
                    register_id: r.register_id,
                    dockets,
                    error,
                }))
            }
            Work::ServeTransactions(r) => {
                let served = match tx_refs::refs_from_wire(&r.tx_ids, &r.short_ids) {
                    Ok(ids) => services
                        .gossip
                        .serve(&peer_id, &r.register_id, ids)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(format!("malformed request: {e}")),
                };
                let (payloads, (missing, missing_short), error) = match served {
                    Ok(served) => (
                        served.payloads,
                        tx_refs::missing_to_wire(&served.missing),
                        String::new(),
                    ),
                    Err(e) => (Vec::new(), Default::default(), e),
                };
                Some(Body::TransactionsBatch(pb::TransactionsBatch {
                    request_id: r.request_id,
                    register_id: r.register_id,
                    payloads,
                    missing,
                    missing_short,
                    error,
                }))
            }
        };
        if let Some(body) = reply
            && let Err(e) = push(&outbox, frame(body))
        {
            return e.to_string();
        }
    }
    "session closed".to_string()
}

/// Applies the peer's docket pushes in order. Separate from the serving worker because
/// resolving a push may pull payloads from this same peer, whose serving worker must stay free.
async fn run_push_worker(
    services: Services,
    peer_id: String,
    mut pushes: mpsc::Receiver<pb::DocketEntry>,
) {
    while let Some(entry) = pushes.recv().await {
        match convert::compact_from_wire(entry) {
            Ok(compact) => services.registers.on_push(&peer_id, compact).await,
            Err(e) => {
                services
                    .peers
                    .verification_failed(&peer_id, None, &format!("malformed docket push: {e}"))
                    .await
            }
        }
    }
}

/// Per-session bookkeeping of the frame loop.
struct Session {
    services: Services,
    peer_id: String,
    outbox: Outbox,
    work: mpsc::Sender<Work>,
    pushes: mpsc::Sender<pb::DocketEntry>,
    next_id: u64,
    /// The ping awaiting its pong: sequence, sent at, and its `heartbeat` span.
    outstanding_ping: Option<(u64, Instant, Span)>,
    missed: u32,
    /// The exchange awaiting its answer: request ID, sent at, and its `peer exchange` span.
    exchange_pending: Option<(u64, Instant, Span)>,
    pending: PendingRequests,
    /// This node's pending transactions were announced to the peer after its first
    /// advertisement in this session.
    told_pending: bool,
    /// The peer speaks short transaction IDs (`super::SHORT_TX_IDS`).
    short_ids: bool,
}

impl Session {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn send(&self, body: Body) -> Result<(), CloseOutcome> {
        push(&self.outbox, frame(body)).map_err(|e| CloseOutcome::Failed(e.to_string()))
    }

    fn violation(&self, what: &str) {
        liveness::protocol_violation(&self.services.peers, &self.peer_id, what);
    }

    fn queue(&self, work: Work) -> Result<(), CloseOutcome> {
        self.work.try_send(work).map_err(|_| {
            CloseOutcome::Failed("peer sends more work than this node can keep up with".into())
        })
    }

    fn advertised(&mut self, registers: Vec<pb::RegisterHeight>) {
        let (heights, bad) = convert::heights_from_wire(registers);
        if bad > 0 {
            self.violation("malformed register advertisement");
        }
        // Its first advertisement: tell it what is pending here (see gossip/new_session.rs).
        if !self.told_pending {
            self.told_pending = true;
            let carried = heights.iter().map(|h| h.register_id.clone()).collect();
            self.services.gossip.session_started(&self.peer_id, carried);
        }
        self.services
            .registers
            .on_advertisement(&self.peer_id, heights);
    }

    fn command(&mut self, command: SessionCommand) -> Result<(), CloseOutcome> {
        match command {
            SessionCommand::Close(reason) => {
                say_goodbye(&self.outbox, &reason);
                Err(CloseOutcome::Graceful(reason))
            }
            SessionCommand::ExchangePeers => self.ask_for_peers(),
            SessionCommand::Send(message) => {
                let body = convert::message_to_wire(message, self.short_ids);
                // The bytes as they go out (the peer's form, protobuf framing included), counted
                // once they are queued for the peer.
                let announced = match &body {
                    Body::Announce(a) => prost::Message::encoded_len(a) as u64,
                    _ => 0,
                };
                self.send(body)?;
                self.services
                    .metrics
                    .gossip_announce_bytes
                    .inc_by(announced);
                Ok(())
            }
            SessionCommand::Request { request, reply } => {
                let id = self.next_id();
                let pending = match &request {
                    PeerRequest::Dockets { .. } => Pending::Dockets(reply),
                    PeerRequest::Transactions { .. } => Pending::Transactions(reply),
                    PeerRequest::DialBack { .. } => Pending::DialBack(reply),
                };
                self.send(convert::request_to_wire(id, request, self.short_ids))?;
                self.pending.insert(id, pending);
                Ok(())
            }
        }
    }

    /// Sends a peer-exchange request, unless one is still unanswered.
    fn ask_for_peers(&mut self) -> Result<(), CloseOutcome> {
        if self.exchange_pending.is_some() {
            return Ok(());
        }
        let max_entries = self.services.config.exchange_max_entries;
        let id = self.next_id();
        let peers = convert::addresses_to_wire(
            self.services
                .peers
                .exchange_entries(&self.peer_id, max_entries),
        );
        let peers_sent = peers.len();
        self.send(Body::ExchangeRequest(pb::PeerExchangeRequest {
            request_id: id,
            peers,
            max_peers: max_entries as u32,
        }))?;
        let span = info_span!("peer exchange", peer.id = %self.peer_id, sent = peers_sent, received = Empty, error = Empty);
        self.exchange_pending = Some((id, Instant::now(), span));
        Ok(())
    }

    fn heartbeat(&mut self) -> Result<(), CloseOutcome> {
        let peers = &self.services.peers;
        self.pending.drop_abandoned();
        if let Some((_, _, span)) = self.outstanding_ping.take() {
            span.record("error", "no answer before the next heartbeat");
            self.missed += 1;
            if let Verdict::Disconnect(reason) =
                liveness::heartbeat_missed(peers, &self.services.config, &self.peer_id, self.missed)
            {
                say_goodbye(&self.outbox, &reason);
                return Err(CloseOutcome::Failed(reason));
            }
        }
        let deadline = liveness::exchange_deadline(&self.services.config);
        if self
            .exchange_pending
            .as_ref()
            .is_some_and(|(_, at, _)| at.elapsed() > deadline)
        {
            if let Some((_, _, span)) = self.exchange_pending.take() {
                span.record("error", "no answer within the exchange deadline");
            }
            liveness::exchange_unanswered(peers, &self.peer_id);
        }
        let sequence = self.next_id();
        self.send(Body::Ping(pb::Ping {
            sequence,
            sent_at_ms: now_ms(),
            registers: convert::heights_to_wire(self.services.registers.public_heights()),
        }))?;
        let span = info_span!("heartbeat", peer.id = %self.peer_id, sequence, error = Empty);
        self.outstanding_ping = Some((sequence, Instant::now(), span));
        Ok(())
    }

    /// Handles one frame of an established session. `Err` ends the session.
    fn frame(&mut self, body: Body) -> Result<(), CloseOutcome> {
        match body {
            Body::Ping(ping) => self.on_ping(ping),
            Body::Pong(pong) => {
                self.on_pong(&pong);
                Ok(())
            }
            Body::ExchangeRequest(request) => self.on_exchange_request(request),
            Body::ExchangeResponse(response) => {
                self.on_exchange_response(response);
                Ok(())
            }
            Body::Advertise(a) => {
                self.advertised(a.registers);
                Ok(())
            }
            Body::DocketRequest(r) => self.queue(Work::ServeDockets(r)),
            Body::DocketPush(p) => self.on_push(p),
            Body::PullTransactions(r) => self.queue(Work::ServeTransactions(r)),
            Body::Announce(a) => {
                self.on_announce(a);
                Ok(())
            }
            Body::Follow(f) => {
                self.services
                    .registers
                    .set_follower(&self.peer_id, &f.register_id, f.follow);
                Ok(())
            }
            Body::DocketBatch(batch) => {
                self.on_docket_batch(batch);
                Ok(())
            }
            Body::TransactionsBatch(batch) => {
                self.on_transactions_batch(batch);
                Ok(())
            }
            Body::DialBackRequest(r) => {
                super::dialback::handle_request(&self.services, &self.peer_id, &self.outbox, r);
                Ok(())
            }
            Body::DialBackResponse(r) => {
                self.on_dial_back_response(&r);
                Ok(())
            }
            Body::PlatformMessage(m) => {
                self.on_platform_message(m);
                Ok(())
            }
            Body::Goodbye(g) => Err(CloseOutcome::Graceful(format!(
                "peer said goodbye: {}",
                convert::peer_text(&g.reason, convert::MAX_PEER_TEXT)
            ))),
            Body::Hello(_) | Body::HelloAck(_) | Body::Auth(_) | Body::Welcome(_) => {
                self.violation("handshake frame after the handshake");
                Ok(())
            }
        }
    }

    fn on_ping(&mut self, ping: pb::Ping) -> Result<(), CloseOutcome> {
        self.services
            .peers
            .record_clock(&self.peer_id, ping.sent_at_ms);
        self.advertised(ping.registers);
        self.send(Body::Pong(pb::Pong {
            sequence: ping.sequence,
        }))
    }

    fn on_pong(&mut self, pong: &pb::Pong) {
        // A pong for an older ping (answered after we gave up on it) is ignored.
        if let Some((sequence, sent, _)) = &self.outstanding_ping
            && *sequence == pong.sequence
        {
            let sent = *sent;
            // Ends the heartbeat span: its duration is the round trip.
            self.outstanding_ping = None;
            self.missed = 0;
            self.services
                .peers
                .record_success(&self.peer_id, Some(sent.elapsed()));
        }
    }

    fn on_exchange_request(
        &mut self,
        request: pb::PeerExchangeRequest,
    ) -> Result<(), CloseOutcome> {
        let manager = &self.services.peers;
        // With exchange off this node neither learns nor shares, but still answers
        // (with nothing) so the asking peer does not count a failure.
        let peers = if self.services.config.exchange_enabled() {
            manager.learn(&self.peer_id, convert::addresses_from_wire(request.peers));
            let max = (request.max_peers as usize).min(self.services.config.exchange_max_entries);
            convert::addresses_to_wire(manager.exchange_entries(&self.peer_id, max))
        } else {
            Vec::new()
        };
        self.send(Body::ExchangeResponse(pb::PeerExchangeResponse {
            request_id: request.request_id,
            peers,
        }))
    }

    fn on_exchange_response(&mut self, response: pb::PeerExchangeResponse) {
        match &self.exchange_pending {
            Some((id, _, span)) if *id == response.request_id => {
                span.record("received", response.peers.len());
                self.exchange_pending = None;
                let manager = &self.services.peers;
                manager.learn(&self.peer_id, convert::addresses_from_wire(response.peers));
                manager.record_success(&self.peer_id, None);
            }
            _ => self.violation("unsolicited peer-exchange response"),
        }
    }

    fn on_push(&mut self, push: pb::DocketPush) -> Result<(), CloseOutcome> {
        match push.docket {
            Some(entry) => self.pushes.try_send(entry).map_err(|_| {
                CloseOutcome::Failed(
                    "peer pushes dockets faster than this node can apply them".into(),
                )
            }),
            None => {
                self.violation("empty docket push");
                Ok(())
            }
        }
    }

    fn on_announce(&mut self, a: pb::Announce) {
        match tx_refs::refs_from_wire(&a.tx_ids, &a.short_ids) {
            Ok(ids) => self
                .services
                .gossip
                .on_announce(&self.peer_id, a.register_id, ids),
            Err(e) => self.violation(&format!("malformed announcement: {e}")),
        }
    }

    fn on_docket_batch(&mut self, batch: pb::DocketBatch) {
        match self.pending.take(batch.request_id) {
            Some(Pending::Dockets(reply)) => {
                let result = if batch.error.is_empty() {
                    batch
                        .dockets
                        .into_iter()
                        .map(convert::docket_from_wire)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| RequestError::Malformed {
                            what: "docket",
                            reason: e.to_string(),
                        })
                } else {
                    Err(refused(&batch.error))
                };
                let _ = reply.send(PeerResponse::Dockets(result)); // the asker may have given up
            }
            _ => self.violation("unsolicited docket batch"),
        }
    }

    fn on_transactions_batch(&mut self, batch: pb::TransactionsBatch) {
        match self.pending.take(batch.request_id) {
            Some(Pending::Transactions(reply)) => {
                let result = if batch.error.is_empty() {
                    tx_refs::refs_from_wire(&batch.missing, &batch.missing_short)
                        .map(|missing| ServedTransactions {
                            payloads: batch.payloads,
                            missing,
                        })
                        .map_err(|e| RequestError::Malformed {
                            what: "answer",
                            reason: e.to_string(),
                        })
                } else {
                    Err(refused(&batch.error))
                };
                let _ = reply.send(PeerResponse::Transactions(result)); // the asker may have given up
            }
            _ => self.violation("unsolicited transactions batch"),
        }
    }

    fn on_dial_back_response(&mut self, r: &pb::DialBackResponse) {
        match self.pending.take(r.request_id) {
            Some(Pending::DialBack(reply)) => {
                let result = if r.error.is_empty() {
                    Ok(())
                } else {
                    Err(refused(&r.error))
                };
                let _ = reply.send(PeerResponse::DialBack(result)); // the asker may have given up
            }
            _ => self.violation("unsolicited dial-back response"),
        }
    }

    fn on_platform_message(&self, m: pb::PlatformMessage) {
        match convert::platform_from_wire(m) {
            Ok(m) => self.services.messages.on_peer_message(&self.peer_id, m),
            Err(e) => {
                self.services.messages.malformed();
                self.violation(&format!("malformed platform message: {e}"));
            }
        }
    }
}

/// The peer's refusal of a request, in its own (bounded, cleaned) words.
fn refused(error: &str) -> RequestError {
    RequestError::Refused(convert::peer_text(error, convert::MAX_PEER_TEXT))
}

/// The session loop, the same on both sides once the handshake is done.
pub(crate) async fn run(
    services: Services,
    peer_id: String,
    handle: SessionHandle,
    mut incoming: Streaming<pb::Frame>,
    outbox: Outbox,
    shutdown: CancellationToken,
    exchange_first: bool,
) {
    let config = services.config.clone();
    let SessionHandle {
        conn_id,
        mut commands,
        short_ids,
    } = handle;
    let (work_tx, work_rx) = mpsc::channel(WORK_QUEUE);
    // The workers run inside this task, polled alongside the frame loop (so the loop never
    // waits on them), and end with it.
    let worker = run_worker(services.clone(), peer_id.clone(), work_rx, outbox.clone());
    tokio::pin!(worker);
    let (push_tx, push_rx) = mpsc::channel(WORK_QUEUE);
    let push_worker = run_push_worker(services.clone(), peer_id.clone(), push_rx);
    tokio::pin!(push_worker);
    let mut session = Session {
        services: services.clone(),
        peer_id: peer_id.clone(),
        outbox: outbox.clone(),
        work: work_tx,
        pushes: push_tx,
        next_id: 0,
        outstanding_ping: None,
        missed: 0,
        exchange_pending: None,
        pending: PendingRequests::default(),
        told_pending: false,
        short_ids,
    };
    let mut heartbeat = tokio::time::interval(config.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Tell the peer at once what we hold, rather than at the first heartbeat.
    let mut first = vec![SessionCommand::Send(PeerMessage::Advertise(
        services.registers.public_heights(),
    ))];
    if exchange_first {
        first.push(SessionCommand::ExchangePeers);
    }
    let mut first = first.into_iter();

    let outcome = loop {
        let step = tokio::select! {
            _ = shutdown.cancelled() => {
                say_goodbye(&outbox, "node shutting down");
                Err(CloseOutcome::Graceful("node shutting down".into()))
            }
            command = async {
                match first.next() {
                    Some(c) => Some(c),
                    None => commands.recv().await,
                }
            } => match command {
                Some(command) => session.command(command),
                // The manager dropped this connection (replaced by a newer one).
                None => Err(CloseOutcome::Graceful("replaced by a newer connection".into())),
            },
            _ = heartbeat.tick() => session.heartbeat(),
            // The serving worker stops only when an answer cannot be queued.
            stopped = &mut worker => Err(CloseOutcome::Failed(stopped)),
            // It ends only when the session drops its queue, after this loop.
            () = &mut push_worker => Err(CloseOutcome::Failed("push worker stopped".into())),
            message = incoming.message() => match message {
                Ok(Some(pb::Frame { body: Some(body) })) => session.frame(body),
                Ok(Some(_)) => {
                    session.violation("empty frame");
                    Ok(())
                }
                Ok(None) => Err(CloseOutcome::Failed("stream ended without goodbye".into())),
                Err(status) => Err(CloseOutcome::Failed(format!("stream error: {}", status.message()))),
            },
        };
        if let Err(outcome) = step {
            break outcome;
        }
    };
    services
        .peers
        .connection_closed(&peer_id, conn_id, &outcome);
}
