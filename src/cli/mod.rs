//! The command line: clap definitions (one file per command group), dispatch, and the mapping
//! from failures to documented exit codes. One definition drives `--help`, the man pages and
//! the completion scripts (see [`generate`]).

pub mod complete;
mod doctor;
pub(crate) mod events;
pub mod generate;
pub(crate) mod lag;
mod man_examples;
pub(crate) mod manpages;
pub mod output;
pub(crate) mod peers;
pub(crate) mod registers;
mod schema;
pub(crate) mod serve;
mod table;
pub(crate) mod tls;
pub(crate) mod tx;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::{AdminClient, ClientError};
use crate::config::{self, Config};
use crate::identity;
pub use complete::complete;
use output::Output;

/// Success.
pub const EXIT_OK: i32 = 0;
/// The operation failed, or the checked condition does not hold.
pub const EXIT_FAILED: i32 = 1;
/// Usage error: bad arguments or configuration.
pub const EXIT_USAGE: i32 = 2;
/// The node could not be reached.
pub const EXIT_UNREACHABLE: i32 = 3;
/// The node refused the admin token.
pub const EXIT_AUTH: i32 = 4;
/// The peer, ban or other object does not exist.
pub const EXIT_NOT_FOUND: i32 = 5;
/// The node answered, but could not reach the other node it was asked to contact (`peers
/// connect`, `lag --against`): apart from 3, so a script can tell the two apart.
pub const EXIT_REMOTE_UNREACHABLE: i32 = 6;

/// Admin API address used when neither --node, SORCHA_PEER_NODE nor <data-dir>/admin.url says.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:5080";

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the operation failed or the checked condition does not hold
  2  usage error (bad arguments or configuration)
  3  node unreachable
  4  authentication refused
  5  not found
  6  the node could not reach the other node it was asked to contact";

/// sorcha-peer: run a Sorcha peer node, and manage one from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "sorcha-peer",
    version = crate::LONG_VERSION,
    about = "Peer-to-peer node for Sorcha registers, and the operator CLI that manages it",
    long_about = "Peer-to-peer node for Sorcha registers, and the operator CLI that manages it.\n\n\
        `sorcha-peer serve` runs a node. Every other command talks to a node's admin API \
        (the local node by default) and prints a table, or JSON with -o json.",
    after_help = EXIT_CODES_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command (under their own heading in every `--help`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Admin API of the node to manage [default: <data-dir>/admin.url, else http://127.0.0.1:5080]
    #[arg(long, global = true, env = "SORCHA_PEER_NODE", value_name = "URL")]
    pub node: Option<String>,
    /// Admin bearer token, or a JWT signed with the node's jwt_key [default: read from <data-dir>/admin.token]
    #[arg(
        long,
        global = true,
        env = "SORCHA_PEER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// CA certificate(s) (PEM) to trust for an https:// node; only these are trusted
    #[arg(long, global = true, env = "SORCHA_PEER_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Node data directory (key, admin token, SQLite database) [default: per-user data dir]
    #[arg(long, global = true, env = "SORCHA_PEER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Output format
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Print only the requested data, no confirmations
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Never colour output (also honoured: the NO_COLOR environment variable)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Tables without their header line
    #[arg(long, global = true)]
    pub no_headers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables and sentences for people, fitted to the terminal width (COLUMNS)
    Table,
    /// Tables with every column, IDs in full, never wrapped
    Wide,
    /// One JSON document on stdout, with the admin API's field names (`events` and `tx submit
    /// --lines`: JSON Lines, one object per event or input line)
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a peer node in the foreground
    Serve(serve::ServeArgs),
    /// Show the node's identity, addresses, storage and peer counts
    Status,
    /// Check what an operator would check by hand (readiness, storage and disk space, clock,
    /// address, certificate, replication, risky settings, file permissions); each item ok,
    /// unknown, warning or failing with its fix. Exit 1 when an item fails
    Doctor,
    /// The JSON Schema of an `-o json` output or an admin API body (without NAME: the list),
    /// with every field described
    Schema {
        /// e.g. status, peers-list, event, ban-request
        name: Option<String>,
    },
    /// Inspect and manage peers: list, get, connect, disconnect, ban, unban, reset, bans
    #[command(subcommand)]
    Peers(peers::PeersCommand),
    /// Registers: create, list, subscribe to, unsubscribe from, purge
    #[command(subcommand)]
    Registers(registers::RegistersCommand),
    /// Transactions: submit and look up
    #[command(subcommand)]
    Tx(tx::TxCommand),
    /// How far this node is behind another node, per register (exit 1 beyond --max-lag)
    Lag(lag::LagArgs),
    /// Print the node's recent events (peers, bans, replication, storage); --follow streams them.
    /// With -o json: JSON Lines, one compact object per event (`jq` reads them as a stream)
    Events(events::EventsArgs),
    /// Configuration helpers
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Certificates for peer_tls = "ca": make a CA, issue a node certificate, revoke one
    #[command(subcommand)]
    Tls(tls::TlsCommand),
    /// Print this binary's version and the commit it was built from
    Version,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell to generate for
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print an annotated configuration file with every key at its default
    Default,
}

/// The environment variables the CLI's own options read (`SORCHA_PEER_NODE`, …), from the
/// clap definitions of every command.
pub fn cli_env_vars() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(var) = arg.get_env() {
                out.push(var.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut vars = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut vars);
    vars
}

/// `SORCHA_PEER_*` variables in this process's environment that nothing reads.
pub fn unknown_env_vars() -> Vec<config::env::UnknownVar> {
    let names: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    let known = config::env::known_vars(&cli_env_vars());
    config::env::unknown_vars(names.iter().map(String::as_str), &known)
}

/// Runs a parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let out = Output::new(&cli.global);
    if !matches!(cli.command, Command::Serve(_)) {
        // `serve` refuses to start on these; a client command says so and carries on.
        for var in unknown_env_vars() {
            output::eprint_text(&format!("warning: {var}"));
        }
    }
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, args).await,
        Command::Tls(command) => {
            let data_dir = cli
                .global
                .data_dir
                .clone()
                .unwrap_or_else(config::default_data_dir);
            tls::run(&data_dir, &out, command)
        }
        Command::Config(ConfigCommand::Default) => {
            output::write_stdout(Config::default_file().as_bytes());
            EXIT_OK
        }
        Command::Version => {
            if out.json {
                out.print_json(&serde_json::json!({
                    "version": crate::VERSION,
                    "commit": crate::COMMIT,
                }));
            } else {
                out.print_value(&format!("sorcha-peer {}", crate::LONG_VERSION));
            }
            EXIT_OK
        }
        Command::Completions { shell } => {
            // Generated in memory, then written through the one place that handles a closed
            // stdout (clap_complete panics when its writer fails).
            let mut script = Vec::new();
            if let Err(e) = generate::completion(shell, &mut script) {
                out.error(&format!("cannot generate the completion script: {e}"));
                return EXIT_FAILED;
            }
            output::write_stdout(&script);
            EXIT_OK
        }
        Command::Status => match client(&cli.global) {
            Ok(client) => report(&cli.global, &out, peers::status(&client, &out).await),
            Err(e) => report(&cli.global, &out, Err(e)),
        },
        Command::Schema { name } => schema::run(&out, name.as_deref()),
        Command::Doctor => match client(&cli.global) {
            Ok(client) => report_code(&cli.global, &out, doctor::run(&client, &out).await),
            Err(e) => report(&cli.global, &out, Err(e)),
        },
        Command::Peers(command) => match client(&cli.global) {
            Ok(client) => report(&cli.global, &out, peers::run(&client, &out, command).await),
            Err(e) => report(&cli.global, &out, Err(e)),
        },
        Command::Registers(command) => match client(&cli.global) {
            Ok(client) => report_code(
                &cli.global,
                &out,
                registers::run(&client, &out, command).await,
            ),
            Err(e) => report(&cli.global, &out, Err(e)),
        },
        Command::Tx(command) => match client(&cli.global) {
            Ok(client) => report_code(&cli.global, &out, tx::run(&client, &out, command).await),
            Err(e) => report(&cli.global, &out, Err(e)),
        },
        Command::Events(args) => match client(&cli.global) {
            Ok(client) => report_code(&cli.global, &out, events::run(&client, &out, args).await),
            Err(e) => report(&cli.global, &out, Err(e)),
        },
        Command::Lag(args) => match client(&cli.global) {
            Ok(client) => report_code(&cli.global, &out, lag::run(&client, &out, args).await),
            Err(e) => report(&cli.global, &out, Err(e)),
        },
    }
}

