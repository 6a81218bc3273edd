//! A node's trace exporter: when `otlp_endpoint` is set, one task takes finished spans from
//! the node's bounded queue ([`SpanSink`]) and sends them in batches to the collector over
//! OTLP/gRPC (`opentelemetry-otlp` on the node's own tonic). Export never blocks the node: a
//! full queue drops spans (counted), an export waits at most [`EXPORT_TIMEOUT`], and failures
//! are logged at most once per [`FAILURE_LOG_INTERVAL`]. At shutdown, after every other task
//! of the node has stopped (so their spans have ended), what is queued is sent within
//! [`FLUSH_DEADLINE`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use super::traces::{SpanSink, node_scope};
use crate::config::Config;
use crate::tasks::Tasks;

/// Spans waiting for export; more are dropped.
pub(crate) const QUEUE_CAPACITY: usize = 4096;
/// Most spans in one export request.
const MAX_BATCH: usize = 512;
/// How often queued spans are sent when fewer than a batch are waiting.
const EXPORT_INTERVAL: Duration = Duration::from_secs(2);
/// Longest wait for a connection to the collector.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for one export.
pub(crate) const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait at shutdown for queued spans to be sent.
pub(crate) const FLUSH_DEADLINE: Duration = Duration::from_secs(3);
/// Export failures are logged at most this often.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum TraceSetupError {
    #[error("invalid value for `otlp_endpoint`: {0}")]
    Endpoint(String),
}

/// A node's trace export: its scope span (for `Tasks`) and the exporter task, which lives in
/// a task tracker of its own so that it outlasts the node's other tasks.
pub(crate) struct Traces {
    scope: tracing::Span,
    stop: CancellationToken,
    tasks: Tasks,
}

impl Traces {
    /// Starts exporting when `otlp_endpoint` is set (`None` when it is not). Call within the
    /// tokio runtime.
    pub(crate) fn start(
        config: &Config,
        peer_id: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Traces>, TraceSetupError> {
        let Some(endpoint) = config.otlp_endpoint.clone() else {
            return Ok(None);
        };
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .map_err(|e| TraceSetupError::Endpoint(format!("'{endpoint}': {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(EXPORT_TIMEOUT)
            .connect_lazy();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_channel(channel)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TraceSetupError::Endpoint(format!("'{endpoint}': {e}")))?;
        let mut resource = Resource::builder_empty()
            .with_service_name(config.otlp_service_name.clone())
            .with_attributes([
                KeyValue::new("service.version", crate::VERSION),
                KeyValue::new("service.instance.id", peer_id.to_string()),
            ]);
        if !config.name.is_empty() {
            resource =
                resource.with_attribute(KeyValue::new("sorcha.node.name", config.name.clone()));
        }
        exporter.set_resource(&resource.build());

        let (sink, queue) = SpanSink::new(QUEUE_CAPACITY, metrics);
        let scope = node_scope(&sink);
        let stop = CancellationToken::new();
        let tasks = Tasks::new();
        tasks.spawn(export_loop(exporter, queue, stop.clone(), endpoint.clone()));
        tracing::info!(endpoint = %endpoint, service = %config.otlp_service_name, "exporting traces over OTLP");
        Ok(Some(Traces { scope, stop, tasks }))
    }

    /// The span every task of the node runs in (see `traces.rs`).
    pub(crate) fn scope(&self) -> tracing::Span {
        self.scope.clone()
    }

    /// Sends what is queued (within [`FLUSH_DEADLINE`]) and stops the exporter. Call once the
    /// node's other tasks have stopped.
    pub(crate) async fn shutdown(self) {
        self.stop.cancel();
        self.tasks
            .drain(FLUSH_DEADLINE + Duration::from_secs(1))
            .await;
    }
}

/// Export failures since the last warning, so a collector that is down costs one log line a
/// minute.
#[derive(Default)]
struct Failures {
    last_warning: Option<Instant>,
    unreported: u64,
    failing: bool,
}

impl Failures {
    fn failed(&mut self, endpoint: &str, spans: usize, error: &str) {
        self.failing = true;
        self.unreported += 1;
        if self
            .last_warning
            .is_some_and(|at| at.elapsed() < FAILURE_LOG_INTERVAL)
        {
            return;
        }
        let also = match self.unreported {
            1 => String::new(),
            n => format!(" ({} failed exports since the last message)", n - 1),
        };
        tracing::warn!(
            endpoint,
            "cannot export traces ({spans} spans lost): {error}{also}"
        );
        self.last_warning = Some(Instant::now());
        self.unreported = 0;
    }

    fn succeeded(&mut self, endpoint: &str) {
        if std::mem::take(&mut self.failing) {
            tracing::info!(endpoint, "exporting traces again");
            self.last_warning = None;
            self.unreported = 0;
        }
    }
}

async fn export(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: Vec<SpanData>,
    within: Duration,
    endpoint: &str,
    failures: &mut Failures,
) {
    let spans = batch.len();
    match tokio::time::timeout(within, exporter.export(batch)).await {
        Ok(Ok(())) => failures.succeeded(endpoint),
        Ok(Err(e)) => failures.failed(endpoint, spans, &e.to_string()),
        Err(_) => failures.failed(
            endpoint,
            spans,
            &format!("no answer within {}", humantime::format_duration(within)),
        ),
    }
}

async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut queue: mpsc::Receiver<SpanData>,
    stop: CancellationToken,
    endpoint: String,
) {
    let mut failures = Failures::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut tick = tokio::time::interval(EXPORT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set when the node stops: the export in flight and the final flush end by then.
    let mut deadline = None;
    while deadline.is_none() {
        let room = MAX_BATCH - batch.len();
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
            received = queue.recv_many(&mut batch, room) => {
                if received == 0 {
                    break;
                }
                if batch.len() < MAX_BATCH {
                    continue;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let full = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        let exporting = export(&exporter, full, EXPORT_TIMEOUT, &endpoint, &mut failures);
        tokio::pin!(exporting);
        tokio::select! {
            _ = &mut exporting => {}
            _ = stop.cancelled() => {
                let by = tokio::time::Instant::now() + FLUSH_DEADLINE;
                deadline = Some(by);
                let _ = tokio::time::timeout_at(by, exporting).await;
            }
        }
    }
    // Shutdown: what is queued now, by the deadline.
    let deadline = deadline.unwrap_or_else(|| tokio::time::Instant::now() + FLUSH_DEADLINE);
    while let Ok(span) = queue.try_recv() {
        batch.push(span);
    }
    while !batch.is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            tracing::warn!(endpoint, "{} spans not exported at shutdown", batch.len());
            break;
        }
        let rest = batch.split_off(batch.len().min(MAX_BATCH));
        export(&exporter, batch, left, &endpoint, &mut failures).await;
        batch = rest;
    }
}
