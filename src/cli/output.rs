//! Rendering for the client commands: tables for people, one JSON document for scripts,
//! messages and errors on stderr. Colour only on a terminal, never with --no-color or NO_COLOR.
//!
//! Tables are plain (columns separated by spaces, no box drawing, as kubectl prints them) so
//! they survive pipes, `grep` and `awk`. They fit the width (`COLUMNS` when set, the
//! terminal's width on a terminal, no limit otherwise): columns holding IDs, addresses, states,
//! numbers and times are never broken; only free text (names, reasons, errors) wraps, at
//! spaces, and headers wider than their column's data wrap onto a second line. `-o wide` shows
//! every column, IDs in full, and never wraps. Column headers are the JSON field names in
//! upper case, words separated by spaces (`lastSeen` is `LAST SEEN`).
//!
//! Everything the CLI prints goes through here, which is where two rules live:
//! * Text that came from a node (addresses, names, versions and register IDs that peers
//!   announced, ban reasons, error messages) is shown with control characters escaped
//!   ([`escape_control`]), so it cannot move the cursor, retitle or otherwise rewrite the
//!   operator's terminal. JSON output is escaped by serde already.
//! * When stdout's reader has gone (`| head -1`), the command stops quietly with status 0, as a
//!   Unix filter does ([`write_stdout`]); a closed stderr is ignored.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

use serde::Serialize;

pub use super::table::{Cell, Color, Column, Table, cell, cell_or_none, col};
use super::table::{GAP, MIN_WRAP_WIDTH, width_of, wrap_text};
use super::{GlobalArgs, OutputFormat};
pub use crate::text::escape_control;
use crate::text::needs_escape;

pub struct Output {
    pub json: bool,
    /// `-o wide`: every column, IDs in full, nothing wrapped.
    pub wide: bool,
    pub quiet: bool,
    pub color: bool,
    /// False with `--no-headers`.
    pub headers: bool,
    /// Width tables must fit in; `None`: no limit (stdout is not a terminal and `COLUMNS` is
    /// not set).
    pub width: Option<usize>,
}

/// What a missing value (a peer without a name, a latency not measured yet) shows as, in
/// every table and view.
pub const NONE: &str = "-";

impl Output {
    pub fn new(global: &GlobalArgs) -> Output {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let tty = std::io::stdout().is_terminal();
        Output {
            json: global.output == OutputFormat::Json,
            wide: global.output == OutputFormat::Wide,
            quiet: global.quiet,
            color: !global.no_color && !no_color_env && tty,
            headers: !global.no_headers,
            width: table_width(tty),
        }
    }

    /// Prints `value` as one pretty JSON document on stdout.
    pub fn print_json<T: Serialize>(&self, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => write_stdout(format!("{}\n", json_escape_rest(&text)).as_bytes()),
            Err(e) => self.error(&format!("cannot encode JSON: {e}")),
        }
    }

    /// Prints a table on stdout, fitted to the width (not with `-o wide`).
    pub fn print_table(&self, table: &Table) {
        let limit = if self.wide { None } else { self.width };
        let text = table.render(self.wide, self.headers, limit, self.color);
        write_stdout(text.as_bytes());
    }

    /// Prints a detail view (`Key:  value` lines) on stdout.
    pub fn print_details(&self, details: &Details) {
        let limit = if self.wide { None } else { self.width };
        write_stdout(details.render(limit).as_bytes());
    }

    /// Prints one value (an ID, a line of data) on its own line on stdout, escaped.
    pub fn print_value(&self, text: &str) {
        write_stdout(format!("{}\n", escape_control(text)).as_bytes());
    }

    /// A new table with these columns.
    pub fn table(&self, columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// A peer ID or hash as a table shows it: its first characters, or all of it with
    /// `-o wide`.
    pub fn id<'a>(&self, id: &'a str) -> &'a str {
        if self.wide { id } else { short_id(id) }
    }

    /// A cell coloured by peer state (when colour is on).
    pub fn state_cell(&self, state: &str) -> Cell {
        let cell = cell(state);
        match state {
            "connected" => cell.fg(Color::Green),
            "connecting" => cell.fg(Color::Yellow),
            "banned" => cell.fg(Color::Red),
            _ => cell.fg(Color::DarkGrey),
        }
    }

    /// A confirmation for people, on stderr; silent with --quiet or JSON output.
    pub fn message(&self, text: &str) {
        if !self.quiet && !self.json {
            eprint_text(text);
        }
    }

    pub fn error(&self, text: &str) {
        eprint_text(&format!("error: {text}"));
    }
}

