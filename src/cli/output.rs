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

/// Columns are separated by this many spaces.
const GAP: usize = 2;
/// A wrapping column is never made narrower than this.
const MIN_WRAP_WIDTH: usize = 8;

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

/// A colour for a cell (shown only when colour is on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Green,
    Yellow,
    Red,
    DarkGrey,
}

impl Color {
    fn ansi(self) -> &'static str {
        match self {
            Color::Green => "\x1b[32m",
            Color::Yellow => "\x1b[33m",
            Color::Red => "\x1b[31m",
            Color::DarkGrey => "\x1b[90m",
        }
    }
}

/// One table cell: text with control characters escaped, and an optional colour.
#[derive(Clone, Debug)]
pub struct Cell {
    text: String,
    color: Option<Color>,
}

impl Cell {
    pub fn fg(mut self, color: Color) -> Cell {
        self.color = Some(color);
        self
    }
}

/// A table cell showing `text` with control characters escaped; empty text shows as
/// [`NONE`]. Every cell of every table is made here.
pub fn cell(text: impl std::fmt::Display) -> Cell {
    let text = text.to_string();
    Cell {
        text: if text.is_empty() {
            NONE.to_string()
        } else {
            escape_control(&text).into_owned()
        },
        color: None,
    }
}

/// A cell for an optional value: [`NONE`] when absent.
pub fn cell_or_none(text: Option<impl std::fmt::Display>) -> Cell {
    match text {
        Some(t) => cell(t),
        None => cell(NONE),
    }
}

/// A table column: its header, whether its text may wrap, whether it shows only with
/// `-o wide`.
#[derive(Clone, Debug)]
pub struct Column {
    header: &'static str,
    wrap: bool,
    wide_only: bool,
}

/// A column whose cells are never broken (IDs, addresses, states, numbers, times).
pub fn col(header: &'static str) -> Column {
    Column {
        header,
        wrap: false,
        wide_only: false,
    }
}

impl Column {
    /// Free text: may wrap at spaces to fit the width.
    pub fn wrap(mut self) -> Column {
        self.wrap = true;
        self
    }

    /// Shown only with `-o wide`.
    pub fn wide(mut self) -> Column {
        self.wide_only = true;
        self
    }
}

/// Rows under columns, rendered by [`Output::print_table`].
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

type Lines = (Vec<String>, Option<Color>);

impl Table {
    /// Adds a row: one cell per column, in order (wide-only columns included).
    pub fn add_row(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }

    /// The table as text: one line per row (more where free text wraps), no trailing spaces.
    pub fn render(&self, wide: bool, headers: bool, limit: Option<usize>, color: bool) -> String {
        let shown: Vec<usize> = (0..self.columns.len())
            .filter(|&i| wide || !self.columns[i].wide_only)
            .collect();
        let content: Vec<usize> = shown
            .iter()
            .map(|&i| {
                self.rows
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| width_of(&c.text)))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut widths: Vec<usize> = shown
            .iter()
            .zip(&content)
            .map(|(&i, &c)| {
                if headers {
                    c.max(width_of(self.columns[i].header))
                } else {
                    c
                }
            })
            .collect();
        if let Some(limit) = limit {
            let total = |w: &[usize]| w.iter().sum::<usize>() + GAP * w.len().saturating_sub(1);
            // First let headers wider than their data wrap onto more lines, those with the
            // most to give first...
            if headers {
                let mut order: Vec<usize> = (0..shown.len()).collect();
                order.sort_by_key(|&k| std::cmp::Reverse(widths[k].saturating_sub(content[k])));
                for k in order {
                    if total(&widths) <= limit {
                        break;
                    }
                    let longest_word = self.columns[shown[k]]
                        .header
                        .split(' ')
                        .map(width_of)
                        .max()
                        .unwrap_or(0);
                    let floor = content[k].max(longest_word);
                    let excess = total(&widths) - limit;
                    widths[k] = widths[k].saturating_sub(excess).max(floor);
                }
            }
            // ...then narrow free-text columns, widest first.
            while total(&widths) > limit {
                let Some(k) = (0..shown.len())
                    .filter(|&k| self.columns[shown[k]].wrap && widths[k] > MIN_WRAP_WIDTH)
                    .max_by_key(|&k| widths[k])
                else {
                    break;
                };
                widths[k] -= 1;
            }
        }
        let mut out = String::new();
        if headers {
            let cells: Vec<Lines> = shown
                .iter()
                .zip(&widths)
                .map(|(&i, &w)| (wrap_text(self.columns[i].header, w, false), None))
                .collect();
            push_lines(&mut out, &cells, &widths, color, true);
        }
        for row in &self.rows {
            let cells: Vec<Lines> = shown
                .iter()
                .zip(&widths)
                .map(|(&i, &w)| {
                    let c = row.get(i);
                    let text = c.map_or("", |c| c.text.as_str());
                    let lines = if self.columns[i].wrap {
                        wrap_text(text, w, true)
                    } else {
                        vec![text.to_string()]
                    };
                    (lines, c.and_then(|c| c.color))
                })
                .collect();
            push_lines(&mut out, &cells, &widths, color, false);
        }
        out
    }
}

/// Appends one row (several lines when a cell wraps), columns padded to `widths`.
fn push_lines(out: &mut String, cells: &[Lines], widths: &[usize], color: bool, bold: bool) {
    let height = cells.iter().map(|(l, _)| l.len()).max().unwrap_or(1).max(1);
    for line in 0..height {
        let mut text = String::new();
        for (k, (lines, fg)) in cells.iter().enumerate() {
            let part = lines.get(line).map_or("", String::as_str);
            if k > 0 {
                text.push_str(&" ".repeat(GAP));
            }
            match (color && !part.is_empty(), bold, fg) {
                (true, true, _) => text.push_str(&format!("\x1b[1m{part}\x1b[0m")),
                (true, false, Some(c)) => text.push_str(&format!("{}{part}\x1b[0m", c.ansi())),
                _ => text.push_str(part),
            }
            if k + 1 < cells.len() {
                text.push_str(&" ".repeat(widths[k].saturating_sub(width_of(part))));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
}

/// Display width of text (one column per character; the text is escaped already).
fn width_of(text: &str) -> usize {
    text.chars().count()
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

/// Splits `text` into lines of at most `width` characters at spaces. A word longer than the
/// width is cut when `break_words` (free text), else left whole on its own line.
fn wrap_text(text: &str, width: usize, break_words: bool) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let mut word: Vec<char> = word.chars().collect();
        if !line.is_empty() && width_of(&line) + 1 + word.len() <= width {
            line.push(' ');
            line.extend(word.iter());
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        while break_words && word.len() > width {
            lines.push(word.drain(..width).collect());
        }
        line.extend(word.iter());
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
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
