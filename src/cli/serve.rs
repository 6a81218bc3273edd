//! `sorcha-peer serve`: resolve the configuration, bind, run the node until SIGINT/SIGTERM.

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, GlobalArgs};
use crate::config::{ConfigError, Layers};
use crate::node::{self, Listeners};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see `sorcha-peer config default`)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Peer protocol address [default: 0.0.0.0:5000]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Admin API address [default: 127.0.0.1:5080]
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Address peers should dial to reach this node [default: the listen address]
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise_address: Option<String>,
    /// A node to join through (repeatable)
    #[arg(long = "seed", value_name = "HOST:PORT")]
    pub seeds: Vec<String>,
    /// postgres://user:password@host/db to store on PostgreSQL [default: SQLite in the data dir]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// A label for operators (not an identity)
    #[arg(long)]
    pub name: Option<String>,
}

fn layers(global: &GlobalArgs, args: &ServeArgs) -> Result<Layers, ConfigError> {
    let mut layers = Layers::default();
    if let Some(path) = &args.config {
        layers.add_file(path)?;
    }
    layers.add_env(|var| std::env::var(var).ok())?;
    let text = |s: &str| toml::Value::String(s.to_string());
    if let Some(dir) = &global.data_dir {
        layers.add_flag("data_dir", "--data-dir", text(&dir.to_string_lossy()))?;
    }
    for (key, flag, value) in [
        ("listen", "--listen", &args.listen),
        ("admin_listen", "--admin-listen", &args.admin_listen),
        (
            "advertise_address",
            "--advertise-address",
            &args.advertise_address,
        ),
        ("database_url", "--database-url", &args.database_url),
        ("name", "--name", &args.name),
    ] {
        if let Some(v) = value {
            layers.add_flag(key, flag, text(v))?;
        }
    }
    if !args.seeds.is_empty() {
        let seeds = args.seeds.iter().map(|s| text(s)).collect();
        layers.add_flag("seeds", "--seed", toml::Value::Array(seeds))?;
    }
    Ok(layers)
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> i32 {
    let config = match layers(global, &args).and_then(|l| l.resolve()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    crate::telemetry::init_logging(&config.log);
    let listeners = match Listeners::bind(&config).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return EXIT_FAILED;
        }
    };
    let shutdown = CancellationToken::new();
    let node = match node::start(config, listeners, shutdown.clone()).await {
        Ok(node) => node,
        Err(e) => {
            tracing::error!("cannot start the node: {e}");
            return EXIT_FAILED;
        }
    };
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    node.run_until_stopped().await;
    EXIT_OK
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops the node");
                if let Err(e) = tokio::signal::ctrl_c().await {
                    tracing::error!(
                        "cannot listen for Ctrl-C either ({e}); stop the node with SIGKILL"
                    );
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!("cannot listen for Ctrl-C ({e})");
        std::future::pending::<()>().await;
    }
}
