//! Showing text that came from elsewhere (peers, operators, the disk) on a terminal: every
//! control character and bidirectional override is written as an escape, so such text cannot
//! move the cursor, clear the screen, retitle the window, conceal or reorder what is shown, or
//! forge extra lines. Used by the CLI's output and by the node's log lines alike.

use std::borrow::Cow;

/// Whether `c` is shown escaped: C0 and C1 control characters (ESC, CSI, CR, LF, BEL, …),
/// DEL, and the bidirectional embeddings, overrides and isolates that can reorder a line.
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character that [`needs_escape`] written as a Rust-style escape such as
/// `\u{1b}`; other text is returned as is.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_control;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("plain text: ok"), "plain text: ok");
        assert_eq!(escape_control("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(
            escape_control("a\r\nb\tc\u{7f}"),
            "a\\u{d}\\u{a}b\\u{9}c\\u{7f}"
        );
        assert_eq!(escape_control("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape_control("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape_control("ünïcödé ✓"), "ünïcödé ✓");
        let escaped = escape_control("\u{1b}]0;pwned\u{7}");
        assert!(!escaped.chars().any(|c| c.is_control()), "{escaped}");
    }
}
