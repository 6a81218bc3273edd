//! The node's shared services, built once by [`super::start`] and handed to each server and
//! loop it starts.

use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Ground, NodeError};
use crate::admin::auth::Authenticator;
use crate::admin::{self, AdminState};
use crate::clock::Clock;
use crate::config::Config;
use crate::events::Events;
use crate::gossip::Gossip;
use crate::identity::Identity;
use crate::peers::PeerManager;
use crate::platform::{PlatformConfig, PlatformDeps, PlatformServer};
use crate::replication::{Registers, RegistersDeps};
use crate::rpc;
use crate::rpc::budget::InboundBudget;
use crate::service::health;
use crate::service::reachability::Reachability;
use crate::store::Store;
use crate::tasks::Tasks;
use crate::telemetry::Metrics;
use crate::telemetry::otlp::Traces;
use crate::transport::Transport;
use crate::transport::watch::CertificateWatch;
use crate::txpool::TxPool;

/// The node's metrics, with the certificate expiry gauge in CA mode.
fn node_metrics(config: &Config) -> Arc<Metrics> {
    Arc::new(match config.peer_tls {
        crate::config::PeerTls::Ca => Metrics::new().with_ca_certificate_expiry(),
        _ => Metrics::new(),
    })
}

/// The node's metrics, and its trace export with the span every task runs in.
fn observability(
    config: &Config,
    ground: &Ground,
) -> Result<(Arc<Metrics>, Option<Traces>, tracing::Span), NodeError> {
    let metrics = node_metrics(config);
    let traces = Traces::start(config, ground.identity.peer_id(), metrics.clone())?;
    let trace_scope = traces
        .as_ref()
        .map_or_else(tracing::Span::none, Traces::scope);
    Ok((metrics, traces, trace_scope))
}

/// The node's event bus, on which the store reports its health.
fn node_events(config: &Config, store: &dyn Store) -> Arc<Events> {
    let events = Arc::new(Events::with_history(config.event_history));
    let health = store.write_health();
    health.attach_events(events.clone());
    health.set_flap_window(config.storage_flap_window);
    events
}

/// What the admin state needs beyond [`Parts`].
pub(super) struct AdminExtras {
    pub(super) started: Instant,
    pub(super) started_ms: i64,
    pub(super) serving: Arc<health::Listeners>,
    pub(super) tx_rate: Arc<crate::service::rates::TxRate>,
}

/// The node's shared services, built once and handed to each server and loop.
pub(super) struct Parts {
    pub(super) config: Arc<Config>,
    pub(super) identity: Arc<Identity>,
    pub(super) store: Arc<dyn Store>,
    pub(super) transport: Arc<Transport>,
    pub(super) auth: Arc<Authenticator>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) traces: Option<Traces>,
    pub(super) trace_scope: tracing::Span,
    pub(super) tasks: Tasks,
    pub(super) events: Arc<Events>,
    pub(super) manager: Arc<PeerManager>,
    pub(super) registers: Arc<Registers>,
    pub(super) gossip: Arc<Gossip>,
    pub(super) messages: Arc<crate::messages::Messages>,
    pub(super) services: rpc::Services,
}

impl Parts {
    /// Builds the services bottom up: metrics and traces, events, the peer manager, the
    /// transaction pool, registers, gossip and messages.
    pub(super) async fn build(
        config: Arc<Config>,
        ground: &Ground,
        shutdown: &CancellationToken,
    ) -> Result<Parts, NodeError> {
        let (metrics, traces, trace_scope) = observability(&config, ground)?;
        let tasks = Tasks::with_scope(trace_scope.clone());
        let events = node_events(&config, ground.store.as_ref());
        let manager = Arc::new(
            PeerManager::load(
                ground.identity.clone(),
                config.clone(),
                ground.store.clone(),
                metrics.clone(),
                events.clone(),
                Clock::System,
            )
            .await?,
        );
        let (pool, committer) = TxPool::new(
            ground.store.clone(),
            Clock::System,
            &config,
            metrics.clone(),
            events.clone(),
        );
        // Started at once: the pool takes commits as soon as it exists.
        tasks.start(committer, shutdown);
        let registers = Registers::load(
            RegistersDeps {
                store: ground.store.clone(),
                identity: ground.identity.clone(),
                config: config.clone(),
                peers: manager.clone(),
                metrics: metrics.clone(),
                events: events.clone(),
                pool: pool.clone(),
                tasks: tasks.clone(),
            },
            shutdown.clone(),
        )
        .await?;
        let gossip = Gossip::new(
            config.clone(),
            manager.clone(),
            pool,
            metrics.clone(),
            tasks.clone(),
        );
        let messages =
            crate::messages::Messages::new(manager.clone(), &ground.identity, metrics.clone());
        let services = rpc::Services {
            tasks: tasks.clone(),
            config: config.clone(),
            identity: ground.identity.clone(),
            metrics: metrics.clone(),
            peers: manager.clone(),
            registers: registers.clone(),
            gossip: gossip.clone(),
            messages: messages.clone(),
            transport: ground.transport.clone(),
            budget: InboundBudget::new(config.max_inbound_bytes_in_flight, metrics.clone()),
        };
        Ok(Parts {
            config,
            identity: ground.identity.clone(),
            store: ground.store.clone(),
            transport: ground.transport.clone(),
            auth: ground.auth.clone(),
            metrics,
            traces,
            trace_scope,
            tasks,
            events,
            manager,
            registers,
            gossip,
            messages,
            services,
        })
    }

