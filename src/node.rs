//! Wires a node together: data directory, identity, store, peer manager, the gRPC and admin
//! servers and the background loops. `serve` and the tests both go through [`start`], with
//! listeners bound by the caller (tests bind port 0 and never guess ports).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::admin::auth::{AuthSetupError, Authenticator, JwtVerifier};
use crate::config::{Config, PeerTls};
use crate::events::Events;
use crate::identity::{self, Identity, IdentityError};
use crate::lockfile::{DataDirLock, LockError};
use crate::peers::PeerManager;
use crate::peers::discovery::Discovery;
use crate::replication::Registers;
use crate::rpc::connections::DialLoop;
use crate::service::health;
use crate::service::rates::{RateSampler, TxRate};
use crate::store::{self, Store, StoreError};
use crate::tasks::Tasks;
use crate::telemetry::Metrics;
use crate::telemetry::otlp::{TraceSetupError, Traces};
use crate::transport::Transport;

mod parts;

use parts::{AdminExtras, Parts};

/// How long shutdown waits for sessions and servers to finish before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    AdminAuth(#[from] AuthSetupError),
    #[error(transparent)]
    AdminTls(#[from] admin::tls::AdminTlsError),
    #[error(transparent)]
    PlatformTls(#[from] crate::platform::PlatformTlsError),
    #[error(transparent)]
    PeerTransport(#[from] crate::transport::SetupError),
    #[error(transparent)]
    Traces(#[from] TraceSetupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The two sockets a node serves on.
pub struct Listeners {
    pub peer: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the addresses from the configuration.
    pub async fn bind(config: &Config) -> Result<Listeners, NodeError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Bind { addr, source })
        };
        Ok(Listeners {
            peer: bind(config.listen).await?,
            admin: bind(config.admin_listen).await?,
        })
    }
}

/// A running node.
pub struct NodeHandle {
    pub peer_id: String,
    pub peer_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Where the platform services are served (`platform_listen`), when they are.
    pub platform_addr: Option<SocketAddr>,
    /// Base URL of the admin API (`https://` when it serves TLS).
    pub admin_url: String,
    pub admin_token: String,
    pub data_dir: PathBuf,
    pub manager: Arc<PeerManager>,
    pub registers: Arc<Registers>,
    pub metrics: Arc<Metrics>,
    /// The node's event bus (what `/api/events` streams).
    pub events: Arc<Events>,
    shutdown: CancellationToken,
    tasks: Tasks,
    /// Trace export, when `otlp_endpoint` is set; stopped after the other tasks.
    traces: Option<Traces>,
    store: Arc<dyn Store>,
    /// Held until the handle is dropped, after everything else has stopped.
    _lock: DataDirLock,
}

impl NodeHandle {
    /// The node's tasks (to check, after shutdown, that none is left running).
    pub fn tasks(&self) -> Tasks {
        self.tasks.clone()
    }

    /// Base URL of the admin API (`https://` when it serves TLS).
    pub fn admin_url(&self) -> String {
        self.admin_url.clone()
    }

    /// Stops the node: sessions say goodbye, loops stop, peer records are flushed, the store
    /// is closed. Returns once everything has finished (or the grace period ran out).
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        self.drain().await;
    }

    /// Waits until the node's shutdown token is cancelled elsewhere, then drains.
    pub async fn run_until_stopped(mut self) {
        self.shutdown.cancelled().await;
        self.drain().await;
    }

    async fn drain(&mut self) {
        // Open event streams end now, or the admin server would wait for them.
        self.events.close();
        // Every task has stopped before the store is closed: none can touch it afterwards.
        self.tasks.drain(SHUTDOWN_GRACE).await;
        if let Err(e) = self.manager.flush().await {
            tracing::error!("cannot persist peer records at shutdown: {e}");
        }
        // Every traced operation has ended: send what is left.
        if let Some(traces) = self.traces.take() {
            traces.shutdown().await;
        }
        self.store.close().await;
        let url_file = self.data_dir.join(identity::ADMIN_URL_FILE);
        if let Err(e) = std::fs::remove_file(&url_file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", url_file.display());
        }
        tracing::info!("node stopped");
    }
}

