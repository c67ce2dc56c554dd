#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# End-to-end HA benchmark (issue 4): send throughput and p99 latency of 1 KiB messages from 16
# producer threads against one broker pair started from the conf/2m-2s-sync and conf/2m-2s-async
# samples (only paths and addresses added): no slave, ASYNC_MASTER + slave, SYNC_MASTER + slave.
# Then the catch-up rate: the slave is stopped, MESSAGES_CATCHUP messages arrive, the slave is
# started and timed until its replica offset equals the master's CommitLog end.
#
#   scripts/bench-ha.sh            # release binaries (built if missing), 20 s per mode
#   SECONDS_PER_MODE=60 BIN=target/debug MODES="none sync" scripts/bench-ha.sh
#   BROKER_ENV="RUST_LOG=debug" scripts/bench-ha.sh          # environment for the brokers only
#   BROKER_PROPS="haSlaveSpinMicros=0" scripts/bench-ha.sh    # lines added to every broker's file
#
# Every program binds its own 127.0.0.x address; nothing outside loopback is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release}
SECONDS_PER_MODE=${SECONDS_PER_MODE:-20}
THREADS=${THREADS:-16}
MESSAGES_CATCHUP=${MESSAGES_CATCHUP:-200000}
if [[ $BIN == target/release && ! -x $BIN/mqbroker ]]; then
    cargo build --release --bin mqbroker --bin mqnamesrv --bin mqbench --bin mqadmin
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

NS_IP=127.0.0.40 NS_PORT=19876
MASTER_IP=127.0.0.41 SLAVE_IP=127.0.0.42 BROKER_PORT=20911
NS="$NS_IP:$NS_PORT"

start_namesrv() {
    printf 'listenPort=%s\nbindAddress=%s\nkvConfigPath=%s/kv.json\n' "$NS_PORT" "$NS_IP" "$WORK" >"$WORK/ns.properties"
    "$BIN/mqnamesrv" -c "$WORK/ns.properties" >"$WORK/ns.log" 2>&1 &
    PIDS+=($!)
    sleep 1
}

# broker_config <sample file> <name> <ip>: the sample plus paths and addresses.
broker_config() {
    { cat "$1"; printf '\nstorePathRootDir=%s/%s\nnamesrvAddr=%s\nbrokerIP1=%s\nbindAddress=%s\nlistenPort=%s\nhttpListenPort=0\n' \
        "$WORK" "$2" "$NS" "$3" "$3" "$BROKER_PORT"; printf '%s\n' ${BROKER_PROPS:-}; } >"$WORK/$2.properties"
}

# start_broker <name>: starts it and waits for "Broker started"; sets LAST_PID.
start_broker() {
    env ${BROKER_ENV:-} "$BIN/mqbroker" -c "$WORK/$1.properties" >"$WORK/$1.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    for _ in $(seq 1 300); do
        grep -q "Broker started" "$WORK/$1.log" && return 0
        sleep 0.1
    done
    echo "broker $1 did not start:" >&2
    tail -20 "$WORK/$1.log" >&2
    exit 1
}

status() { # status <addr> <key>
    "$BIN/mqadmin" brokerStatus -b "$1" --json -n "$NS" |
        python3 -c "import json,sys; print(json.load(sys.stdin)['$1'].get('$2',''))"
}

run_mode() { # run_mode <label> <layout or ""> 
    local label=$1 layout=$2
    rm -rf "$WORK"/m "$WORK"/s
    PIDS=()
    start_namesrv
    if [[ -z $layout ]]; then
        broker_config conf/2m-noslave/broker-a.properties m "$MASTER_IP"
        start_broker m
    else
        broker_config "conf/$layout/broker-a.properties" m "$MASTER_IP"
        broker_config "conf/$layout/broker-a-s.properties" s "$SLAVE_IP"
        start_broker m
        start_broker s
        for _ in $(seq 1 100); do
            [[ $(status "$MASTER_IP:$BROKER_PORT" haConnectedSlaves) == 1 ]] && break
            sleep 0.2
        done
    fi
    "$BIN/mqadmin" updateTopic -n "$NS" -c DefaultCluster -t BenchHa -r 8 -w 8 >/dev/null
    local out
    out=$("$BIN/mqbench" producer -n "$NS" -t BenchHa -s 1024 -w "$THREADS" -d "$SECONDS_PER_MODE" --json 2>/dev/null)
    # CPU seconds of each broker process (utime + stime from /proc, 10 ms resolution), and the
    # brokers' CPU per message: a figure a shared machine disturbs less than throughput.
    local cpu=""
    for p in "${PIDS[@]}"; do
        [[ -r /proc/$p/stat ]] || continue
        cpu+="$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{n=split($NF,f,"/"); print f[n]}')=$(awk '{print $14 + $15}' "/proc/$p/stat") "
    done
    python3 - "$label" "$out" "$cpu" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
r = json.loads(sys.argv[2])
cpu = {kv.split("=")[0].split(".")[0]: int(kv.split("=")[1]) / int(sys.argv[4]) for kv in sys.argv[3].split()}
cpu.pop("ns", None)
sent = r['msgs_per_s'] * r['elapsed_s']
print(f"{sys.argv[1]:<22} {r['msgs_per_s']:>10.0f} msgs/s   p99 {r['latency_ms']['p99']:.3f} ms   "
      f"failed {r['send_failed'] + r['response_failed']}   cpu: "
      + " ".join(f"{k} {v:.2f}s" for k, v in cpu.items())
      + f" = {1e6 * sum(cpu.values()) / max(sent, 1):.1f} us/msg")
EOF
}

catch_up() {
    local master="$MASTER_IP:$BROKER_PORT"
    kill -9 "$LAST_PID"
    wait "$LAST_PID" 2>/dev/null || true
    # SYNC_MASTER would refuse SEND_OK without a slave: the async layout takes the load.
    "$BIN/mqbench" producer -n "$NS" -t BenchHa -s 1024 -b 32 -a 64 -m "$MESSAGES_CATCHUP" --json >/dev/null 2>&1
    local target start end
    target=$(status "$master" commitLogMaxOffset)
    start=$(date +%s.%N)
    start_broker s
    while :; do
        local got
        got=$(status "$SLAVE_IP:$BROKER_PORT" haReplicaOffset)
        [[ -n $got && $got -ge $target ]] && break
        sleep 0.05
    done
    end=$(date +%s.%N)
    python3 -c "b=$target; t=$end-$start; print(f'catch-up: {b/1e6:.1f} MB in {t:.2f} s = {b/1e6/t:.0f} MB/s (slave start included)')"
}

cleanup_mode() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; sleep 1; }
MODES=${MODES:-"none async sync"}
echo "1 KiB bodies, $THREADS producer threads, $SECONDS_PER_MODE s per mode ($BIN)"
for mode in $MODES; do
    case $mode in
        none) run_mode "no slave" "" ;;
        async) run_mode "ASYNC_MASTER + slave" 2m-2s-async; catch_up ;;
        sync) run_mode "SYNC_MASTER + slave" 2m-2s-sync ;;
        *) echo "unknown mode $mode (none, async, sync)" >&2; exit 2 ;;
    esac
    cleanup_mode
done