    /// The peer protocol server; `serving` records when it stops and why.
    pub(super) fn peer_server(
        &self,
        listener: TcpListener,
        serving: Arc<health::Listeners>,
    ) -> rpc::PeerServer {
        rpc::PeerServer {
            listener,
            services: self.services.clone(),
            serving,
        }
    }

    /// The admin API server. Its dialler for `peers connect` starts sessions as node tasks
    /// that stop with `shutdown`.
    pub(super) fn admin_server(
        &self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        extras: AdminExtras,
        shutdown: &CancellationToken,
    ) -> admin::AdminServer {
        let state = Arc::new(AdminState {
            manager: self.manager.clone(),
            registers: self.registers.clone(),
            heights: Arc::new(crate::rpc::HeightsClient {
                transport: self.transport.clone(),
            }),
            dialer: Arc::new(SessionDialer {
                services: self.services.clone(),
                shutdown: shutdown.clone(),
            }),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            events: self.events.clone(),
            advertisements: Arc::default(),
            config: self.config.clone(),
            auth: self.auth.clone(),
            event_slots: admin::EventSlots::new(&self.config),
            started: extras.started,
            started_ms: extras.started_ms,
            listeners: extras.serving,
            transport: self.transport.clone(),
            trace_scope: self.trace_scope.clone(),
            tx_rate: extras.tx_rate,
        });
        admin::AdminServer {
            listener,
            tls,
            state,
        }
    }

    /// The platform services, when `platform_listen` is set.
    pub(super) fn platform_server(
        &self,
        listener: Option<TcpListener>,
        tls: Option<Arc<rustls::ServerConfig>>,
        started: Instant,
    ) -> Option<PlatformServer> {
        let listener = listener?;
        let platform_config = PlatformConfig::from_config(&self.config)?;
        let deps = PlatformDeps {
            config: Arc::new(platform_config),
            peer_id: self.identity.peer_id().to_string(),
            peers: self.manager.clone(),
            registers: self.registers.clone(),
            messages: self.messages.clone(),
            metrics: self.metrics.clone(),
            auth: self.auth.clone(),
            tasks: self.tasks.clone(),
            started,
        };
        Some(PlatformServer {
            listener,
            tls,
            deps,
        })
    }

    /// Closes the sessions of peers whose certificate expires or is revoked (CA mode).
    pub(super) fn certificate_watch(&self) -> CertificateWatch {
        CertificateWatch {
            transport: self.transport.clone(),
            peers: self.manager.clone(),
            metrics: self.metrics.clone(),
            warning: self.config.tls_expiry_warning,
        }
    }

    /// Keeps this node's announced address current.
    pub(super) fn reachability(&self) -> Reachability {
        Reachability {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            peers: self.manager.clone(),
            probe: Arc::new(crate::netprobe::NetProbe),
        }
    }
}

/// Dials for operators (`peers connect`) with the dialler's own `dial`, as a task of the node.
struct SessionDialer {
    services: rpc::Services,
    shutdown: CancellationToken,
}

impl crate::service::connect::Dialer for SessionDialer {
    fn dial(&self, target: crate::peers::DialTarget) {
        self.services.tasks.spawn(rpc::connections::dial(
            self.services.clone(),
            target,
            self.shutdown.clone(),
        ));
    }
}
