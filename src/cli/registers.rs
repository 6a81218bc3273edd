//! `sorcha-peer registers …`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::{Subcommand, ValueEnum};
use indicatif::{HumanCount, ProgressBar, ProgressStyle};

use super::output::{Output, cell, cell_or_none, col, eprint_text, escape_control, relative};
use super::{EXIT_FAILED, EXIT_OK};
use crate::api::SubscriptionDto;
use crate::client::{AdminClient, ClientError};

/// How often `subscribe --wait` polls the node.
const WAIT_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Subcommand)]
pub enum RegistersCommand {
    /// Registers this node holds (as origin or replica)
    List,
    /// Public registers advertised by connected peers
    Available,
    /// Create a register with this node as its origin
    Create {
        /// Name: 1-64 of A-Z a-z 0-9 . _ -
        register: String,
        /// Advertise and serve it to peers (private registers never leave this node)
        #[arg(long)]
        public: bool,
    },
    /// Replicate a register from peers
    Subscribe {
        register: String,
        /// full-replica: the whole chain from genesis; forward-only: from the current head on.
        /// The same subscription again is a no-op that succeeds.
        #[arg(long, value_enum, default_value = "full-replica")]
        mode: ModeArg,
        /// Show progress and return once fully replicated (or active, for forward-only)
        #[arg(long)]
        wait: bool,
        /// With --wait: give up (exit 1) after this long, e.g. 10m
        #[arg(long, value_parser = super::peers::parse_duration_arg, value_name = "DURATION", requires = "wait")]
        timeout: Option<String>,
    },
    /// Stop replicating a register (its data is kept unless --purge)
    Unsubscribe {
        register: String,
        /// Also delete the replicated data
        #[arg(long)]
        purge: bool,
    },
    /// Delete a replicated register's data (after unsubscribing)
    Purge { register: String },
    /// Show subscriptions with their state, progress and last error
    Subscriptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    FullReplica,
    ForwardOnly,
}

impl ModeArg {
    fn as_str(self) -> &'static str {
        match self {
            ModeArg::FullReplica => "full-replica",
            ModeArg::ForwardOnly => "forward-only",
        }
    }
}

pub(crate) async fn run(
    client: &AdminClient,
    out: &Output,
    command: RegistersCommand,
) -> Result<i32, ClientError> {
    match command {
        RegistersCommand::List => list(client, out).await?,
        RegistersCommand::Available => available(client, out).await?,
        RegistersCommand::Create { register, public } => {
            create(client, out, &register, public).await?;
        }
        RegistersCommand::Subscribe {
            register,
            mode,
            wait,
            timeout,
        } => return subscribe(client, out, register, mode, wait, timeout).await,
        RegistersCommand::Unsubscribe { register, purge } => {
            unsubscribe(client, out, &register, purge).await?;
        }
        RegistersCommand::Purge { register } => purge(client, out, &register).await?,
        RegistersCommand::Subscriptions => subscriptions(client, out).await?,
    }
    Ok(EXIT_OK)
}

/// `registers list`.
async fn list(client: &AdminClient, out: &Output) -> Result<(), ClientError> {
    let registers = client.registers().await?;
    if out.json {
        out.print_json(&registers);
    } else if registers.is_empty() {
        out.message("No registers.");
    } else {
        let mut table = out.table(vec![
            col("REGISTER ID"),
            col("ROLE"),
            col("SYNC STATE").short("STATE"),
            col("IS PUBLIC").wide(),
            col("LATEST VERSION").short("VERSION"),
            col("LATEST DOCKET VERSION").short("DOCKET"),
            col("DOCKET COUNT").wide(),
            col("TRANSACTION COUNT").wide(),
            col("PENDING TRANSACTIONS").wide(),
            col("SYNC PROGRESS").short("PROGRESS"),
            col("HEAD HASH").wide(),
            col("CREATED AT").wide(),
        ]);
        for r in &registers {
            table.add_row(vec![
                cell(&r.register_id),
                cell(&r.role),
                cell(&r.sync_state),
                cell(if r.is_public { "yes" } else { "no" }),
                cell(r.latest_version),
                cell(r.latest_docket_version),
                cell(r.docket_count),
                cell(r.transaction_count),
                cell(r.pending_transactions),
                cell(format!("{:.1}%", r.sync_progress_percent)),
                cell(&r.head_hash),
                cell(relative(&r.created_at)),
            ]);
        }
        out.print_table(&table);
    }
    Ok(())
}

/// `registers available`.
async fn available(client: &AdminClient, out: &Output) -> Result<(), ClientError> {
    let available = client.available_registers().await?;
    if out.json {
        out.print_json(&available);
    } else if available.is_empty() {
        out.message("No public registers advertised by connected peers.");
    } else {
        let mut table = out.table(vec![
            col("REGISTER ID"),
            col("PEER COUNT").short("PEERS"),
            col("FULL REPLICA PEER COUNT").short("FULL"),
            col("LATEST VERSION").short("VERSION"),
            col("LATEST DOCKET VERSION").short("DOCKET"),
            col("LOCAL ROLE").short("HERE"),
        ]);
        for a in &available {
            table.add_row(vec![
                cell(&a.register_id),
                cell(a.peer_count),
                cell(a.full_replica_peer_count),
                cell(a.latest_version),
                cell(a.latest_docket_version),
                cell_or_none(a.local_role.as_deref()),
            ]);
        }
        out.print_table(&table);
    }
    Ok(())
}