/// Prints a failure (with a hint when the node was not found where it was looked for) and
/// turns it into its exit code.
fn report(global: &GlobalArgs, out: &Output, result: Result<(), ClientError>) -> i32 {
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            out.error(&e.to_string());
            if matches!(e, ClientError::Unreachable { .. }) && global.node.is_none() {
                let dir = global
                    .data_dir
                    .clone()
                    .unwrap_or_else(config::default_data_dir);
                if !dir.join(identity::ADMIN_URL_FILE).exists() {
                    output::eprint_text(&format!(
                        "hint: no running node has recorded its address in {}; start one with \
                         `sorcha-peer serve`, or pass --node URL",
                        dir.display()
                    ));
                }
            }
            exit_code(&e)
        }
    }
}

/// Like [`report`] for commands that choose their own exit code on success (checks).
fn report_code(global: &GlobalArgs, out: &Output, result: Result<i32, ClientError>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => report(global, out, Err(e)),
    }
}

/// The documented exit code for a client error.
pub fn exit_code(e: &ClientError) -> i32 {
    match e {
        ClientError::Unreachable { .. } => EXIT_UNREACHABLE,
        ClientError::RemoteUnreachable(_) => EXIT_REMOTE_UNREACHABLE,
        ClientError::Unauthorized(_) => EXIT_AUTH,
        ClientError::NotFound(_) => EXIT_NOT_FOUND,
        ClientError::BadRequest(_) | ClientError::Setup(_) => EXIT_USAGE,
        ClientError::Conflict(_)
        | ClientError::Server { .. }
        | ClientError::Decode(_)
        | ClientError::PartlyStored { .. } => EXIT_FAILED,
    }
}

/// Builds the admin client: the node URL and token come from the flags or environment, else
/// from the files a local node writes in its data directory.
pub fn client(global: &GlobalArgs) -> Result<AdminClient, ClientError> {
    let data_dir = global
        .data_dir
        .clone()
        .unwrap_or_else(config::default_data_dir);
    let base = match &global.node {
        Some(url) => url.clone(),
        None => std::fs::read_to_string(data_dir.join(identity::ADMIN_URL_FILE))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_NODE_URL.to_string()),
    };
    let base = if base.contains("://") {
        base
    } else {
        format!("http://{base}")
    };
    let token = match &global.token {
        Some(token) => Some(token.clone()),
        None => identity::read_admin_token(&data_dir).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            None
        }),
    };
    AdminClient::connect(&base, token, global.cacert.as_deref())
}
