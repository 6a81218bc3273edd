//! `sorcha-peer serve`: resolve the configuration, bind, run the node until SIGINT/SIGTERM.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args};
use tokio_util::sync::CancellationToken;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, GlobalArgs};
use crate::config::{ConfigError, KEYS, Layers};
use crate::node::{self, Listeners};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see `sorcha-peer config default`)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub keys: KeyFlags,
}

/// The flags that set configuration keys, as the key declarations in `config` define them.
#[derive(Debug, Default)]
pub struct KeyFlags {
    /// (key, flag as typed, value): a list for list keys, else one text.
    given: Vec<(&'static str, String, toml::Value)>,
}

impl clap::Args for KeyFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        KEYS.iter().fold(cmd, |cmd, def| match &def.flag {
            Some(flag) => cmd.arg(
                Arg::new(def.name)
                    .long(flag.long)
                    .value_name(flag.value_name)
                    .help(flag.help)
                    .action(if def.is_list() {
                        ArgAction::Append
                    } else {
                        ArgAction::Set
                    })
                    .value_parser(clap::value_parser!(String)),
            ),
            None => cmd,
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for KeyFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for def in KEYS {
            let Some(flag) = &def.flag else { continue };
            let Some(values) = matches.get_many::<String>(def.name) else {
                continue;
            };
            let mut values: Vec<toml::Value> =
                values.map(|v| toml::Value::String(v.clone())).collect();
            let value = if def.is_list() {
                toml::Value::Array(values)
            } else {
                match values.pop() {
                    Some(v) => v,
                    None => continue,
                }
            };
            given.push((def.name, format!("--{}", flag.long), value));
        }
        Ok(KeyFlags { given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

fn layers(global: &GlobalArgs, args: &ServeArgs) -> Result<Layers, ConfigError> {
    let mut layers = Layers::default();
    if let Some(path) = &args.config {
        layers.add_file(path)?;
    }
    layers.add_env(|var| std::env::var(var).ok())?;
    if let Some(dir) = &global.data_dir {
        // A global flag (every subcommand finds the data directory by it).
        let dir = toml::Value::String(dir.to_string_lossy().into_owned());
        layers.add_flag("data_dir", "--data-dir", dir)?;
    }
    for (key, flag, value) in &args.keys.given {
        layers.add_flag(key, flag, value.clone())?;
    }
    Ok(layers)
}

pub(crate) async fn run(global: &GlobalArgs, args: ServeArgs) -> i32 {
    // A misspelt variable would leave the node running with a setting the operator did not
    // mean: refuse to start instead.
    let unknown = super::unknown_env_vars();
    if !unknown.is_empty() {
        for var in &unknown {
            super::output::eprint_text(&format!("error: {var}"));
        }
        super::output::eprint_text(
            "hint: every key reads SORCHA_PEER_<KEY> (see `sorcha-peer config default`); unset the \
             variable or correct its name",
        );
        return EXIT_USAGE;
    }
    let config = match layers(global, &args).and_then(|l| l.resolve()) {
        Ok(config) => config,
        Err(e) => {
            super::output::eprint_text(&format!("error: {e}"));
            return EXIT_USAGE;
        }
    };
    if let Err(e) = crate::telemetry::init_node_logging(&config) {
        super::output::eprint_text(&format!("error: {e}"));
        return EXIT_USAGE;
    }
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
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            tracing::error!(
                "cannot listen for SIGINT/SIGTERM, so nothing could stop the node: {e}"
            );
            return EXIT_FAILED;
        }
    };
    let run = async {
        let node = match node::start(config, listeners, shutdown.clone()).await {
            Ok(node) => node,
            Err(e) => {
                tracing::error!("cannot start the node: {e}");
                return EXIT_FAILED;
            }
        };
        node.run_until_stopped().await;
        EXIT_OK
    };
    // The signal watch runs beside the node in this task (no detached task outlives it): it
    // cancels `shutdown` and then waits for ever, so the node's own end decides the exit.
    let watch = async {
        signals.received().await;
        // Stop first, then say so: nothing about logging may stand between a signal and the
        // shutdown.
        shutdown.cancel();
        tracing::info!("shutting down");
        std::future::pending::<()>().await;
    };
    tokio::select! {
        code = run => code,
        () = watch => EXIT_FAILED,
    }
}

/// SIGINT and SIGTERM, with their handlers installed (so a signal arriving before anyone waits
/// is still seen).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Returns at the first SIGINT or SIGTERM.
    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C ({e}); stop the node by killing it");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn resolve(args: &[&str]) -> Result<crate::config::Config, ConfigError> {
        let cli = Cli::try_parse_from(args).expect("arguments parse");
        let Command::Serve(serve) = &cli.command else {
            panic!("not serve")
        };
        layers(&cli.global, serve)?.resolve()
    }

    #[test]
    fn declared_flags_set_their_keys() {
        let c = resolve(&[
            "sorcha-peer",
            "serve",
            "--listen",
            "127.0.0.9:7000",
            "--admin-listen",
            "127.0.0.9:7080",
            "--advertise-address",
            "peer.example:7000",
            "--seed",
            "a.example:1",
            "--seed",
            "b.example:2",
            "--database-url",
            "sqlite:/tmp/x.db",
            "--name",
            "ninth",
        ])
        .expect("resolve");
        assert_eq!(c.listen, "127.0.0.9:7000".parse().expect("addr"));
        assert_eq!(c.admin_listen, "127.0.0.9:7080".parse().expect("addr"));
        assert_eq!(c.advertise_address.as_deref(), Some("peer.example:7000"));
        assert_eq!(c.seeds, vec!["a.example:1", "b.example:2"]);
        assert_eq!(c.database_url.as_deref(), Some("sqlite:/tmp/x.db"));
        assert_eq!(c.name, "ninth");
    }

    #[test]
    fn a_bad_flag_value_names_the_key_and_the_flag() {
        let err = resolve(&["sorcha-peer", "serve", "--seed", "no-port"])
            .expect_err("bad seed")
            .to_string();
        assert!(err.contains("`seeds`") && err.contains("--seed"), "{err}");
    }
}