/// `registers create`.
async fn create(
    client: &AdminClient,
    out: &Output,
    register: &str,
    public: bool,
) -> Result<(), ClientError> {
    let created = client.create_register(register, public).await?;
    if out.json {
        out.print_json(&created);
    } else {
        out.message(&format!(
            "Created {} register {} (this node is its origin).",
            if created.is_public {
                "public"
            } else {
                "private"
            },
            created.register_id
        ));
    }
    Ok(())
}

/// `registers subscribe`, and with `--wait` its progress until replicated.
async fn subscribe(
    client: &AdminClient,
    out: &Output,
    register: String,
    mode: ModeArg,
    wait: bool,
    timeout: Option<String>,
) -> Result<i32, ClientError> {
    let sub = client.subscribe(&register, mode.as_str()).await?;
    if !wait {
        if out.json {
            out.print_json(&sub);
        } else {
            out.message(&format!(
                "Subscribed to {} ({}): {}.",
                sub.register_id,
                words(&sub.mode),
                words(&sub.sync_state)
            ));
        }
        return Ok(EXIT_OK);
    }
    let limit = timeout
        .as_deref()
        .map(crate::clock::parse_duration)
        .transpose()
        .map_err(|e| ClientError::BadRequest(e.to_string()))?;
    wait_for_sync(client, out, &register, limit).await
}

/// `registers unsubscribe`.
async fn unsubscribe(
    client: &AdminClient,
    out: &Output,
    register: &str,
    purge: bool,
) -> Result<(), ClientError> {
    let done = client.unsubscribe(register, purge).await?;
    if out.json {
        out.print_json(&done);
    } else if done.cache_retained {
        out.message(&format!(
            "Unsubscribed from {}; its data is kept (purge it with `registers purge`).",
            register
        ));
    } else {
        out.message(&format!(
            "Unsubscribed from {} and removed {} dockets (the first one held \
             included) with {} transactions.",
            register,
            done.dockets_removed.unwrap_or(0),
            done.transactions_removed.unwrap_or(0)
        ));
    }
    Ok(())
}

/// `registers purge`.
async fn purge(client: &AdminClient, out: &Output, register: &str) -> Result<(), ClientError> {
    let done = client.purge(register).await?;
    if out.json {
        out.print_json(&done);
    } else {
        out.message(&format!(
            "Purged {}: removed {} dockets (the first one held included) with {} \
             transactions.",
            register, done.dockets_removed, done.transactions_removed
        ));
    }
    Ok(())
}

/// `registers subscriptions`.
async fn subscriptions(client: &AdminClient, out: &Output) -> Result<(), ClientError> {
    let subs = client.subscriptions().await?;
    if out.json {
        out.print_json(&subs);
    } else if subs.is_empty() {
        out.message("No subscriptions.");
    } else {
        let mut table = out.table(vec![
            col("REGISTER ID"),
            col("MODE").wide(),
            col("SYNC STATE").short("STATE"),
            col("LAST SYNCED DOCKET VERSION").short("DOCKET"),
            col("TARGET DOCKET VERSION").wide(),
            col("TOTAL DOCKETS IN CHAIN").wide(),
            col("SYNC PROGRESS").short("PROGRESS"),
            col("LAST SYNC AT").short("SYNCED"),
            col("CONSECUTIVE FAILURES").wide(),
            col("CREATED AT").wide(),
            col("ERROR MESSAGE").short("ERROR").wrap(),
        ]);
        for s in &subs {
            table.add_row(vec![
                cell(&s.register_id),
                cell(words(&s.mode)),
                cell(words(&s.sync_state)),
                cell_or_none(s.held_docket_version),
                cell_or_none(s.target_docket_version),
                cell_or_none(s.target_docket_version.map(|_| s.total_dockets_in_chain)),
                cell(format!("{:.1}%", s.sync_progress_percent)),
                cell(
                    s.last_sync_at
                        .as_deref()
                        .map(relative)
                        .unwrap_or_else(|| "never".into()),
                ),
                cell(s.consecutive_failures),
                cell(relative(&s.created_at)),
                cell_or_none(s.error_message.as_deref()),
            ]);
        }
        out.print_table(&table);
    }
    Ok(())
}

/// A platform enum name (`FullyReplicated`) in the words the rest of the CLI prints
/// (`fully-replicated`).
fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn done(s: &SubscriptionDto) -> bool {
    s.is_receiving
}

