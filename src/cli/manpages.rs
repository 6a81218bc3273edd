//! Man pages, generated from the clap definitions (clap_mangen renders the synopsis, options
//! and subcommands) plus the sections clap knows nothing about: ENVIRONMENT (every
//! `SORCHA_PEER_*` variable, from the key declarations and the CLI's own options), FILES,
//! EXIT STATUS, EXAMPLES and SEE ALSO. The roff is then tidied until `mandoc -T lint` has
//! nothing to say (a test checks), and the committed copies in `man/` are drift-tested.

use std::path::Path;

use clap::CommandFactory;
use clap_mangen::Man;

use super::{
    Cli, EXIT_AUTH, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_REMOTE_UNREACHABLE,
    EXIT_UNREACHABLE, EXIT_USAGE,
};
use crate::config::{ENV_PREFIX, KEYS};
use crate::identity::{ADMIN_TOKEN_FILE, ADMIN_URL_FILE, NODE_KEY_FILE};
use crate::lockfile::LOCK_FILE;

use super::man_examples::EXAMPLES;

const BIN: &str = "sorcha-peer";
/// The date the pages carry: that of the last change to what they say. Bump it with a
/// release (a date taken from the clock would make the committed pages stale every day).
const MAN_DATE: &str = "2026-11-22";
/// Longest input line `mandoc -T lint` accepts without a style note.
const MAX_LINE: usize = 80;

/// The pages: (file name, roff), the command's first, then every visible subcommand's.
pub(crate) fn man_pages() -> Vec<(String, String)> {
    let mut root = Cli::command()
        .version(crate::VERSION)
        .disable_help_subcommand(true);
    root.build();
    let mut commands = Vec::new();
    collect(&root, &mut commands);
    let client_vars = super::cli_env_vars();
    let names: Vec<String> = commands.iter().map(page_name).collect();
    commands
        .iter()
        .map(|cmd| {
            let name = page_name(cmd);
            let roff = render(cmd, &name, &names, &client_vars);
            (format!("{name}.1"), roff)
        })
        .collect()
}

/// Writes every page into `dir`.
pub(crate) fn write_man_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (file, roff) in man_pages() {
        std::fs::write(dir.join(file), roff)?;
    }
    Ok(())
}

/// The names of the pages that carry examples (for the test that keeps them real).
#[cfg(test)]
pub(crate) fn pages_with_examples() -> impl Iterator<Item = &'static str> {
    EXAMPLES.iter().map(|(page, _)| *page)
}

fn collect(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
    out.push(cmd.clone());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, out);
    }
}

fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or(cmd.get_name()).to_string()
}

fn render(cmd: &clap::Command, name: &str, all: &[String], client_vars: &[String]) -> String {
    let man = Man::new(cmd.clone())
        .title(name.to_ascii_uppercase())
        .date(MAN_DATE)
        .source(format!("{BIN} {}", crate::VERSION))
        .manual("sorcha-peer manual");
    let mut out: Vec<u8> = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(&mut out);
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        let _ = man.render_subcommands_section(&mut out);
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    let is_root = name == BIN;
    let is_serve = name == format!("{BIN}-serve");
    text.push_str(&environment(is_root || is_serve, !is_serve, client_vars));
    text.push_str(&files(is_serve || is_root));
    text.push_str(&exit_status(is_serve));
    text.push_str(&examples(name));
    text.push_str(&see_also(name, all));
    text.push_str(&format!(".SH VERSION\n{}\n", crate::VERSION));
    tidy(&text)
}

/// Text for a roff text line: backslashes and hyphens escaped, a leading `.` or `'` defused.
fn esc(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

fn entry(out: &mut String, tag: &str, body: &str) {
    out.push_str(".TP\n");
    out.push_str(&format!("\\fB{}\\fR\n", esc(tag)));
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str(&esc(line.trim()));
        out.push('\n');
    }
}

fn environment(keys: bool, client: bool, client_vars: &[String]) -> String {
    let mut out = String::from(".SH ENVIRONMENT\n");
    if client {
        for var in client_vars {
            let body = match var.as_str() {
                "SORCHA_PEER_NODE" => "Admin API of the node to manage, as --node.",
                "SORCHA_PEER_TOKEN" => "Admin bearer token, as --token.",
                "SORCHA_PEER_DATA_DIR" => {
                    "Node data directory, as --data-dir (also the data_dir key of serve)."
                }
                _ => "As the option of the same name.",
            };
            entry(&mut out, var, body);
        }
        entry(
            &mut out,
            "NO_COLOR",
            "When set and not empty, output is never coloured.",
        );
    }
    entry(
        &mut out,
        "RUST_LOG",
        "Log filter (tracing EnvFilter directives); overrides the log_level key. \
         serve refuses to start when it does not parse.",
    );
    // RUST_LOG's entry precedes: a new paragraph, not more of its text.
    out.push_str(".PP\n");
    if keys {
        out.push_str(&esc(&format!(
            "serve reads every configuration key from {ENV_PREFIX}<KEY> (the key in upper case); \
             precedence: defaults < the --config file < these variables < serve flags. \
             Lists are comma-separated. A {ENV_PREFIX}* variable that no key or option reads \
             stops serve with exit status {EXIT_USAGE}."
        )));
        out.push('\n');
        for def in KEYS {
            let var = format!("{ENV_PREFIX}{}", def.name.to_ascii_uppercase());
            let default = def
                .default
                .map(|d| format!("\nDefault: {d}."))
                .unwrap_or_default();
            entry(&mut out, &var, &format!("{}{default}", def.help));
        }
    } else {
        out.push_str(&esc(&format!(
            "serve reads its configuration from {ENV_PREFIX}<KEY> variables: see {BIN}-serve(1)."
        )));
        out.push('\n');
    }
    out
}

