#!/usr/bin/env bash
# Fuzzing by hand and in CI (README "Fuzzing"). AddressSanitizer is on: without it libFuzzer
# misses most panics in the time CI gives it.
#
#   fuzz/run.sh TARGET SECONDS   fuzz one target; new inputs go to fuzz/scratch/TARGET, read
#                                together with the committed seeds in fuzz/corpus/TARGET;
#                                a crash is saved in fuzz/artifacts/TARGET and fails the run
#   fuzz/run.sh --list           the targets
#   fuzz/run.sh --build          build every target
#   fuzz/run.sh --replay         run every target once over its committed seeds
#   fuzz/run.sh --seeds          rewrite the committed seeds (src/seeds.rs)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
# cargo-fuzz passes nightly-only flags (-Zsanitizer); the stable compiler takes them with this.
export RUSTC_BOOTSTRAP=1
# The bundled SQLite (linked into the library, never used by a target) trips ASan's
# one-definition check at start; nothing else is affected.
export ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# A compiler check cached without RUSTC_BOOTSTRAP would keep failing: let cargo redo it.
rm -f target/.rustc_info.json

# Per input: a hang longer than this is a failure, as is memory beyond the limit.
LIBFUZZER_FLAGS=(-timeout=10 -rss_limit_mb=2048)

# libFuzzer flags of one target, after the common ones.
target_flags() {
    case "$1" in
    # A live node's threads reach new code between inputs, so nearly every input brings new
    # features, and the entropic schedule's bookkeeping of them took 4 in 5 of the time
    # (5 exec/s instead of 20).
    session) echo -entropic=0 ;;
    esac
}

targets() {
    cargo fuzz list | grep -vx seeds
}

case "${1:-}" in
--list)
    targets
    ;;
--build)
    cargo fuzz build
    ;;
--replay)
    for target in $(targets); do
        echo "replaying the seeds of $target"
        # shellcheck disable=SC2046 # the target's flags are words
        cargo fuzz run "$target" "corpus/$target" -- -runs=0 "${LIBFUZZER_FLAGS[@]}" $(target_flags "$target")
    done
    ;;
--seeds)
    cargo fuzz build seeds
    rm -rf corpus
    "target/x86_64-unknown-linux-gnu/release/seeds" corpus
    ;;
"" | -*)
    sed -n '2,13p' "$0"
    exit 2
    ;;
*)
    target=$1
    seconds=${2:?"how many seconds? fuzz/run.sh $target SECONDS"}
    mkdir -p "scratch/$target"
    # shellcheck disable=SC2046 # the target's flags are words
    cargo fuzz run "$target" "scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" "${LIBFUZZER_FLAGS[@]}" $(target_flags "$target")
    ;;
esac
