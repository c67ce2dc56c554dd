#!/usr/bin/env bash
# HTTP door benchmarks (figures for the issue note, not asserted anywhere). Needs `wrk` (apt) and
# a built `target/release/mqbroker`. Starts a standalone broker on free ports under a temporary
# directory, then measures with wrk, keep-alive, 2 threads:
#   1. single-message publish, 1 KiB raw body;
#   2. batch publish, 32 x 1 KiB in one JSON request (messages/s = requests/s x 32);
#   3. simple-consumer receive (32) + ack throughput;
#   4. the cost of a /metrics scrape with 1,000 topics.
# Usage: gateway-http/benches/run.sh [duration, default 10s] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10s}
CONNS=${2:-64}
BIN=target/release/mqbroker
[ -x "$BIN" ] || cargo build --release --bin mqbroker
DIR=$(mktemp -d)
HTTP=$((20000 + RANDOM % 20000)); NATIVE=$((HTTP + 1)); NS=$((HTTP + 5))
cat > "$DIR/broker.properties" <<PROPS
brokerClusterName=BenchCluster
brokerName=bench
storePathRootDir=$DIR/store
listenPort=$NATIVE
namesrvAddr=127.0.0.1:$NS
httpListenPort=$HTTP
flushDiskType=ASYNC_FLUSH
PROPS
"$BIN" --standalone -c "$DIR/broker.properties" > "$DIR/broker.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/livez" >/dev/null && break; sleep 0.1; done
B=gateway-http/benches
U="http://127.0.0.1:$HTTP"
curl -sf -X PUT "$U/v1/topics/bench" -d '{"read_queues":8,"write_queues":8}' >/dev/null

echo "== 1. single publish, 1 KiB"
wrk -t2 -c"$CONNS" -d"$DUR" -s $B/publish_single.lua "$U/v1/topics/bench/messages"
echo "== 2. batch publish, 32 x 1 KiB per request"
wrk -t2 -c"$CONNS" -d"$DUR" -s $B/publish_batch.lua "$U/v1/topics/bench/messages"
echo "== 3. receive (32) + ack"
wrk -t2 -c"$CONNS" -d"$DUR" -s $B/receive_ack.lua "$U/"
echo "== 4. /metrics with 1,000 topics"
for i in $(seq 1000); do
  curl -sf -X POST "$U/v1/topics/t$i/messages" -H 'content-type: application/json' -d '{"body":"x"}' >/dev/null || \
    { curl -sf -X PUT "$U/v1/topics/t$i" -d '{"read_queues":1,"write_queues":1}' >/dev/null; \
      curl -sf -X POST "$U/v1/topics/t$i/messages" -d 'x' >/dev/null; }
done
echo "scrape size: $(curl -s "$U/metrics" | wc -c) bytes, $(curl -s "$U/metrics" | grep -vc '^#') samples"
wrk -t1 -c1 -d"$DUR" "$U/metrics"
