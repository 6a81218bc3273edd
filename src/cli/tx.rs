//! `sorcha-peer tx`: submit transactions (one, or one per input line in bounded requests) and
//! show a transaction's state.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use clap::Subcommand;

use super::EXIT_OK;
use super::output::{
    Details, NONE, Output, eprint_text, escape_control, json_escape_rest, relative, write_stdout,
};
use crate::api::{BatchSubmitResponse, SubmitResponse};
use crate::client::{AdminClient, ClientError};

/// Most lines sent per request by `tx submit --lines` (fewer when the node refuses that many).
const LINES_PER_REQUEST: usize = 1000;
/// Most JSON bytes of payloads sent per request by `tx submit --lines` (less when the node
/// refuses that much).
const BYTES_PER_REQUEST: usize = 4 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Submit a transaction (the whole input), or one per line with --lines
    ///
    /// A payload the node holds already is not stored again (its ID is the hash of the
    /// payload): the command says whether it is still pending or in which docket it was
    /// sealed, and exits 0.
    Submit {
        register: String,
        /// File to read; `-` or nothing reads standard input
        input: Option<PathBuf>,
        /// Submit each non-empty input line as its own transaction; prints one ID per line
        /// (with -o json: JSON Lines, one object per input line, the fields a single submit
        /// answers), then a count on stderr: stored, held already, not stored. The input is
        /// read and sent as it comes, in requests of bounded size; if one fails, the lines
        /// printed until then were stored and the lines after them were not
        #[arg(long)]
        lines: bool,
    },
    /// Show a transaction: pending, or sealed with its version and docket number
    Get {
        register: String,
        /// Transaction ID, or a unique prefix of it (at least 8 hex characters)
        transaction: String,
    },
}

pub(crate) async fn run(
    client: &AdminClient,
    out: &Output,
    command: TxCommand,
) -> Result<i32, ClientError> {
    match command {
        TxCommand::Submit {
            register,
            input,
            lines,
        } => {
            if lines {
                let reader: Box<dyn BufRead> = match input.as_deref() {
                    None => Box::new(BufReader::new(std::io::stdin())),
                    Some(p) if p.as_os_str() == "-" => Box::new(BufReader::new(std::io::stdin())),
                    Some(p) => Box::new(BufReader::new(std::fs::File::open(p).map_err(|e| {
                        ClientError::BadRequest(format!("cannot read the input: {e}"))
                    })?)),
                };
                let mut submitter = LineSubmitter::new(client, &register, out.json);
                let result = submitter.run(reader).await;
                if !out.quiet {
                    eprint_text(&submitter.summary());
                }
                result?;
                return Ok(EXIT_OK);
            }
            let mut data = Vec::new();
            let read = match input.as_deref() {
                None => std::io::stdin().read_to_end(&mut data),
                Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_end(&mut data),
                Some(p) => std::fs::File::open(p).and_then(|mut f| f.read_to_end(&mut data)),
            };
            read.map_err(|e| ClientError::BadRequest(format!("cannot read the input: {e}")))?;
            let done = client.submit(&register, data).await?;
            if out.json {
                out.print_json(&done);
            } else {
                out.print_value(&done.transaction_id);
                if done.already_held {
                    out.message(&already_held(&done));
                }
            }
        }
        TxCommand::Get {
            register,
            transaction,
        } => {
            let tx = client.transaction(&register, &transaction).await?;
            if out.json {
                out.print_json(&tx);
            } else {
                let mut d = Details::new();
                d.row("Transaction ID", &tx.transaction_id);
                d.row("Register ID", &tx.register_id);
                d.row("State", &tx.state);
                d.row("Version", tx.version.map_or(NONE.into(), |v| v.to_string()));
                d.row(
                    "Docket number",
                    tx.docket_number.map_or(NONE.into(), |v| v.to_string()),
                );
                d.row("Size", format!("{} bytes", tx.size));
                d.row("Received at", relative(&tx.received_at));
                out.print_details(&d);
            }
        }
    }
    Ok(EXIT_OK)
}

/// What `tx submit` says of a payload the node held already (nothing was stored again).
fn already_held(done: &SubmitResponse) -> String {
    match (done.state.as_str(), done.docket_number, done.version) {
        ("sealed", Some(docket), Some(version)) => {
            format!("Already sealed in docket {docket} as version {version}; not stored again.")
        }
        _ => "Already pending (submitted before, not sealed yet); not stored again.".into(),
    }
}

/// `tx submit --lines`: reads the input line by line and submits it in batches of at most
/// `max_lines` lines and `max_bytes` JSON bytes, printing each batch's IDs as soon as it is
/// stored. Only one batch is held in memory. A batch the node refuses as too large (413:
/// its `max_batch_transactions` / `max_batch_bytes` are lower; nothing of it was stored) is
/// sent again in halves, and the smaller size is kept for the rest of the input.
///
/// On a failure the IDs printed so far (including any the failing request names as stored)
/// were stored, the lines after them were not, and the error is returned. Submitting the same
/// lines again is safe: a transaction's ID is the hash of its payload and is stored once.
struct LineSubmitter<'a> {
    client: &'a AdminClient,
    register: &'a str,
    max_lines: usize,
    max_bytes: usize,
    json: bool,
    printed: usize,
    /// How many of the submitted transactions the node held already.
    already_held: usize,
    /// Lines of the request that failed, none of which were stored (or only those it names).
    not_stored: usize,
}

