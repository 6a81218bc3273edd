//! `sorcha-peer tx`: submit transactions (one, or one per input line in bounded requests) and
//! show a transaction's state.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use clap::Subcommand;

use super::EXIT_OK;
use super::output::{Details, NONE, Output, escape_control, relative, write_stdout};
use crate::admin::dto::SubmitResponse;
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
        /// Submit each non-empty input line as its own transaction; prints one ID per line.
        /// The input is read and sent as it comes, in requests of bounded size; if one fails,
        /// the IDs printed until then were stored and the lines after them were not
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

pub async fn run(
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
                submitter.finish();
                if submitter.already_held > 0 {
                    out.message(&format!(
                        "{} of the {} transactions were held already (pending or sealed); \
                         they were not stored again.",
                        submitter.already_held, submitter.printed
                    ));
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
        }
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
                    self.print(&done.transaction_ids);
                    start = end;
                }
                Err(ClientError::Server { status: 413, .. }) if end - start > 1 => {
                    self.max_lines = (end - start) / 2;
                    self.max_bytes = (bytes / 2).max(1);
                }
                Err(ClientError::PartlyStored { stored, message }) => {
                    self.print(&stored);
                    return Err(ClientError::PartlyStored { stored, message });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Prints IDs as they are stored: one per line, or as the elements of one JSON array.
    fn print(&mut self, ids: &[String]) {
        for id in ids {
            if self.json {
                // Laid out as `print_json` would: the array's lines end as the next one starts.
                let sep = if self.printed == 0 { "[" } else { "," };
                let quoted = serde_json::Value::from(id.as_str()).to_string();
                write_stdout(format!("{sep}\n  {}", escape_control(&quoted)).as_bytes());
            } else {
                write_stdout(format!("{}\n", escape_control(id)).as_bytes());
            }
            self.printed += 1;
        }
    }

    /// Closes the JSON array (also after a failure, so stdout stays one JSON document).
    fn finish(&self) {
        if self.json {
            write_stdout(if self.printed == 0 { b"[]\n" } else { b"\n]\n" });
        }
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
