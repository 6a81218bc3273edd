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

/// ARCHITECTURE.md without its fenced blocks, cut into the units that give a relative path its
/// meaning: a table row, a list item or a paragraph (the `peers/` row names
/// `manager/connections.rs`, the fuzz paragraph `src/seeds.rs`).
fn architecture_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let trimmed = line.trim_start();
        let starts_new = line.trim().is_empty()
            || line.starts_with('|')
            || line.starts_with('#')
            || trimmed.starts_with("* ");
        if starts_new && !current.is_empty() {
            blocks.push(current.join(" "));
            current.clear();
        }
        if line.starts_with('|') {
            blocks.push(line.to_string());
        } else if !line.trim().is_empty() && !line.starts_with('#') {
            current.push(line);
        }
    }
    if !current.is_empty() {
        blocks.push(current.join(" "));
    }
    blocks
}

/// The spans of `block` written in backticks that look like paths: a name ending in `.rs`, or
/// a directory ending in `/` (an `::item` after a file is dropped).
fn path_spans(block: &str) -> Vec<&str> {
    block
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.split("::").next().unwrap_or(span))
        .filter(|span| span.ends_with(".rs") || span.ends_with('/'))
        .filter(|span| !span.contains([' ', '*', '{']))
        .collect()
}

/// Resolves the path spans of one block: first against the directories the block itself names
/// (its row's module, a file's folder), and a span with a `/` also from the repository root
/// and `src/`; a bare name left over is then tried at the root and in `src/`. Returns what
/// each found (files and directories) and the spans that exist nowhere.
fn resolve_block(block: &str) -> (Vec<PathBuf>, Vec<String>) {
    let mut found = Vec::new();
    let mut context: Vec<PathBuf> = Vec::new();
    let mut todo: Vec<&str> = path_spans(block);
    for fallback in [false, true] {
        let mut progress = true;
        while progress && !todo.is_empty() {
            progress = false;
            todo.retain(|span| {
                let mut candidates: Vec<PathBuf> = context.iter().map(|d| d.join(span)).collect();
                if fallback || span.contains('/') {
                    candidates.push(root().join(span));
                    candidates.push(root().join("src").join(span));
                }
                let Some(hit) = candidates.into_iter().find(|c| c.exists()) else {
                    return true;
                };
                let dir = if hit.is_dir() {
                    hit.clone()
                } else {
                    hit.parent().expect("a file has a folder").to_path_buf()
                };
                if dir != root() && dir != root().join("src") && !context.contains(&dir) {
                    context.push(dir);
                }
                found.push(hit);
                progress = true;
                false
            });
        }
    }
    (found, todo.into_iter().map(String::from).collect())
}

/// ARCHITECTURE.md stays true to the tree: every path it writes in backticks exists (read as
/// [`resolve_block`] says), and every source file is named that way (a directory's `mod.rs` by
/// the directory).
#[test]
fn the_architecture_names_every_source_file_and_nothing_that_is_gone() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut named: Vec<PathBuf> = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    for block in architecture_blocks(&text) {
        let (found, missing) = resolve_block(&block);
        named.extend(found.into_iter().map(|p| normalise(&p)));
        gone.extend(missing);
    }
    assert!(
        gone.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {gone:?}"
    );
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let unnamed: Vec<&String> = files
        .iter()
        .filter(|f| {
            let path = root().join(f);
            let by_dir = path.file_name().is_some_and(|n| n == "mod.rs")
                && path
                    .parent()
                    .is_some_and(|d| named.contains(&d.to_path_buf()));
            !named.contains(&path) && !by_dir
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "ARCHITECTURE.md does not name these source files: {unnamed:?}"
    );
}

/// `a/b/../c/` as `a/c`, without a trailing slash, so paths compare as the tree has them.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The floor table of ARCHITECTURE.md §2 names exactly the top-level modules `src/lib.rs`
/// declares (and `main.rs`, the binary), so a new module cannot go in without its row.
#[test]
fn the_floor_table_lists_the_modules_of_lib_rs() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = text.find("## 2.").expect("§2 in ARCHITECTURE.md");
    let end = text[start..]
        .find("## 3.")
        .map_or(text.len(), |e| start + e);
    let mut in_table: Vec<String> = text[start..end]
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| floor"))
        .filter_map(|row| row.split('|').nth(2))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .map(|m| m.trim_end_matches('/').trim_end_matches(".rs").to_string())
        .collect();
    in_table.sort();
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("src/lib.rs");
    let mut in_lib: Vec<String> = lib
        .lines()
        .filter_map(|l| {
            let decl = l.trim().strip_suffix(';')?;
            let name = decl.rsplit_once("mod ")?.1;
            let vis = decl.rsplit_once("mod ")?.0.trim();
            matches!(vis, "" | "pub" | "pub(crate)").then(|| name.to_string())
        })
        .collect();
    in_lib.push("main".into());
    in_lib.sort();
    assert_eq!(
        in_table, in_lib,
        "ARCHITECTURE.md §2's module rows (left) and src/lib.rs's modules with main.rs (right)"
    );
}
