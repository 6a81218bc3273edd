//! Completion scripts and man pages, generated from the clap definitions. The committed copies
//! in `completions/` and `man/` are checked against these by a test (and rewritten by it when
//! `UPDATE_GENERATED=1`).

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

const BIN: &str = "sorcha-peer";

/// Shells with a committed completion script.
pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// Writes the completion script for `shell`.
pub fn completion(shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), BIN, out);
}

/// Writes every completion script into `dir`.
pub fn write_completions(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for shell in SHELLS {
        clap_complete::generate_to(shell, &mut Cli::command(), BIN, dir)?;
    }
    Ok(())
}

/// Writes a man page for the command and every subcommand into `dir`. The pages carry the
/// release version without the commit (which `--version` shows), so they stay the same from
/// one commit to the next.
pub fn write_man_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command().version(crate::VERSION), dir)
}
