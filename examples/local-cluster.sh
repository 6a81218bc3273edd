#!/usr/bin/env bash
# Start a three-node sorcha-peer cluster on loopback and walk through the main CLI commands:
# status, peers (list, get, ban, unban, reset), registers (create, subscribe --wait),
# transactions (submit, get) and lag.
#
#   A  peer 127.0.0.1:<any>  (the seed; origin of the register "orders")
#   B  peer 127.0.0.2:<any>  (--seed A)
#   C  peer 127.0.0.3:<any>  (--seed A)
#
# Every listener takes a free port; the CLI finds each node through its data directory. B and
# C only know A; they find each other through peer exchange. Each node has its own data
# directory under a temporary directory, removed on exit together with the nodes.
#
# Usage: examples/local-cluster.sh
#   The `sorcha-peer` on PATH is used; only when there is none is one built with cargo
#   (target/debug/sorcha-peer of this checkout).
#   KEEP=1   keep the data directories and node logs
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if bin="$(command -v sorcha-peer)"; then
    echo "## using $bin ($("$bin" --version))"
else
    bin="$repo_root/target/debug/sorcha-peer"
    echo "## no sorcha-peer on PATH: building one with cargo" >&2
    (cd "$repo_root" && cargo build --quiet)
fi

# Client settings from the caller's environment would point the CLI elsewhere.
unset SORCHA_PEER_NODE SORCHA_PEER_TOKEN SORCHA_PEER_DATA_DIR

# Fast intervals so the demo converges in seconds (the defaults are 10s / 60s / 1s).
export SORCHA_PEER_HEARTBEAT_INTERVAL=500ms
export SORCHA_PEER_EXCHANGE_INTERVAL=1s
export SORCHA_PEER_DIAL_INTERVAL=200ms
export NO_COLOR=1

work="$(mktemp -d "${TMPDIR:-/tmp}/sorcha-cluster.XXXXXX")"
pids=()

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $status -ne 0 ]]; then
        for node in a b c; do
            if [[ -s "$work/$node.log" ]]; then
                echo "--- last lines of node ${node^^}'s log ---" >&2
                tail -n 15 "$work/$node.log" >&2
            fi
        done
    fi
    if [[ -n "${KEEP:-}" ]]; then
        echo "data directories and logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_node NAME PEER_ADDR ADMIN_ADDR [serve args...]
start_node() {
    local name=$1 listen=$2 admin=$3
    shift 3
    mkdir -p "$work/$name"
    "$bin" serve --data-dir "$work/$name" --name "node-$name" \
        --listen "$listen" --admin-listen "$admin" "$@" \
        >"$work/$name.log" 2>&1 &
    pids+=($!)
}

# cli NODE ARGS...: run the CLI against node NODE (found through its data directory).
cli() {
    local name=$1
    shift
    "$bin" --data-dir "$work/$name" "$@"
}

# show NODE ARGS...: echo the command, then run it.
show() {
    local name=$1
    shift
    echo
    echo "\$ sorcha-peer --data-dir <${name^^}> $*"
    cli "$name" "$@"
}

# wait_for DESCRIPTION COMMAND...: poll COMMAND until it succeeds, 100 times 200ms at most.
wait_for() {
    local what=$1
    shift
    for _ in $(seq 1 100); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        for pid in "${pids[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "error: a node exited while waiting for $what" >&2
                return 1
            fi
        done
        sleep 0.2
    done
    echo "error: timed out waiting for $what" >&2
    return 1
}

peer_id() {
    cli "$1" status -o json | json_field peerId
}

# json_field KEY: print a top-level string field of the JSON document on stdin.
json_field() {
    if command -v jq >/dev/null; then
        jq -r ".$1"
    else
        python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
    fi
}

pretty_json() {
    if command -v jq >/dev/null; then
        jq .
    else
        python3 -m json.tool
    fi
}

# b_sees_c_connected: true when B lists C as connected.
b_sees_c_connected() {
    cli b peers list --state connected -o json | grep -q "\"$c_id\""
}

# json_get NODE KEY ARGS...: a top-level field of a command's JSON output.
json_get() {
    local name=$1 key=$2
    shift 2
    cli "$name" "$@" -o json | json_field "$key"
}

# tx_sealed NODE TX: true once the transaction is sealed.
tx_sealed() {
    [[ "$(json_get "$1" state tx get orders "$2")" == sealed ]]
}

echo "## starting nodes A, B and C (data and logs in $work)"
start_node a 127.0.0.1:0 127.0.0.1:0
wait_for "node A's admin API" cli a status
seed="$(json_get a listen status)"
start_node b 127.0.0.2:0 127.0.0.1:0 --seed "$seed"
start_node c 127.0.0.3:0 127.0.0.1:0 --seed "$seed"
wait_for "node B's admin API" cli b status
wait_for "node C's admin API" cli c status

a_id="$(peer_id a)"
b_id="$(peer_id b)"
c_id="$(peer_id c)"
echo "A = $a_id (peer protocol on $seed)"
echo "B = $b_id"
echo "C = $c_id"

echo
echo "## waiting until B is connected to C (learnt through A by peer exchange)"
wait_for "B to connect to C" b_sees_c_connected
echo "B is connected to C"

echo
echo "## peers, from node B's point of view"
show b status
show b peers list
show b peers get "${a_id:0:8}"
show b peers ban "${c_id:0:8}" --reason demo --duration 1h
show b peers bans
show b peers unban "${c_id:0:8}"
show b peers reset "${a_id:0:8}"

echo
echo "## after the unban B dials C again"
wait_for "B to reconnect to C" b_sees_c_connected
show b peers list --state connected

echo
echo "## a register: created at A (its origin), replicated by B"
show a registers create orders --public
wait_for "B to see the register advertised" sh -c "\"$bin\" --data-dir \"$work/b\" registers available -o json | grep -q '\"orders\"'"
show b registers subscribe orders --mode full-replica --wait
show b registers list

echo
echo "## a transaction submitted at B, sealed by A, replicated back to B"
echo "\$ echo 'order 1042' | sorcha-peer --data-dir <B> tx submit orders -"
tx="$(echo 'order 1042' | cli b tx submit orders - -q)"
echo "$tx"
wait_for "the transaction to be sealed at B" tx_sealed b "$tx"
show b tx get orders "$tx"

echo
echo "## how far B is behind A, asked over the peer protocol"
show b lag --against "$seed" --register orders

echo
echo "\$ sorcha-peer --data-dir <B> peers list -o json | $(command -v jq >/dev/null && echo 'jq .' || echo 'python3 -m json.tool')"
cli b peers list -o json | pretty_json

echo
echo "## exit codes: 5 = not found, 3 = node unreachable"
for args in "peers get ffffffffffff" "--node http://127.0.0.1:1 status"; do
    echo "\$ sorcha-peer --data-dir <B> $args"
    set +e
    # shellcheck disable=SC2086  # split the argument list on purpose
    cli b $args
    code=$?
    set -e
    echo "exit code $code"
done

echo
echo "## done; stopping the nodes"
