#!/bin/sh
# Counts the fsync/fdatasync calls a node makes per acknowledged commit (needs strace):
#   benches/fsync-count.sh target/release/sorcha-peer full    # or fast; "old" for a build without the key
set -e
BIN=$1; MODE=$2; DIR=$(mktemp -d)
env $( [ "$MODE" = old ] || echo SORCHA_PEER_DURABILITY=$MODE ) $BIN --data-dir $DIR serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --log-level warn 2>/dev/null &
PID=$!
while [ ! -s $DIR/admin.token ]; do sleep 0.1; done; sleep 0.5
C="$BIN --data-dir $DIR"
$C registers create fsync >/dev/null
strace -f -e trace=fsync,fdatasync -o $DIR/strace.txt -p $PID 2>/dev/null &
ST=$!; sleep 1
for i in $(seq 1 20); do echo "single $i $MODE" | $C tx submit fsync >/dev/null; done
S=$(grep -cE 'fsync|fdatasync' $DIR/strace.txt || true)
seq 1 1000 | sed "s/^/line $MODE /" | $C tx submit --lines fsync >/dev/null
sleep 0.5
T=$(grep -cE 'fsync|fdatasync' $DIR/strace.txt || true)
kill $ST; kill $PID; wait 2>/dev/null || true
echo "durability=$MODE: 20 single submissions (20 commits): $S syncs; then 1 000 lines (one request): $((T - S)) syncs"
rm -rf $DIR
