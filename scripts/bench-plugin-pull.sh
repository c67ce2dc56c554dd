#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# End-to-end consumer throughput with and without a SQL92 filter plugin (issue 5): a standalone
# broker gets a backlog of MESSAGES 128-byte messages, then `mqbench consumer` drains it from the
# first offset in a group with no plugin, and in a group bound to the SQL92 plugin (an expression
# every message passes, so both runs deliver the same messages). Alternates ROUNDS times.
#
#   scripts/bench-plugin-pull.sh                # release binaries (built if missing)
#   MESSAGES=200000 ROUNDS=1 scripts/bench-plugin-pull.sh
#   PERF_OUT=/tmp/pull.perf scripts/bench-plugin-pull.sh   # perf record of each drain
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release}
MESSAGES=${MESSAGES:-1000000}
ROUNDS=${ROUNDS:-3}
if [[ $BIN == target/release && ! -x $BIN/mqbroker ]]; then
    cargo build --release --bin mqbroker --bin mqbench --bin mqadmin
fi
PLUGINS=plugins/target/wasm32-wasip2/release
if [[ ! -f $PLUGINS/sql92_filter.wasm ]]; then
    rustup target add wasm32-wasip2 >/dev/null
    cargo build -q --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml
fi

WORK=$(mktemp -d)
NS_PORT=$((20000 + RANDOM % 20000))
PORT=$((NS_PORT + 11))
NS="127.0.0.1:$NS_PORT"
cat >"$WORK/broker.properties" <<EOF
brokerClusterName=BenchCluster
brokerName=bench
storePathRootDir=$WORK/store
listenPort=$PORT
namesrvAddr=$NS
httpListenPort=0
flushDiskType=ASYNC_FLUSH
EOF
"$BIN/mqbroker" --standalone -c "$WORK/broker.properties" >"$WORK/broker.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do grep -q "Broker started" "$WORK/broker.log" && break; sleep 0.1; done
BROKER="127.0.0.1:$PORT"

"$BIN/mqadmin" updateTopic -n "$NS" -c BenchCluster -t BenchPull -r 4 -w 4 >/dev/null
"$BIN/mqbench" producer -n "$NS" -t BenchPull -s 128 -b 32 -w 4 -m "$MESSAGES" --json >/dev/null 2>&1
"$BIN/mqadmin" plugin deploy -n "$NS" -b "$BROKER" -p sql -r filter -f "$PLUGINS/sql92_filter.wasm" \
    -a '{"expression":"region IS NULL OR region = '"'"'eu'"'"'"}' >/dev/null

drain() { # drain <group>: msgs/s of one full drain from the first offset
    "$BIN/mqbench" consumer -n "$NS" -t BenchPull -g "$1" --from-first -m "$MESSAGES" --json 2>/dev/null |
        python3 -c "import json,sys; print(round(json.load(sys.stdin)['msgs_per_s']))"
}

profiled() { # profiled <suffix> <command...>: with PERF_OUT, perf record of the broker meanwhile
    if [[ -z ${PERF_OUT:-} ]]; then "${@:2}"; return; fi
    perf record -q -F 1999 -g -p "$PID" -o "$PERF_OUT.$1" 2>/dev/null &
    local perf_pid=$!
    "${@:2}"
    kill -INT "$perf_pid"; wait "$perf_pid" || true
}

RATIOS=()
echo "backlog: $MESSAGES messages of 128 bytes, 4 queues"
for round in $(seq 1 "$ROUNDS"); do
    plain=$(profiled "$round.plain" drain "CG_plain_$round")
    "$BIN/mqadmin" plugin bind -n "$NS" -b "$BROKER" -p sql -r filter -g "CG_sql_$round" -t BenchPull >/dev/null
    filtered=$(profiled "$round.sql" drain "CG_sql_$round")
    python3 -c "p=$plain; f=$filtered; print(f'round $round: no plugin {p} msgs/s, SQL92 plugin {f} msgs/s = {100*f/p:.0f}%')"
    RATIOS+=("$(python3 -c "print($filtered/$plain)")")
done
python3 -c "import statistics,sys; r=[float(x) for x in sys.argv[1:]]; print(f'median of {len(r)} rounds: {100*statistics.median(r):.0f}%')" "${RATIOS[@]}"