/// Polls until the subscription is fully replicated (or active), drawing a progress bar with
/// rate and ETA on a terminal.
async fn wait_for_sync(
    client: &AdminClient,
    out: &Output,
    register: &str,
    limit: Option<Duration>,
) -> Result<i32, ClientError> {
    let started = Instant::now();
    let bar = if std::io::stderr().is_terminal() && !out.json && !out.quiet {
        let bar = ProgressBar::new(0);
        bar.set_message(register.to_string());
        Some(bar)
    } else {
        None
    };
    let mut progress = SyncProgress::new(register);
    let mut last_error: Option<String> = None;
    loop {
        let sub = client
            .subscriptions()
            .await?
            .into_iter()
            .find(|s| s.register_id == register)
            .ok_or_else(|| {
                ClientError::NotFound(format!("the subscription to '{register}' is gone"))
            })?;
        if let Some(bar) = &bar {
            progress.draw(bar, &sub);
        }
        if sub.error_message != last_error {
            if let Some(e) = &sub.error_message {
                let text = format!("{register}: {e} (retrying)");
                match &bar {
                    Some(bar) => bar.println(escape_control(&text)),
                    None if !out.quiet => eprint_text(&text),
                    None => {}
                }
            }
            last_error = sub.error_message.clone();
        }
        if done(&sub) {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            if out.json {
                out.print_json(&sub);
            } else {
                out.message(&format!(
                    "{register} is {} at docket {} (version {}).",
                    words(&sub.sync_state),
                    sub.last_synced_docket_version,
                    sub.last_synced_transaction_version
                ));
            }
            return Ok(EXIT_OK);
        }
        if limit.is_some_and(|l| started.elapsed() > l) {
            if let Some(bar) = &bar {
                bar.abandon();
            }
            out.error(&format!(
                "{register} is still {} after {:?}",
                words(&sub.sync_state),
                started.elapsed()
            ));
            return Ok(EXIT_FAILED);
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// What the `--wait` bar shows: transactions once the node knows how many its source holds
/// (the bar and its ETA from indicatif), else dockets; beside them the rates of both,
/// measured from the first figures seen, so a catch-up in batches shows real rates.
struct SyncProgress {
    register: String,
    /// Whether the bar counts transactions (else dockets), as last drawn.
    transactions: Option<bool>,
    /// When first drawn, with the dockets and transactions held then.
    first: Option<(Instant, u64, u64)>,
}

impl SyncProgress {
    fn new(register: &str) -> SyncProgress {
        SyncProgress {
            register: register.to_string(),
            transactions: None,
            first: None,
        }
    }

    fn draw(&mut self, bar: &ProgressBar, sub: &SubscriptionDto) {
        if done(sub) {
            // The bar is cleared next and a sentence says so.
            return;
        }
        let dockets = sub.last_synced_docket_version;
        let transactions = sub.last_synced_transaction_version;
        let by_transactions = sub.target_transaction_version.is_some_and(|t| t > 0);
        if self.transactions != Some(by_transactions) {
            let template = if by_transactions {
                "{spinner} {msg} [{wide_bar}] {human_pos}/{human_len} tx {prefix} ETA {eta}"
            } else {
                "{spinner} {msg} [{wide_bar}] {human_pos}/{human_len} dockets {prefix} ETA {eta}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            self.transactions = Some(by_transactions);
        }
        let (since, dockets_then, transactions_then) =
            *self
                .first
                .get_or_insert((Instant::now(), dockets, transactions));
        let elapsed = since.elapsed().as_secs_f64();
        // A rate means something once some time has passed.
        let rate = |now: u64, then: u64, decimals: usize| {
            if elapsed < 0.5 {
                "-/s".to_string()
            } else {
                let per_second = now.saturating_sub(then) as f64 / elapsed;
                if decimals == 0 {
                    format!("{}/s", HumanCount(per_second.round() as u64))
                } else {
                    format!("{per_second:.decimals$}/s")
                }
            }
        };
        let docket_rate = rate(dockets, dockets_then, 1);
        if by_transactions {
            bar.set_length(sub.target_transaction_version.unwrap_or(0));
            bar.set_position(transactions);
            let target = sub
                .target_docket_version
                .map_or_else(|| "?".to_string(), |t| t.to_string());
            bar.set_prefix(format!(
                "{}, docket {dockets}/{target} {docket_rate}",
                rate(transactions, transactions_then, 0)
            ));
        } else {
            if let Some(target) = sub.target_docket_version {
                bar.set_length(target);
            }
            bar.set_position(dockets);
            bar.set_prefix(docket_rate);
        }
        // The state only when it is not the obvious one (the bar says it is syncing).
        let message = match sub.sync_state.as_str() {
            "Syncing" => self.register.clone(),
            state => format!("{} {}", self.register, words(state)),
        };
        bar.set_message(escape_control(&message).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn platform_enum_names_read_as_the_cli_words() {
        assert_eq!(words("FullyReplicated"), "fully-replicated");
        assert_eq!(words("ForwardOnly"), "forward-only");
        assert_eq!(words("Error"), "error");
        assert_eq!(words(""), "");
    }
}
