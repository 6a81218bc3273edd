//! Compiles the peer protocol and the platform's six original services (`proto/sorcha/platform`,
//! served on the platform listener) with protox (pure Rust, well-known types included), so
//! `cargo build` needs no system protoc, and records the commit the binary is built from (`SORCHA_BUILD_COMMIT`: the short hash, or
//! "unknown" outside a git checkout or without git).

use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/sorcha/peer/v1/session.proto",
        "proto/sorcha/platform/docket_sync.proto",
        "proto/sorcha/platform/peer_communication.proto",
        "proto/sorcha/platform/peer_discovery.proto",
        "proto/sorcha/platform/peer_heartbeat.proto",
        "proto/sorcha/platform/register_sync.proto",
        "proto/sorcha/platform/transaction_distribution.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds these: a new migration alone must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=build.rs");
    record_commit();
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

/// Sets `SORCHA_BUILD_COMMIT` and asks to be rerun when HEAD moves: HEAD itself (a checkout),
/// the branch it points to (a commit) and packed-refs (a branch that was packed). Only paths
/// that exist are watched: a missing one would make cargo rerun this on every build.
/// A packager building from a tarball can set `SORCHA_BUILD_COMMIT` in the build environment.
fn record_commit() {
    println!("cargo:rerun-if-env-changed=SORCHA_BUILD_COMMIT");
    if let Some(given) = std::env::var("SORCHA_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
    {
        println!("cargo:rustc-env=SORCHA_BUILD_COMMIT={}", given.trim());
        return;
    }
    // Only this package's own repository counts, not one it happens to be unpacked inside.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let toplevel = git(&["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    let own_checkout = match (manifest_dir, toplevel) {
        (Some(dir), Some(top)) => dir.canonicalize().ok() == top.canonicalize().ok(),
        _ => false,
    };
    let commit = own_checkout
        .then(|| git(&["rev-parse", "--short", "HEAD"]))
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SORCHA_BUILD_COMMIT={commit}");
    if !own_checkout {
        return;
    }
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    for path in watched.into_iter().flatten().map(PathBuf::from) {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// One line of output from a successful git command, or `None` (no git, not a checkout).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