/// The width tables fit in: `COLUMNS` when it is set to a number, else the terminal's width
/// when stdout is one, else none.
fn table_width(tty: bool) -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
    {
        return Some(columns);
    }
    if tty {
        return console::Term::stdout()
            .size_checked()
            .map(|(_, cols)| usize::from(cols))
            .filter(|c| *c > 0);
    }
    None
}

/// Width messages are wrapped to (a terminal is at least this wide).
pub const MESSAGE_WIDTH: usize = 80;

/// `text` as an indented item of a message: the first line starts with `indent` spaces, the
/// lines it wraps onto (at spaces, within [`MESSAGE_WIDTH`]) with two more.
pub fn message_item(text: &str, indent: usize) -> String {
    let width = MESSAGE_WIDTH.saturating_sub(indent + 2);
    wrap_text(text, width, false)
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let pad = if i == 0 { indent } else { indent + 2 };
            format!("{}{line}", " ".repeat(pad))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A detail view: one `Key:  value` line per field, values aligned; a long value wraps at
/// spaces under itself (never inside a word).
#[derive(Clone, Debug, Default)]
pub struct Details {
    rows: Vec<(String, String)>,
}

impl Details {
    pub fn new() -> Details {
        Details::default()
    }

    /// Adds a field; the value is escaped, an empty one shows as [`NONE`].
    pub fn row(&mut self, key: &str, value: impl std::fmt::Display) {
        let value = value.to_string();
        let value = if value.is_empty() {
            NONE.to_string()
        } else {
            escape_control(&value).into_owned()
        };
        self.rows.push((key.to_string(), value));
    }

    pub fn render(&self, limit: Option<usize>) -> String {
        let indent = self
            .rows
            .iter()
            .map(|(k, _)| width_of(k) + 1)
            .max()
            .unwrap_or(0)
            + GAP;
        let mut out = String::new();
        for (key, value) in &self.rows {
            let lines = match limit {
                Some(limit) if limit > indent + MIN_WRAP_WIDTH => {
                    wrap_text(value, limit - indent, false)
                }
                _ => vec![value.clone()],
            };
            for (n, line) in lines.iter().enumerate() {
                let label = if n == 0 {
                    format!("{key}:")
                } else {
                    String::new()
                };
                let text = format!("{label:<indent$}{line}");
                out.push_str(text.trim_end());
                out.push('\n');
            }
        }
        out
    }
}

/// serde_json escapes C0 control characters in strings but passes DEL, C1 controls and the
/// bidirectional overrides through raw; this writes those as JSON `\uXXXX` escapes too. (They
/// can only occur inside strings, where such an escape means the same character; the
/// remaining C0 characters are the document's own newlines.)
pub fn json_escape_rest(json: &str) -> Cow<'_, str> {
    if !json
        .chars()
        .any(|c| needs_escape(c) && !c.is_ascii_whitespace())
    {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if needs_escape(c) && !c.is_ascii_whitespace() {
            // All of them are in the Basic Multilingual Plane: one escape each.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes a message for people to stderr, line by line with control characters escaped. A
/// closed or failing stderr is ignored: there is nowhere left to report it.
pub fn eprint_text(text: &str) {
    let mut shown = String::with_capacity(text.len() + 1);
    for line in text.split('\n') {
        shown.push_str(&escape_control(line));
        shown.push('\n');
    }
    let _ = std::io::stderr().lock().write_all(shown.as_bytes());
}

/// Writes data to stdout. When the reader has gone (a closed pipe, as after `| head -1`), no
/// more output can be shown and none is wanted: the process ends at once, quietly, with status
/// 0. Any other failure to write is reported on stderr and ends it with status 1.
pub fn write_stdout(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let result = stdout.write_all(bytes).and_then(|_| stdout.flush());
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit(super::EXIT_OK),
        Err(e) => {
            eprint_text(&format!("error: cannot write to stdout: {e}"));
            exit(super::EXIT_FAILED);
        }
    }
}

/// Ends the process with `code` once the queued log lines are out.
fn exit(code: i32) -> ! {
    crate::telemetry::flush_logs();
    std::process::exit(code)
}

/// Round-trip time for people: `0.21ms`, `12.3ms`, `250ms`, [`NONE`] when unmeasured.
pub fn latency(ms: Option<f64>) -> String {
    match ms {
        None => NONE.to_string(),
        Some(ms) if ms < 10.0 => format!("{ms:.2}ms"),
        Some(ms) if ms < 100.0 => format!("{ms:.1}ms"),
        Some(ms) => format!("{ms:.0}ms"),
    }
}

/// An RFC 3339 time from the API as "3m ago" / "in 23h" (the raw text if it does not parse).
pub fn relative(rfc3339: &str) -> String {
    match crate::clock::from_rfc3339(rfc3339) {
        Some(ms) => crate::clock::relative(ms, crate::clock::now_ms()),
        None => rfc3339.to_string(),
    }
}

/// The first characters of a peer ID (or hash): enough to be unique in practice and accepted
/// back as a prefix by every command.
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn latency_is_readable() {
        assert_eq!(super::latency(Some(0.2134)), "0.21ms");
        assert_eq!(super::latency(Some(12.34)), "12.3ms");
        assert_eq!(super::latency(Some(250.4)), "250ms");
        assert_eq!(super::latency(None), "-");
    }

    #[test]
    fn json_output_escapes_what_serde_leaves_raw() {
        let value = serde_json::json!({ "reason": "a\u{1b}b\u{9b}c\u{202e}d\u{7f}é" });
        let text = serde_json::to_string_pretty(&value).expect("json");
        let safe = super::json_escape_rest(&text);
        assert!(!safe.chars().any(|c| c.is_control() && c != '\n'), "{safe}");
        assert!(!safe.contains('\u{202e}'), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, value);
    }

    fn sample() -> super::Table {
        use super::{cell, col};
        let mut t = super::Table {
            columns: vec![
                col("PEER ID"),
                col("NAME").wrap(),
                col("ADDRESS"),
                col("LATEST DOCKET VERSION"),
                col("FAILURE COUNT").wide(),
            ],
            rows: Vec::new(),
        };
        t.add_row(vec![
            cell("0123456789ab"),
            cell("a rather long node name for a table"),
            cell("127.0.13.201:43123"),
            cell(7),
            cell(0),
        ]);
        t.add_row(vec![
            cell("ffff"),
            cell(""),
            cell("[::1]:5000"),
            cell(12),
            cell(3),
        ]);
        t
    }

    #[test]
    fn tables_fit_the_width_without_breaking_ids_or_addresses() {
        let text = sample().render(false, true, Some(52), false);
        for line in text.lines() {
            assert!(line.chars().count() <= 52, "{line:?} in\n{text}");
            assert_eq!(line, line.trim_end());
        }
        assert!(text.contains("127.0.13.201:43123"), "{text}");
        assert!(text.contains("0123456789ab"), "{text}");
        assert!(text.contains("a rather"), "{text}");
        assert!(!text.contains("FAILURE"), "wide-only column shown:\n{text}");
        // A missing name shows as the one placeholder.
        assert!(
            text.lines()
                .any(|l| l.starts_with("ffff") && l.contains(" - ")),
            "{text}"
        );
        assert!(!text.contains('│') && !text.contains('─'), "{text}");
    }

    #[test]
    fn wide_shows_everything_on_one_line_per_row() {
        let text = sample().render(true, true, None, false);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("FAILURE COUNT") && text.contains("a rather long node name"));
        let bare = sample().render(true, false, None, false);
        assert_eq!(bare.lines().count(), 2, "--no-headers: {bare}");
        assert!(bare.starts_with("0123456789ab"), "{bare}");
    }

    #[test]
    fn details_wrap_long_values_at_spaces() {
        let mut d = super::Details::new();
        d.row("Peer ID", "0123456789abcdef0123456789abcdef");
        d.row("Name", "");
        d.row(
            "Error",
            "no source could serve 'orders' (peer 0123456789abcdef0123456789abcdef: timed out)",
        );
        let text = d.render(Some(60));
        assert!(text.contains("Name:     -"), "{text}");
        assert!(text.contains("0123456789abcdef0123456789abcdef:"), "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 60, "{line:?}");
        }
    }

    #[test]
    fn short_ids_never_split_a_character() {
        assert_eq!(super::short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(super::short_id("abc"), "abc");
        assert_eq!(super::short_id("ééééééééééééé"), "éééééééééééé");
    }
}
