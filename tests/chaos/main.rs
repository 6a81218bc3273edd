//! The chaos suite (root only): five `serve` processes in network namespaces, clients
//! submitting at random nodes the whole time, and a seeded schedule of partitions, one-way
//! partitions, loss, delay with jitter and reordering, kill -9, SIGSTOP and a full disk. After
//! the faults stop and the cluster settles, the history is checked against every replica
//! (`check.rs`). Figures (reach under loss and delay against a clean run, convergence after the
//! heal, peak memory) are printed as one JSON line, not asserted.
//!
//! `CHAOS_SEED=<seed> cargo test --test chaos -- --nocapture` replays a schedule.

#[allow(dead_code)]
#[path = "../it/common/faults.rs"]
mod faults;

mod check;
mod delay;
mod figures;
mod history;
mod net;
mod nodes;
mod run;
mod schedule;

const TEST: &str = "chaos";

/// Whether this machine can build the network; under `CI=true` it must.
fn can_run() -> bool {
    if !faults::is_root() {
        faults::skip(TEST, "network namespaces and nftables need root");
        return false;
    }
    for tool in ["ip", "nft", "iptables-legacy"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            faults::skip(
                TEST,
                &format!("`{tool}` is not installed (packages iproute2, nftables, iptables)"),
            );
            return false;
        }
    }
    true
}

#[test]
fn acknowledged_transactions_hold_through_partitions_loss_delay_crashes_and_a_full_disk() {
    if !can_run() {
        return;
    }
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        });
    println!("chaos seed {seed}: CHAOS_SEED={seed} cargo test --test chaos replays this schedule");
    let outcome = std::thread::spawn(move || run::in_harness(seed)).join();
    if let Err(panic) = outcome {
        eprintln!("chaos seed {seed} failed: CHAOS_SEED={seed} cargo test --test chaos replays it");
        std::panic::resume_unwind(panic);
    }
}
