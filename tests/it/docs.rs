//! The documentation artefacts operators use: man pages clean under `mandoc -T lint`, the
//! example configuration true to the key declarations, the local-cluster script and the
//! systemd unit working.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::tools;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn man_pages_are_clean_under_mandoc_lint() {
    let Some(mandoc) = tools::require("man_pages_are_clean_under_mandoc_lint", "mandoc") else {
        return;
    };
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("man"))
        .expect("man/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
        .collect();
    pages.sort();
    assert!(pages.len() >= 10, "man pages: {pages:?}");
    let mut cmd = Command::new(mandoc);
    // Style notes count too: lint-clean means no message at all.
    cmd.args(["-T", "lint", "-W", "style"]).args(&pages);
    let (code, out, err) = tools::run_bounded(cmd, b"", Duration::from_secs(30));
    assert!(
        code == 0 && out.is_empty() && err.is_empty(),
        "mandoc -T lint (exit {code}):\n{out}{err}"
    );
}
