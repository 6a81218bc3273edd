//! Rendering for the client commands: tables (comfy-table) for people, one JSON document for
//! scripts, messages and errors on stderr. Colour only on a terminal, never with --no-color or
//! NO_COLOR.
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

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ContentArrangement, Table};
use serde::Serialize;

use super::{GlobalArgs, OutputFormat};
pub use crate::text::escape_control;
use crate::text::needs_escape;

pub struct Output {
    pub json: bool,
    pub quiet: bool,
    pub color: bool,
}

impl Output {
    pub fn new(global: &GlobalArgs) -> Output {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            json: global.output == OutputFormat::Json,
            quiet: global.quiet,
            color: !global.no_color && !no_color_env && std::io::stdout().is_terminal(),
        }
    }

    /// Prints `value` as one pretty JSON document on stdout.
    pub fn print_json<T: Serialize>(&self, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => write_stdout(format!("{}\n", json_escape_rest(&text)).as_bytes()),
            Err(e) => self.error(&format!("cannot encode JSON: {e}")),
        }
    }

    /// Prints a table built with [`Output::table`] and [`cell`] on stdout.
    pub fn print_table(&self, table: &Table) {
        write_stdout(format!("{table}\n").as_bytes());
    }

    /// Prints one value (an ID, a line of data) on its own line on stdout, escaped.
    pub fn print_value(&self, text: &str) {
        write_stdout(format!("{}\n", escape_control(text)).as_bytes());
    }

    /// A new table in the house style.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if !self.color {
            table.force_no_tty();
        }
        if !header.is_empty() {
            table.set_header(header.iter().map(|h| Cell::new(*h)));
        }
        table
    }

    /// A cell coloured by peer state (when colour is on).
    pub fn state_cell(&self, state: &str) -> Cell {
        let cell = cell(state);
        if !self.color {
            return cell;
        }
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

/// A table cell showing `text` with control characters escaped. Every cell of every table is
/// made here.
pub fn cell(text: impl std::fmt::Display) -> Cell {
    Cell::new(escape_control(&text.to_string()))
}

/// serde_json escapes C0 control characters in strings but passes DEL, C1 controls and the
/// bidirectional overrides through raw; this writes those as JSON `\uXXXX` escapes too. (They
/// can only occur inside strings, where such an escape means the same character; the
/// remaining C0 characters are the document's own newlines.)
fn json_escape_rest(json: &str) -> Cow<'_, str> {
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

/// Round-trip time for people: `0.21ms`, `12.3ms`, `250ms`, `-` when unmeasured.
pub fn latency(ms: Option<f64>) -> String {
    match ms {
        None => "-".to_string(),
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

    #[test]
    fn short_ids_never_split_a_character() {
        assert_eq!(super::short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(super::short_id("abc"), "abc");
        assert_eq!(super::short_id("ééééééééééééé"), "éééééééééééé");
    }
}