fn files(node: bool) -> String {
    let mut out = String::from(".SH FILES\n");
    out.push_str(&esc(
        "In the data directory (--data-dir, data_dir; default: the per-user data directory, \
         e.g. ~/.local/share/sorcha-peer):",
    ));
    out.push('\n');
    entry(
        &mut out,
        NODE_KEY_FILE,
        "The node's Ed25519 key (mode 0600), created on first start; the peer ID derives from it.",
    );
    entry(
        &mut out,
        ADMIN_TOKEN_FILE,
        "The admin bearer token (mode 0600), created on first start; \
         the CLI on the same host reads it.",
    );
    entry(
        &mut out,
        ADMIN_URL_FILE,
        "The admin API address of the running node; the CLI reads it to find the node.",
    );
    if node {
        entry(
            &mut out,
            "sorcha-peer.db",
            "The SQLite database (with its -wal and -shm files) when no database_url is given.",
        );
        entry(
            &mut out,
            LOCK_FILE,
            "Held while a node runs: a second node on the same data directory is refused.",
        );
        entry(
            &mut out,
            "sorcha-peer.toml",
            "A configuration file, read only when given with serve --config; \
             sorcha-peer config default prints one with every key.",
        );
    }
    out
}

fn exit_status(serve: bool) -> String {
    let mut out = String::from(".SH EXIT STATUS\n");
    let codes: Vec<(i32, &str)> = if serve {
        vec![
            (EXIT_OK, "The node stopped cleanly (SIGINT or SIGTERM)."),
            (
                EXIT_FAILED,
                "The node could not start: a listener could not bind, the data directory is \
                 locked by another node, the store cannot be opened.",
            ),
            (
                EXIT_USAGE,
                "Usage error: bad arguments, a bad configuration value (the message names the \
                 key), an unknown SORCHA_PEER_* variable, an invalid log filter.",
            ),
        ]
    } else {
        vec![
            (EXIT_OK, "Success."),
            (
                EXIT_FAILED,
                "The operation failed, or the checked condition does not hold \
                 (e.g. lag above --max-lag).",
            ),
            (EXIT_USAGE, "Usage error: bad arguments or configuration."),
            (
                EXIT_UNREACHABLE,
                "The admin API did not answer (node unreachable).",
            ),
            (EXIT_AUTH, "The node refused the admin token."),
            (
                EXIT_NOT_FOUND,
                "Not found (e.g. no peer matches the ID prefix).",
            ),
            (
                EXIT_REMOTE_UNREACHABLE,
                "The node answered, but could not reach the other node it was asked to \
                 contact (peers connect, lag --against).",
            ),
        ]
    };
    for (code, meaning) in codes {
        entry(&mut out, &code.to_string(), meaning);
    }
    out
}

fn examples(name: &str) -> String {
    let Some((_, list)) = EXAMPLES.iter().find(|(page, _)| *page == name) else {
        return String::new();
    };
    let mut out = String::from(".SH EXAMPLES\n");
    for (i, (what, command)) in list.iter().enumerate() {
        if !what.is_empty() {
            if i > 0 {
                out.push_str(".PP\n");
            }
            out.push_str(&esc(what));
            out.push('\n');
        }
        if i > 0 || !what.is_empty() {
            out.push_str(".PP\n");
        }
        out.push_str(".RS 4\n.EX\n");
        out.push_str(&esc(command));
        out.push_str("\n.EE\n.RE\n");
    }
    out
}

