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

/// `examples/sorcha-peer.toml` claims to show every key: each key once (set, or commented out
/// when it has no sensible example value), none that does not exist, and the keys it sets
/// resolve into a valid configuration.
#[test]
fn the_example_config_shows_every_key_and_is_valid() {
    let path = root().join("examples/sorcha-peer.toml");
    let text = std::fs::read_to_string(&path).expect("example config");
    let mut shown: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix("# ").unwrap_or(line);
            let (key, _) = line.split_once(" = ")?;
            key.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
                .then(|| key.to_string())
        })
        .collect();
    let count = shown.len();
    shown.sort();
    shown.dedup();
    assert_eq!(count, shown.len(), "a key is shown twice");
    let mut declared: Vec<String> = sorcha_peer::config::KEYS
        .iter()
        .map(|k| k.name.to_string())
        .collect();
    declared.sort();
    let missing: Vec<&String> = declared.iter().filter(|k| !shown.contains(k)).collect();
    let unknown: Vec<&String> = shown.iter().filter(|k| !declared.contains(k)).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "examples/sorcha-peer.toml: missing {missing:?}, not keys {unknown:?}"
    );
    let mut layers = sorcha_peer::config::Layers::default();
    layers.add_file(&path).expect("the example parses");
    layers
        .resolve()
        .expect("the example is a valid configuration");
}

/// The directory holding the `sorcha-peer` binary built for these tests.
fn binary_dir() -> PathBuf {
    assert_cmd::cargo::cargo_bin("sorcha-peer")
        .parent()
        .expect("binary directory")
        .to_path_buf()
}

/// `examples/local-cluster.sh` with the built binary first on PATH: it uses that binary (no
/// cargo build), walks the tour to the end and removes what it created.
#[test]
fn the_local_cluster_script_walks_the_tour_with_the_binary_on_path() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![binary_dir()];
    dirs.extend(std::env::split_paths(&path));
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("examples/local-cluster.sh"))
        .env("PATH", std::env::join_paths(dirs).expect("PATH"))
        .env("TMPDIR", tmp.path())
        .env_remove("KEEP");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SORCHA_PEER_") {
            cmd.env_remove(name);
        }
    }
    let (code, out, err) = tools::run_bounded(cmd, b"", Duration::from_secs(180));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let binary = assert_cmd::cargo::cargo_bin("sorcha-peer");
    assert!(
        out.starts_with(&format!("## using {}", binary.display())),
        "the binary on PATH is used: {out}"
    );
    assert!(!err.contains("cargo"), "nothing was built: {err}");
    for step in [
        "sorcha-peer --data-dir <B> status",
        "peers get ",
        "peers ban ",
        "peers unban ",
        "registers create orders --public",
        "registers subscribe orders --mode full-replica --wait",
        "State:           sealed",
        "lag --against ",
        "## done",
    ] {
        assert!(out.contains(step), "{step} missing from the tour:\n{out}");
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("tmp")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "the script cleans up: {left:?}");
}

/// The systemd unit in `examples/` passes `systemd-analyze verify` without a message (its
/// binary path pointed at the built binary, since verify checks that it exists).
#[test]
fn the_systemd_unit_verifies() {
    let test = "the_systemd_unit_verifies";
    let Some(analyze) = tools::require(test, "systemd-analyze") else {
        return;
    };
    let unit = std::fs::read_to_string(root().join("examples/sorcha-peer.service"))
        .expect("examples/sorcha-peer.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/sorcha-peer serve"),
        "{unit}"
    );
    let binary = assert_cmd::cargo::cargo_bin("sorcha-peer");
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("sorcha-peer.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/sorcha-peer", &binary.to_string_lossy()),
    )
    .expect("write unit");
    let mut cmd = Command::new(analyze);
    // The man pages it names are not installed where the tests run.
    cmd.args(["verify", "--man=no"]).arg(&copy);
    let (code, out, err) = tools::run_bounded(cmd, b"", Duration::from_secs(60));
    assert!(
        code == 0 && out.trim().is_empty() && err.trim().is_empty(),
        "systemd-analyze verify (exit {code}):\n{out}{err}"
    );
}

/// Every `.rs` file under `dir`, relative to the project root.
fn rust_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root()).expect("under the root");
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

/// ARCHITECTURE.md stays true to the tree: every `*.rs` it names exists, and every source file
/// is named (a directory's `mod.rs` by the directory).
#[test]
fn the_architecture_names_every_source_file_and_nothing_that_is_gone() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "fuzz/src", "fuzz/fuzz_targets"] {
        rust_files(&root().join(dir), &mut files);
    }
    files.push("build.rs".into());
    let named: Vec<&str> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.split("::").next().unwrap_or(span))
        .filter(|span| span.ends_with(".rs") && !span.contains([' ', '*']))
        .collect();
    let gone: Vec<&&str> = named
        .iter()
        .filter(|n| {
            !files
                .iter()
                .any(|f| f == *n || f.ends_with(&format!("/{n}")))
        })
        .collect();
    assert!(
        gone.is_empty(),
        "ARCHITECTURE.md names files that do not exist: {gone:?}"
    );
    let unnamed: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with("src/"))
        .filter(|f| {
            let rel = &f["src/".len()..];
            match rel.strip_suffix("mod.rs") {
                Some(dir) => {
                    let last = dir.trim_end_matches('/').rsplit('/').next().unwrap_or(dir);
                    !text.contains(&format!("`{dir}")) && !text.contains(&format!("`{last}/"))
                }
                None => {
                    let base = rel.rsplit('/').next().unwrap_or(rel);
                    !text.contains(&format!("`{base}"))
                        && !text.contains(&format!("`{rel}"))
                        && !text.contains(&format!("/{base}`"))
                }
            }
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "ARCHITECTURE.md does not name these source files: {unnamed:?}"
    );
}
