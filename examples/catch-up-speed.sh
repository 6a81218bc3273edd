#!/usr/bin/env bash
# Measures full-replica catch-up speed between two real nodes on loopback.
#
# Starts an origin (127.0.0.1) and a replica (127.0.0.2) as separate processes, loads N
# transactions into a public register at the origin, waits until they are sealed, then times
# `registers subscribe --mode full-replica --wait` on the replica and prints transactions per
# second as JSON. Everything lives in a temporary directory removed on exit.
#
# Usage: examples/catch-up-speed.sh [N]          (default N = 60000)
#   SORCHA_PEER_BIN=/path/to/sorcha-peer  binary (default: target/release/sorcha-peer, built
#                                         with `cargo build --release` if missing)
set -euo pipefail

n="${1:-60000}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${SORCHA_PEER_BIN:-$repo_root/target/release/sorcha-peer}"
if [[ ! -x "$bin" ]]; then
    echo "## building sorcha-peer (cargo build --release)" >&2
    (cd "$repo_root" && cargo build --release)
fi
unset SORCHA_PEER_NODE SORCHA_PEER_TOKEN SORCHA_PEER_DATA_DIR
export SORCHA_PEER_HEARTBEAT_INTERVAL=500ms SORCHA_PEER_DIAL_INTERVAL=100ms SORCHA_PEER_LOG_LEVEL=warn NO_COLOR=1

work="$(mktemp -d "${TMPDIR:-/tmp}/sorcha-catchup.XXXXXX")"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" serve --data-dir "$work/origin" --listen 127.0.0.1:15201 --admin-listen 127.0.0.1:15281 >"$work/origin.log" 2>&1 &
pids+=($!)
"$bin" serve --data-dir "$work/replica" --listen 127.0.0.2:15202 --admin-listen 127.0.0.1:15282 \
    --seed 127.0.0.1:15201 >"$work/replica.log" 2>&1 &
pids+=($!)

origin() { "$bin" --data-dir "$work/origin" "$@"; }
replica() { "$bin" --data-dir "$work/replica" "$@"; }
for _ in $(seq 100); do
    if origin status >/dev/null 2>&1 && replica status >/dev/null 2>&1; then break; fi
    sleep 0.1
done

origin -q registers create bench --public
echo "## loading $n transactions at the origin" >&2
seq 1 "$n" | sed 's/^/transaction-payload-/' | origin tx submit bench --lines >/dev/null
for _ in $(seq 600); do
    version=$(origin registers list -o json | python3 -c 'import json,sys; print(next(r["latestVersion"] for r in json.load(sys.stdin) if r["registerId"]=="bench"))')
    [[ "$version" -ge "$n" ]] && break
    sleep 0.1
done
for _ in $(seq 100); do
    if replica registers available -o json | grep -q '"bench"'; then break; fi
    sleep 0.1
done

echo "## replica catching up" >&2
start=$(date +%s.%N)
replica -q registers subscribe bench --mode full-replica --wait
end=$(date +%s.%N)
python3 - "$n" "$start" "$end" <<'PY'
import json, sys
n, start, end = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(json.dumps({"transactions": n, "seconds": round(end - start, 3),
                  "transactionsPerSecond": round(n / (end - start))}))
PY
