//! Rendering for the client commands: tables (comfy-table) for people, one JSON document for
//! scripts, messages and errors on stderr. Colour only on a terminal, never with --no-color or
//! NO_COLOR.

use std::io::IsTerminal;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ContentArrangement, Table};
use serde::Serialize;

use super::{GlobalArgs, OutputFormat};

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
            Ok(text) => println!("{text}"),
            Err(e) => self.error(&format!("cannot encode JSON: {e}")),
        }
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
        let cell = Cell::new(state);
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
            eprintln!("{text}");
        }
    }

    pub fn error(&self, text: &str) {
        eprintln!("error: {text}");
    }
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

/// The first characters of a peer ID: enough to be unique in practice and accepted back as a
/// prefix by every command.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
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
}
