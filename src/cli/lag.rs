//! `sorcha-peer lag`: how far this node's registers are behind another node's, judged
//! against `--max-lag`.

use clap::Args;

use super::output::{Output, cell, col, eprint_text, message_item};
use super::{EXIT_FAILED, EXIT_OK};
use crate::api::LagDto;
use crate::client::{AdminClient, ClientError};

#[derive(Debug, Args)]
pub struct LagArgs {
    /// The other node's peer-protocol address (no admin token needed there)
    #[arg(long, value_name = "HOST:PORT")]
    pub against: String,
    /// Only these registers (repeat the option for several); each named register is judged,
    /// held here or not
    #[arg(long, value_name = "REGISTER")]
    pub register: Vec<String>,
    /// Exit 1 if any register held here is more than N transactions behind (or has
    /// diverged), saying why for each. Exit codes: 0 within the limit, 1 over it or forked,
    /// 3 this node's admin API cannot be reached, 5 a named register is not advertised there
    #[arg(long, value_name = "N")]
    pub max_lag: Option<u64>,
    /// Also judge the registers the other node advertises and this one does not hold
    /// (otherwise they are only shown)
    #[arg(long)]
    pub all: bool,
}

pub(crate) async fn run(
    client: &AdminClient,
    out: &Output,
    args: LagArgs,
) -> Result<i32, ClientError> {
    let rows = rows(client, &args).await?;
    // Registers this node does not hold are information, unless asked for by name or --all.
    let judged = |r: &LagDto| r.held_locally || args.all || !args.register.is_empty();
    let failing: Vec<(&str, Vec<String>)> = rows
        .iter()
        .filter(|r| judged(r))
        .map(|r| (r.register_id.as_str(), lag_problems(r, args.max_lag)))
        .filter(|(_, problems)| !problems.is_empty())
        .collect();
    print_rows(out, &args.against, &rows);
    Ok(report(out, &args.against, &failing))
}

/// The rows asked for: one register, the named ones (each must be advertised there), or all.
async fn rows(client: &AdminClient, args: &LagArgs) -> Result<Vec<LagDto>, ClientError> {
    Ok(match args.register.as_slice() {
        [one] => client.lag(&args.against, Some(one)).await?,
        named => {
            let mut rows = client.lag(&args.against, None).await?;
            if !named.is_empty() {
                if let Some(missing) = named
                    .iter()
                    .find(|n| !rows.iter().any(|r| &&r.register_id == n))
                {
                    return Err(ClientError::NotFound(format!(
                        "{} does not advertise register '{missing}'",
                        args.against
                    )));
                }
                rows.retain(|r| named.contains(&r.register_id));
            }
            rows
        }
    })
}

/// The rows on stdout: JSON, or a table.
fn print_rows(out: &Output, against: &str, rows: &[LagDto]) {
    if out.json {
        out.print_json(&rows);
    } else if rows.is_empty() {
        out.message(&format!("{against} advertises no public registers."));
    } else {
        let mut table = out.table(vec![
            col("REGISTER ID"),
            col("LOCAL VERSION").short("LOCAL"),
            col("REMOTE VERSION").short("REMOTE"),
            col("TRANSACTIONS BEHIND").short("BEHIND"),
            col("LOCAL DOCKET VERSION").wide(),
            col("REMOTE DOCKET VERSION").wide(),
            col("DOCKETS BEHIND").short("DOCKETS"),
            col("DIVERGED"),
        ]);
        for r in rows {
            table.add_row(vec![
                cell(&r.register_id),
                cell(if r.held_locally {
                    r.local_version.to_string()
                } else {
                    "not held".into()
                }),
                cell(r.remote_version),
                cell(r.transactions_behind),
                cell(r.local_docket_version),
                cell(r.remote_docket_version),
                cell(r.dockets_behind),
                cell(if r.diverged { "DIVERGED" } else { "no" }),
            ]);
        }
        out.print_table(&table);
    }
}

/// The exit code, with each failing register's problems on stderr.
fn report(out: &Output, against: &str, failing: &[(&str, Vec<String>)]) -> i32 {
    if failing.is_empty() {
        EXIT_OK
    } else {
        // On stderr, so also with -o json (stdout keeps the one JSON document).
        let registers = if failing.len() == 1 {
            "register"
        } else {
            "registers"
        };
        out.error(&format!(
            "lag check against {against} failed for {} {registers}:",
            failing.len()
        ));
        for (register, problems) in failing {
            eprint_text(&message_item(
                &format!("{register}: {}", problems.join("; ")),
                2,
            ));
        }
        EXIT_FAILED
    }
}

/// Why a register fails the lag check (`max_lag`: the most transactions it may be behind),
/// in words; empty when it passes.
fn lag_problems(r: &LagDto, max_lag: Option<u64>) -> Vec<String> {
    let mut problems = Vec::new();
    if r.diverged {
        problems.push(match r.diverged_at_docket_version {
            Some(at) => format!("diverged (fork): the nodes hold different dockets at height {at}"),
            None => "diverged (fork): the nodes hold different chains".into(),
        });
    }
    if let Some(max) = max_lag
        && r.transactions_behind > max
    {
        let behind = format!(
            "{} / {}",
            count(r.dockets_behind, "docket"),
            count(r.transactions_behind, "transaction")
        );
        problems.push(if r.held_locally {
            format!("behind by {behind} (over --max-lag {max})")
        } else {
            format!("not held here; the other node has {behind} (over --max-lag {max})")
        });
    }
    problems
}

/// "1 docket", "3 dockets".
fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