fn see_also(name: &str, all: &[String]) -> String {
    let related: Vec<&String> = if name == BIN {
        all.iter().filter(|n| n.as_str() != BIN).collect()
    } else {
        // The main page, the parent's and the siblings'.
        let parent = name.rsplit_once('-').map(|(p, _)| p).unwrap_or(BIN);
        all.iter()
            .filter(|n| n.as_str() != name)
            .filter(|n| {
                n.as_str() == BIN
                    || n.as_str() == parent
                    || n.rsplit_once('-').is_some_and(|(p, _)| p == parent)
            })
            .collect()
    };
    if related.is_empty() {
        return String::new();
    }
    let refs: Vec<String> = related
        .iter()
        .map(|n| format!(".BR {} (1)", n.replace('-', "\\-")))
        .collect();
    let mut out = String::from(".SH SEE ALSO\n");
    // Commas between the references, none after the last.
    for (i, r) in refs.iter().enumerate() {
        out.push_str(r);
        if i + 1 < refs.len() {
            out.push_str(" ,");
        }
        out.push('\n');
    }
    out
}

/// Makes clap_mangen's roff lint-clean: one string preamble, `.sp` for its `.br`/blank/`.br`
/// runs, no trailing whitespace, and text lines within [`MAX_LINE`] bytes (broken at spaces,
/// which roff fills back together).
fn tidy(roff: &str) -> String {
    let roff = roff.replace(".br\n\n.br\n", ".sp\n");
    let mut out = String::with_capacity(roff.len());
    let mut preamble_seen = false;
    for line in roff.lines() {
        let line = line.trim_end();
        if line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq") {
            if preamble_seen && line.starts_with(".ie") {
                continue;
            }
            if line.starts_with(".el") {
                if preamble_seen {
                    continue;
                }
                preamble_seen = true;
            }
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if line.is_empty() {
            // A blank line is a paragraph break in roff; say so explicitly.
            out.push_str(".sp\n");
            continue;
        }
        if line.starts_with('.') || line.starts_with('\'') || line.len() <= MAX_LINE {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        for piece in wrap(line) {
            out.push_str(&piece);
            out.push('\n');
        }
    }
    out
}

/// Breaks a text line at unescaped spaces into lines of at most [`MAX_LINE`] bytes (a word
/// longer than that stays whole); a piece that would start like a request is defused.
fn wrap(line: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            current.push(c);
            if let Some(next) = chars.next() {
                current.push(next);
            }
        } else if c == ' ' {
            words.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    words.push(current);
    let mut pieces: Vec<String> = Vec::new();
    let mut piece = String::new();
    for word in words.into_iter().filter(|w| !w.is_empty()) {
        if !piece.is_empty() && piece.len() + 1 + word.len() > MAX_LINE {
            pieces.push(std::mem::take(&mut piece));
        }
        if !piece.is_empty() {
            piece.push(' ');
        }
        piece.push_str(&word);
    }
    if !piece.is_empty() {
        pieces.push(piece);
    }
    pieces
        .into_iter()
        .map(|p| {
            if p.starts_with('.') || p.starts_with('\'') {
                format!("\\&{p}")
            } else {
                p
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_lines_wrap_at_unescaped_spaces() {
        let line = format!(
            "{} .starts\\ like a request {}",
            "word ".repeat(15),
            "x".repeat(90)
        );
        let pieces = wrap(&line);
        assert!(
            pieces
                .iter()
                .all(|p| p.len() <= MAX_LINE || !p.contains(' ')),
            "{pieces:?}"
        );
        assert!(pieces.iter().all(|p| !p.starts_with('.')), "{pieces:?}");
        assert_eq!(
            pieces.join(" ").replace("\\&", ""),
            line.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        assert!(
            pieces.iter().any(|p| p.contains(".starts\\ like")),
            "escaped space kept"
        );
    }

    #[test]
    fn every_page_has_the_operator_sections_and_every_key_is_in_the_environment() {
        let pages = man_pages();
        for (file, roff) in &pages {
            for section in [
                ".SH ENVIRONMENT",
                ".SH FILES",
                ".SH EXIT STATUS",
                ".SH SEE ALSO",
            ] {
                assert!(roff.contains(section), "{file}: {section} missing");
            }
        }
        for page in ["sorcha-peer.1", "sorcha-peer-serve.1"] {
            let (_, roff) = pages.iter().find(|(f, _)| f == page).expect(page);
            for def in KEYS {
                let var =
                    format!("{ENV_PREFIX}{}", def.name.to_ascii_uppercase()).replace('-', "\\-");
                assert!(
                    roff.contains(&format!("\\fB{var}\\fR")),
                    "{page}: {var} missing"
                );
            }
            for file in [NODE_KEY_FILE, ADMIN_TOKEN_FILE, LOCK_FILE, "sorcha-peer.db"] {
                assert!(
                    roff.contains(&file.replace('-', "\\-")),
                    "{page}: {file} missing"
                );
            }
        }
        for (file, roff) in &pages {
            assert!(roff.contains(".SH EXAMPLES"), "{file}: EXAMPLES missing");
        }
        let names: Vec<String> = pages
            .iter()
            .map(|(f, _)| f.trim_end_matches(".1").to_string())
            .collect();
        for page in pages_with_examples() {
            assert!(
                names.iter().any(|n| n == page),
                "examples for a page that does not exist: {page}"
            );
        }
    }
}