impl<'a> LineSubmitter<'a> {
    fn new(client: &'a AdminClient, register: &'a str, json: bool) -> LineSubmitter<'a> {
        LineSubmitter {
            client,
            register,
            max_lines: LINES_PER_REQUEST,
            max_bytes: BYTES_PER_REQUEST,
            json,
            printed: 0,
            already_held: 0,
            not_stored: 0,
        }
    }

    /// The count for stderr: lines stored, held already, and not stored.
    fn summary(&self) -> String {
        let stored = self.printed - self.already_held.min(self.printed);
        let mut text = format!(
            "{} line(s) submitted: {stored} stored, {} held already (pending or sealed; not \
             stored again), {} not stored.",
            self.printed + self.not_stored,
            self.already_held,
            self.not_stored
        );
        if self.not_stored > 0 {
            text.push_str(" The lines after those were not sent.");
        }
        text
    }

    async fn run(&mut self, mut reader: Box<dyn BufRead>) -> Result<(), ClientError> {
        let mut batch: Vec<String> = Vec::new();
        let mut costs: Vec<usize> = Vec::new();
        let mut batch_bytes = 0;
        let mut buf = Vec::new();
        let mut line_number = 0u64;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| ClientError::BadRequest(format!("cannot read the input: {e}")))?;
            if read == 0 {
                break;
            }
            line_number += 1;
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            if buf.is_empty() {
                continue;
            }
            let line = String::from_utf8(std::mem::take(&mut buf)).map_err(|_| {
                ClientError::BadRequest(format!(
                    "--lines needs UTF-8 text input (line {line_number} is not)"
                ))
            })?;
            let cost = json_len(&line);
            if !batch.is_empty()
                && (batch.len() >= self.max_lines || batch_bytes + cost > self.max_bytes)
            {
                self.send(&batch, &costs).await?;
                batch.clear();
                costs.clear();
                batch_bytes = 0;
            }
            batch_bytes += cost;
            batch.push(line);
            costs.push(cost);
        }
        if !batch.is_empty() {
            self.send(&batch, &costs).await?;
        }
        Ok(())
    }

    /// Sends `lines` in as many requests as the current limits need.
    async fn send(&mut self, lines: &[String], costs: &[usize]) -> Result<(), ClientError> {
        let mut start = 0;
        while start < lines.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < lines.len()
                && end - start < self.max_lines
                && (end == start || bytes + costs[end] <= self.max_bytes)
            {
                bytes += costs[end];
                end += 1;
            }
            match self
                .client
                .submit_batch_of(self.register, &lines[start..end])
                .await
            {
                Ok(done) => {
                    self.already_held += done.already_held;
                    self.print(&answers(done));
                    start = end;
                }
                Err(ClientError::Server { status: 413, .. }) if end - start > 1 => {
                    self.max_lines = (end - start) / 2;
                    self.max_bytes = (bytes / 2).max(1);
                }
                Err(ClientError::PartlyStored { stored, message }) => {
                    self.not_stored += (end - start).saturating_sub(stored.len());
                    let answers: Vec<SubmitResponse> =
                        stored.iter().map(|id| bare(self.register, id)).collect();
                    self.print(&answers);
                    return Err(ClientError::PartlyStored { stored, message });
                }
                Err(e) => {
                    self.not_stored += end - start;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Prints the answers as they come: one ID per line, or (JSON Lines) one compact object
    /// per line, as a single submit answers.
    fn print(&mut self, answers: &[SubmitResponse]) {
        for answer in answers {
            if self.json {
                match serde_json::to_string(answer) {
                    Ok(line) => write_stdout(format!("{}\n", json_escape_rest(&line)).as_bytes()),
                    Err(e) => eprint_text(&format!("error: cannot encode JSON: {e}")),
                }
            } else {
                write_stdout(format!("{}\n", escape_control(&answer.transaction_id)).as_bytes());
            }
            self.printed += 1;
        }
    }
}

/// A batch's answer, one per transaction (from a node too old to say more, the IDs alone).
fn answers(done: BatchSubmitResponse) -> Vec<SubmitResponse> {
    if done.transactions.len() == done.transaction_ids.len() {
        return done.transactions;
    }
    let register = done.register_id;
    done.transaction_ids
        .iter()
        .map(|id| bare(&register, id))
        .collect()
}

/// What is known of a transaction stored by a request that then failed: its ID, stored.
fn bare(register: &str, id: &str) -> SubmitResponse {
    SubmitResponse {
        transaction_id: id.to_string(),
        register_id: register.to_string(),
        state: "pending".into(),
        already_held: false,
        version: None,
        docket_number: None,
    }
}

/// An upper bound of the bytes `line` takes as a JSON string in a batch (quotes, escapes and
/// the separating comma included).
fn json_len(line: &str) -> usize {
    line.bytes()
        .map(|b| match b {
            b'"' | b'\\' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
        + 3
}