/// Starts a node on already-bound listeners. It runs until `shutdown` is cancelled.
pub async fn start(
    mut config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<NodeHandle, NodeError> {
    let started = Instant::now();
    let started_ms = crate::clock::now_ms();
    let data_dir = config.data_dir.clone();
    let ground = prepare(&config, &data_dir).await?;
    let peer_addr = local_addr(&listeners.peer, config.listen)?;
    let admin_addr = local_addr(&listeners.admin, config.admin_listen)?;
    // Port 0 in the configuration means "any": announce and report the real ports.
    config.listen = peer_addr;
    config.admin_listen = admin_addr;
    let platform_addr = match (&ground.platform_listener, config.platform_listen) {
        (Some(listener), Some(configured)) => Some(local_addr(listener, configured)?),
        _ => None,
    };
    config.platform_listen = platform_addr;
    let config = Arc::new(config);

    tracing::info!(peer_id = ground.identity.peer_id(), storage = %config.storage_description(), durability = %config.durability, peer_tls = %config.peer_tls, "starting node");
    let parts = Parts::build(config, &ground, &shutdown).await?;
    let admin_scheme = if ground.admin_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let edges = Edges {
        peer: listeners.peer,
        admin: listeners.admin,
        admin_tls: ground.admin_tls,
        platform: ground.platform_listener,
        platform_tls: ground.platform_tls,
    };
    let serving = start_services(&parts, edges, (started, started_ms), &shutdown);

    let admin_url = format!("{admin_scheme}://{admin_addr}");
    if let Err(e) = std::fs::write(
        data_dir.join(identity::ADMIN_URL_FILE),
        format!("{admin_url}\n"),
    ) {
        tracing::warn!("cannot record the admin URL in the data directory: {e}");
    }
    serving.peer_started();
    tracing::info!(listen = %peer_addr, admin = %admin_url, platform = ?platform_addr, seeds = ?parts.config.seeds, "node ready");
    Ok(NodeHandle {
        peer_id: parts.identity.peer_id().to_string(),
        peer_addr,
        admin_addr,
        platform_addr,
        admin_url,
        admin_token: ground.admin_token,
        data_dir,
        manager: parts.manager,
        registers: parts.registers,
        metrics: parts.metrics,
        events: parts.events,
        shutdown,
        tasks: parts.tasks,
        traces: parts.traces,
        store: parts.store,
        _lock: ground.lock,
    })
}

/// What the servers listen on, with their TLS settings.
struct Edges {
    peer: TcpListener,
    admin: TcpListener,
    admin_tls: Option<Arc<rustls::ServerConfig>>,
    platform: Option<TcpListener>,
    platform_tls: Option<Arc<rustls::ServerConfig>>,
}

/// Starts the node's services, all the same way (`tasks::Service`): each runs as a node task
/// until `shutdown`. Returns the servers' states for the health checks.
fn start_services(
    parts: &Parts,
    edges: Edges,
    (started, started_ms): (Instant, i64),
    shutdown: &CancellationToken,
) -> Arc<health::Listeners> {
    let serving = Arc::new(health::Listeners::default());
    let tx_rate = Arc::new(TxRate::default());
    let extras = AdminExtras {
        started,
        started_ms,
        serving: serving.clone(),
        tx_rate: tx_rate.clone(),
    };
    let tasks = &parts.tasks;
    tasks.start(parts.peer_server(edges.peer, serving.clone()), shutdown);
    tasks.start(
        parts.admin_server(edges.admin, edges.admin_tls, extras, shutdown),
        shutdown,
    );
    if let Some(server) = parts.platform_server(edges.platform, edges.platform_tls, started) {
        tasks.start(server, shutdown);
    }
    tasks.start(DialLoop(parts.services.clone()), shutdown);
    tasks.start(parts.certificate_watch(), shutdown);
    tasks.start(parts.registers.sealing(), shutdown);
    tasks.start(parts.gossip.clone(), shutdown);
    tasks.start(Discovery(parts.manager.clone()), shutdown);
    let registers = parts.registers.clone();
    let rate = tx_rate;
    tasks.start(RateSampler { registers, rate }, shutdown);
    tasks.start(parts.reachability(), shutdown);
    serving
}

/// What a node stands on: settings read from files, its data directory, lock, store and keys.
struct Ground {
    admin_tls: Option<Arc<rustls::ServerConfig>>,
    platform_tls: Option<Arc<rustls::ServerConfig>>,
    platform_listener: Option<TcpListener>,
    lock: DataDirLock,
    store: Arc<dyn Store>,
    identity: Arc<Identity>,
    admin_token: String,
    transport: Arc<Transport>,
    auth: Arc<Authenticator>,
}

/// Sets up the [`Ground`] in an order that fails early and writes late: files read and
/// checked first, then the data directory, its lock, the store, and only then new keys.
async fn prepare(config: &Config, data_dir: &PathBuf) -> Result<Ground, NodeError> {
    // Settings read from files are checked before anything is written.
    let jwt = JwtVerifier::from_config(config)?;
    let admin_tls = admin::tls::server_config(config)?;
    let platform_tls = crate::platform::server_config(config)?;
    let platform_listener = bind_platform(config).await?;
    create_data_dir(data_dir)?;
    // Before anything else is written: one node per data directory.
    let lock = DataDirLock::acquire(data_dir)?;
    // The store may refuse (an unreachable database, an unusable path) before a key or token
    // is created for a node that never ran.
    let store = store::open(
        config.database_url.as_deref(),
        &config.sqlite_path(),
        config.durability,
    )
    .await?;
    let identity = Arc::new(Identity::load_or_create(data_dir)?);
    let admin_token = identity::load_or_create_admin_token(data_dir)?;
    let transport = Arc::new(Transport::from_config(config, &identity)?);
    if config.peer_tls == PeerTls::Off {
        tracing::warn!(
            "peer_tls = \"off\": peer traffic is plaintext; anyone on the path can read and alter it"
        );
    }
    let auth = Arc::new(Authenticator::new(config, admin_token.clone(), jwt));
    Ok(Ground {
        admin_tls,
        platform_tls,
        platform_listener,
        lock,
        store,
        identity,
        admin_token,
        transport,
        auth,
    })
}

/// The platform listener, when `platform_listen` is set. Bound here rather than by the caller
/// (it is optional); port 0 is reported like the others.
async fn bind_platform(config: &Config) -> Result<Option<TcpListener>, NodeError> {
    let Some(addr) = config.platform_listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { addr, source })?;
    Ok(Some(listener))
}

fn local_addr(listener: &TcpListener, configured: SocketAddr) -> Result<SocketAddr, NodeError> {
    listener.local_addr().map_err(|source| NodeError::Bind {
        addr: configured,
        source,
    })
}

/// Creates the data directory, readable by the owner only (it holds the node key).
fn create_data_dir(path: &PathBuf) -> Result<(), NodeError> {
    let err = |source| NodeError::DataDir {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}
