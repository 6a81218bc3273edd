//! What the state-machine property tests share: one configuration, so every suite is
//! deterministic (a fixed seed) yet can be run longer or with another seed by hand
//! (`PROPTEST_CASES=5000 PROPTEST_RNG_SEED=7 cargo test --lib props`).

use proptest::test_runner::{Config, RngSeed};

/// A fixed number of cases from a fixed seed, unless the environment says otherwise; no
/// failure files are written (a failure prints its shrunk operation sequence instead).
pub(crate) fn config(cases: u32) -> Config {
    let from_env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    Config {
        cases: from_env("PROPTEST_CASES").map_or(cases, |n| n as u32),
        rng_seed: RngSeed::Fixed(from_env("PROPTEST_RNG_SEED").unwrap_or(0x5017_c4a0)),
        failure_persistence: None,
        ..Config::default()
    }
}
