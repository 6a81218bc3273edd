//! OpenTelemetry spans from `tracing` spans, per node.
//!
//! The code marks its operations with ordinary `tracing` spans (they also give log lines their
//! context). [`TraceLayer`], installed once with the logging, turns the spans of a node that
//! has `otlp_endpoint` set into OpenTelemetry span data and queues it for that node's exporter
//! (`otlp.rs`). The subscriber is process-global, but export is not: every task of a node runs
//! inside its *scope span* ([`node_scope`], entered by `Tasks`), which carries the node's
//! [`SpanSink`]; a span belongs to the node whose scope (or traced span) is its parent, so
//! several nodes in one process (the tests) each export only their own spans, and a node
//! without `otlp_endpoint` exports nothing. The scope span itself is neither exported nor
//! shown in logs; spans directly under it start a new trace.
//!
//! No OpenTelemetry tracer provider is involved (and so no global one): span IDs are made
//! here and finished spans go straight to the node's bounded queue. `tracing-opentelemetry`
//! was not used because it sends every span to one tracer, which cannot tell nodes apart.
//!
//! Span fields become attributes. Some field names are special: `otel.name` replaces the
//! span's (static) name, `otel.kind` (`server` or `client`) sets its kind, and `error`
//! (recorded when an operation fails) sets its status to error with that text.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::Metrics;

/// Target of a node's scope span (hidden from the logs).
pub(crate) const SCOPE_TARGET: &str = "sorcha_peer::trace_scope";

/// Nodes in this process that export traces. The subscriber is process-wide, so its filter
/// is too: while no node exports, spans are not created for traces at all and a node without
/// `otlp_endpoint` pays nothing. Only a count, never a route: routes live in the nodes.
static EXPORTING_NODES: AtomicUsize = AtomicUsize::new(0);

/// Where one node's finished spans go: a bounded queue its exporter empties. A full queue
/// drops the span (counted as `sorcha_peer_limit_hits_total{limit="otlp_queue"}`); the code
/// that ended the span never waits.
pub(crate) struct SpanSink {
    queue: mpsc::Sender<SpanData>,
    scope: InstrumentationScope,
    metrics: Arc<Metrics>,
}

