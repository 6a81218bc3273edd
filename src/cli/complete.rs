//! Dynamic completion: what the completion scripts ask the binary for on TAB (peer IDs and
//! names, register names), read from the node the command line being completed names.

use std::path::PathBuf;

use super::generate::{COMPLETE_PEERS, COMPLETE_REGISTERS};
use super::output;
use super::{EXIT_FAILED, EXIT_OK, GlobalArgs, OutputFormat, client, exit_code};

/// How long completion waits for the node before offering nothing.
const COMPLETION_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// What a completion asks the node for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Candidates {
    /// Peer IDs and names (`__complete-peers`).
    Peers,
    /// Registers held here or advertised by peers (`__complete-registers`).
    Registers,
}

impl Candidates {
    /// The hidden first argument the completion scripts call the binary with.
    pub fn from_arg(arg: &str) -> Option<Candidates> {
        match arg {
            COMPLETE_PEERS => Some(Candidates::Peers),
            COMPLETE_REGISTERS => Some(Candidates::Registers),
            _ => None,
        }
    }
}

/// `sorcha-peer __complete-peers|__complete-registers -- WORDS...`, called by the completion
/// scripts (and handled by `main` before clap, so it appears in no help, man page or
/// completion): prints the candidates known to the node that the command line being completed
/// names (its --node, --token, --cacert and --data-dir, else the environment and the data
/// directory), one per line. Prints nothing when that node cannot be reached quickly.
pub async fn complete(kind: Candidates, words: &[String]) -> i32 {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut global = GlobalArgs {
        node: env("SORCHA_PEER_NODE"),
        token: env("SORCHA_PEER_TOKEN"),
        cacert: env("SORCHA_PEER_CACERT").map(PathBuf::from),
        data_dir: env("SORCHA_PEER_DATA_DIR").map(PathBuf::from),
        output: OutputFormat::Table,
        quiet: true,
        no_color: true,
        no_headers: true,
    };
    let mut words = words.iter().skip_while(|w| *w == "--").skip(1);
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (word.as_str(), None),
        };
        let slot = match flag {
            "--node" => &mut global.node,
            "--token" => &mut global.token,
            "--data-dir" => {
                if let Some(dir) = inline.or_else(|| words.next().cloned()) {
                    global.data_dir = Some(PathBuf::from(dir));
                }
                continue;
            }
            "--cacert" => {
                if let Some(file) = inline.or_else(|| words.next().cloned()) {
                    global.cacert = Some(PathBuf::from(file));
                }
                continue;
            }
            _ => continue,
        };
        if let Some(value) = inline.or_else(|| words.next().cloned()) {
            *slot = Some(value);
        }
    }
    let Ok(client) = client(&global).and_then(|c| c.with_timeout(COMPLETION_TIMEOUT)) else {
        return EXIT_FAILED;
    };
    let found = match kind {
        Candidates::Peers => client.peers(None, None, None).await.map(|peers| {
            let ids = peers.iter().map(|p| p.peer_id.clone());
            let names = peers.iter().map(|p| p.name.clone());
            ids.chain(names).collect::<Vec<_>>()
        }),
        Candidates::Registers => match client.registers().await {
            Ok(held) => client.available_registers().await.map(|offered| {
                let held = held.into_iter().map(|r| r.register_id);
                held.chain(offered.into_iter().map(|r| r.register_id))
                    .collect()
            }),
            Err(e) => Err(e),
        },
    };
    match found {
        Ok(mut words) => {
            words.retain(|w| !w.is_empty() && !w.contains(char::is_whitespace));
            words.sort();
            words.dedup();
            let lines: String = words.iter().map(|w| format!("{w}\n")).collect();
            output::write_stdout(lines.as_bytes());
            EXIT_OK
        }
        Err(e) => exit_code(&e),
    }
}
