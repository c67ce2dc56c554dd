#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# AMQP door benchmark (issue 7): the same lapin load program (gateway-amqp/examples/amqp_bench.rs:
# publish with confirms, publish without confirms, consume with prefetch 100 and manual acks,
# 1 KiB persistent messages to a durable queue) against a standalone mqbroker with SYNC_FLUSH,
# then, with RABBIT=1, against Debian's RabbitMQ started on the same machine.
#
#   scripts/bench-amqp.sh                      # our broker only
#   RABBIT=1 MESSAGES=50000 scripts/bench-amqp.sh
#   KEEP=1 scripts/bench-amqp.sh               # keep the logs and stores
#
# RabbitMQ is never installed by this script (`apt-get install -y rabbitmq-server` first); it is
# started as a node of its own under a temporary directory and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release}
MESSAGES=${MESSAGES:-50000}
FLUSH=${FLUSH:-SYNC_FLUSH}
if [[ $BIN == target/release && (! -x $BIN/mqbroker || ! -x $BIN/examples/amqp_bench) ]]; then
    cargo build --release --bin mqbroker
    cargo build --release -p gateway-amqp --example amqp_bench
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [[ -n ${RABBIT_STARTED:-} ]]; then
        RABBITMQ_NODENAME=bench@localhost RABBITMQ_MNESIA_BASE=$WORK/rabbit rabbitmqctl -n bench@localhost stop >/dev/null 2>&1 || true
    fi
    if [[ -n ${KEEP:-} ]]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT=$((20000 + RANDOM % 20000))
AMQP_PORT=$((PORT + 100))
cat >"$WORK/broker.properties" <<EOF
brokerClusterName=BenchCluster
brokerName=bench
storePathRootDir=$WORK/store
listenPort=$PORT
namesrvAddr=127.0.0.1:$((PORT - 11))
httpListenPort=0
amqpListenPort=$AMQP_PORT
flushDiskType=$FLUSH
EOF
"$BIN/mqbroker" --standalone -c "$WORK/broker.properties" >"$WORK/broker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do grep -q "Broker started" "$WORK/broker.log" && break; sleep 0.1; done
# Measure the steady state: a fresh SYNC_FLUSH store zero-fills its next CommitLog segment in the
# background first (and RabbitMQ has its own start-up work).
wait_idle() { # wait_idle <pid>: until it uses under 5% of a core over half a second (60 s at most)
    local hz t0 t1
    hz=$(getconf CLK_TCK)
    for _ in $(seq 1 120); do
        t0=$(awk '{print $14 + $15}' "/proc/$1/stat")
        sleep 0.5
        t1=$(awk '{print $14 + $15}' "/proc/$1/stat")
        (( (t1 - t0) * 100 < hz * 5 / 2 )) && return 0
    done
}
wait_idle "${PIDS[0]}"
echo "== this broker ($FLUSH), $MESSAGES messages of 1 KiB"
"$BIN/examples/amqp_bench" "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f" "$MESSAGES" 1024

if [[ -n ${RABBIT:-} ]]; then
    RABBIT_PORT=$((AMQP_PORT + 1))
    export RABBITMQ_NODENAME=bench@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$RABBIT_PORT \
        RABBITMQ_MNESIA_BASE=$WORK/rabbit RABBITMQ_LOG_BASE=$WORK/rabbit-log RABBITMQ_DIST_PORT=$((AMQP_PORT + 2))
    mkdir -p "$WORK/rabbit" "$WORK/rabbit-log"
    # Debian's rabbitmq-server drops to the rabbitmq user when started as root.
    if id rabbitmq >/dev/null 2>&1; then chmod 755 "$WORK"; chown -R rabbitmq: "$WORK/rabbit" "$WORK/rabbit-log"; fi
    rabbitmq-server >"$WORK/rabbit.out" 2>&1 &
    PIDS+=($!)
    RABBIT_STARTED=1
    for _ in $(seq 1 120); do
        rabbitmqctl -n bench@localhost await_startup --timeout 5 >/dev/null 2>&1 && break
        sleep 0.5
    done
    wait_idle "$(pgrep -n beam.smp)"
    echo "== RabbitMQ $(rabbitmqctl -n bench@localhost version 2>/dev/null), $MESSAGES messages of 1 KiB"
    "$BIN/examples/amqp_bench" "amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f" "$MESSAGES" 1024
fi