impl SpanSink {
    /// A sink and the receiving end of its queue (`capacity` spans).
    pub(crate) fn new(
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> (Arc<SpanSink>, mpsc::Receiver<SpanData>) {
        let (queue, receiver) = mpsc::channel(capacity);
        EXPORTING_NODES.fetch_add(1, Ordering::Relaxed);
        let scope = InstrumentationScope::builder("sorcha-peer")
            .with_version(crate::VERSION)
            .build();
        let sink = SpanSink {
            queue,
            scope,
            metrics,
        };
        (Arc::new(sink), receiver)
    }

    fn send(&self, span: SpanData) {
        if self.queue.try_send(span).is_err() {
            self.metrics.limit_hit("otlp_queue");
        }
    }
}

impl Drop for SpanSink {
    fn drop(&mut self) {
        EXPORTING_NODES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The node's scope span: the parent, for tracing, of everything the node's tasks do; its
/// spans go to `sink`. `Span::none()` when the subscriber is not this crate's.
pub(crate) fn node_scope(sink: &Arc<SpanSink>) -> tracing::Span {
    let scope = tracing::span!(target: SCOPE_TARGET, parent: None, Level::INFO, "node");
    let route = Route(sink.clone());
    scope.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>()
            && let Some(span) = registry.span(id)
        {
            span.extensions_mut().insert(route);
        }
    });
    scope
}

/// On a scope span: the node's sink.
struct Route(Arc<SpanSink>);

/// On a span being traced: what it will be exported as.
struct Building {
    sink: Arc<SpanSink>,
    trace_id: TraceId,
    span_id: SpanId,
    parent_id: SpanId,
    start: SystemTime,
    name: Option<String>,
    kind: SpanKind,
    status: Status,
    attributes: Vec<KeyValue>,
}

impl Building {
    fn set(&mut self, field: &Field, value: Value) {
        match field.name() {
            "otel.name" => {
                self.name = Some(value.as_str().into_owned());
                return;
            }
            "otel.kind" => {
                self.kind = match value.as_str().as_ref() {
                    "server" => SpanKind::Server,
                    "client" => SpanKind::Client,
                    _ => SpanKind::Internal,
                };
                return;
            }
            "error" => self.status = Status::error(value.as_str().into_owned()),
            _ => {}
        }
        let key = Key::from_static_str(field.name());
        match self.attributes.iter_mut().find(|kv| kv.key == key) {
            Some(existing) => existing.value = value,
            None => self.attributes.push(KeyValue::new(key, value)),
        }
    }
}

impl Visit for Building {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, Value::from(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.set(field, Value::I64(v)),
            Err(_) => self.set(field, Value::from(value.to_string())),
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, Value::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, Value::F64(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, Value::from(format!("{value:?}")));
    }
}

fn new_trace_id() -> TraceId {
    TraceId::from_bytes(rand::random::<u128>().max(1).to_be_bytes())
}

fn new_span_id() -> SpanId {
    SpanId::from_bytes(rand::random::<u64>().max(1).to_be_bytes())
}

/// Turns the spans of exporting nodes into OpenTelemetry span data (see the module comment).
/// Installed with [`TraceFilter`].
pub(crate) struct TraceLayer;

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() == SCOPE_TARGET {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let Some(parent) = span.parent() else { return };
        let (sink, trace_id, parent_id) = {
            let extensions = parent.extensions();
            if let Some(up) = extensions.get::<Building>() {
                (up.sink.clone(), up.trace_id, up.span_id)
            } else if let Some(Route(sink)) = extensions.get::<Route>() {
                (sink.clone(), new_trace_id(), SpanId::INVALID)
            } else {
                return;
            }
        };
        let mut building = Building {
            sink,
            trace_id,
            span_id: new_span_id(),
            parent_id,
            start: SystemTime::now(),
            name: None,
            kind: SpanKind::Internal,
            status: Status::Unset,
            attributes: Vec::new(),
        };
        attrs.record(&mut building);
        span.extensions_mut().insert(building);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(building) = span.extensions_mut().get_mut::<Building>()
        {
            values.record(building);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(done) = span.extensions_mut().remove::<Building>() else {
            return;
        };
        let context = SpanContext::new(
            done.trace_id,
            done.span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        done.sink.send(SpanData {
            span_context: context,
            parent_span_id: done.parent_id,
            parent_span_is_remote: false,
            span_kind: done.kind,
            name: done
                .name
                .map_or(Cow::Borrowed(span.metadata().name()), Cow::Owned),
            start_time: done.start,
            end_time: SystemTime::now(),
            attributes: done.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: done.status,
            instrumentation_scope: done.sink.scope.clone(),
        });
    }
}

/// Which spans [`TraceLayer`] sees: this crate's spans at info and above, and only while some
/// node exports. Events never (they stay in the logs).
pub(crate) struct TraceFilter;

impl TraceFilter {
    fn wanted(meta: &Metadata<'_>) -> bool {
        meta.is_span() && *meta.level() <= Level::INFO && meta.target().starts_with("sorcha_peer")
    }
}

impl<S> Filter<S> for TraceFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        TraceFilter::wanted(meta) && EXPORTING_NODES.load(Ordering::Relaxed) > 0
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if TraceFilter::wanted(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::INFO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span_data(sink: &SpanSink) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                new_trace_id(),
                new_span_id(),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed("test"),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: sink.scope.clone(),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let metrics = Arc::new(Metrics::new());
        let (sink, mut queue) = SpanSink::new(2, metrics.clone());
        for _ in 0..5 {
            sink.send(span_data(&sink));
        }
        let hits = metrics
            .limit_hits
            .get_or_create(&vec![("limit", "otlp_queue")])
            .get();
        assert_eq!(hits, 3);
        assert!(queue.try_recv().is_ok() && queue.try_recv().is_ok());
        assert!(
            queue.try_recv().is_err(),
            "only the queue's capacity is kept"
        );
    }

    #[test]
    fn ids_are_never_invalid() {
        for _ in 0..100 {
            assert_ne!(new_trace_id(), TraceId::INVALID);
            assert_ne!(new_span_id(), SpanId::INVALID);
        }
    }
}
