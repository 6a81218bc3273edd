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
            super::output::eprint_text(&format!("error: {e}"));
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
    // Listen before the node starts: a signal during start-up then stops it cleanly instead of
    // killing it mid-write.
    if let Err(e) = stop_on_signal(shutdown.clone()) {
        tracing::error!("cannot listen for SIGINT/SIGTERM, so nothing could stop the node: {e}");
        return EXIT_FAILED;
    }
    let node = match node::start(config, listeners, shutdown.clone()).await {
        Ok(node) => node,
        Err(e) => {
            tracing::error!("cannot start the node: {e}");
            return EXIT_FAILED;
        }
    };
    node.run_until_stopped().await;
    EXIT_OK
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM. The handlers are installed before this
/// returns; the waiting happens in a task.
fn stop_on_signal(shutdown: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            // Stop first, then say so: nothing about logging may stand between a signal and
            // the shutdown.
            shutdown.cancel();
            tracing::info!("shutting down");
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        match tokio::signal::ctrl_c().await {
            Ok(()) => {
                shutdown.cancel();
                tracing::info!("shutting down");
            }
            Err(e) => {
                tracing::error!("cannot listen for Ctrl-C ({e}); stop the node by killing it")
            }
        }
    });
    Ok(())
}
