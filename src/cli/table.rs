//! Plain tables for people (columns separated by spaces, no box drawing, as kubectl prints
//! them): fitted to a width, IDs, addresses, numbers and times never broken, free text wrapped
//! at spaces. [`super::output`] decides the width and whether there is colour.

use super::output::NONE;
use crate::text::escape_control;

/// Columns are separated by this many spaces.
pub(super) const GAP: usize = 2;
/// A wrapping column is never made narrower than this.
pub(super) const MIN_WRAP_WIDTH: usize = 8;

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

/// A table column: its header (and a one-word one for tables fitted to a width), whether its
/// text may wrap, whether it shows only with `-o wide`.
#[derive(Clone, Debug)]
pub struct Column {
    header: &'static str,
    short: Option<&'static str>,
    wrap: bool,
    wide_only: bool,
}

/// A column whose cells are never broken (IDs, addresses, states, numbers, times).
pub fn col(header: &'static str) -> Column {
    Column {
        header,
        short: None,
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

    /// The header without `-o wide`, so that headers do not stack at 80 columns (`-o wide`
    /// keeps the full one).
    pub fn short(mut self, header: &'static str) -> Column {
        self.short = Some(header);
        self
    }

    fn header(&self, wide: bool) -> &'static str {
        match self.short {
            Some(short) if !wide => short,
            _ => self.header,
        }
    }
}

/// Rows under columns, rendered by [`Output::print_table`].
#[derive(Clone, Debug)]
pub struct Table {
    pub(super) columns: Vec<Column>,
    pub(super) rows: Vec<Vec<Cell>>,
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
                    c.max(width_of(self.columns[i].header(wide)))
                } else {
                    c
                }
            })
            .collect();
        if let Some(limit) = limit {
            self.fit(&shown, &content, &mut widths, wide, headers, limit);
        }
        let mut out = String::new();
        if headers {
            let cells: Vec<Lines> = shown
                .iter()
                .zip(&widths)
                .map(|(&i, &w)| (wrap_text(self.columns[i].header(wide), w, false), None))
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

    /// Narrows `widths` (of the `shown` columns, whose data is `content` wide) towards
    /// `limit` columns in all: headers wrap first, then free text; other data is never cut.
    fn fit(
        &self,
        shown: &[usize],
        content: &[usize],
        widths: &mut [usize],
        wide: bool,
        headers: bool,
        limit: usize,
    ) {
        let total = |w: &[usize]| w.iter().sum::<usize>() + GAP * w.len().saturating_sub(1);
        // First let headers wider than their data wrap onto more lines, those with the
        // most to give first...
        if headers {
            let mut order: Vec<usize> = (0..shown.len()).collect();
            order.sort_by_key(|&k| std::cmp::Reverse(widths[k].saturating_sub(content[k])));
            for k in order {
                if total(widths) <= limit {
                    break;
                }
                let longest_word = self.columns[shown[k]]
                    .header(wide)
                    .split(' ')
                    .map(width_of)
                    .max()
                    .unwrap_or(0);
                let floor = content[k].max(longest_word);
                let excess = total(widths) - limit;
                widths[k] = widths[k].saturating_sub(excess).max(floor);
            }
        }
        // ...then narrow free-text columns, widest first.
        while total(widths) > limit {
            let Some(k) = (0..shown.len())
                .filter(|&k| self.columns[shown[k]].wrap && widths[k] > MIN_WRAP_WIDTH)
                .max_by_key(|&k| widths[k])
            else {
                break;
            };
            widths[k] -= 1;
        }
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
pub(super) fn width_of(text: &str) -> usize {
    text.chars().count()
}

/// Splits `text` into lines of at most `width` characters at spaces. A word longer than the
/// width is cut when `break_words` (free text), else left whole on its own line.
pub(super) fn wrap_text(text: &str, width: usize, break_words: bool) -> Vec<String> {
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
