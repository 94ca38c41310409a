#!/usr/bin/env bash
# Realtime benchmark: one Yolda (every role, embedded stores) and the fleet
# simulator on the same machine. Prints the simulator's JSON report and the
# server's RSS, CPU and memory per connection.
#
#   bench/realtime.sh [DRIVERS] [CUSTOMERS] [POSITION_EVERY] [DURATION]
#
# defaults: 2000 drivers reporting every 1s (2000 positions/s), 8000
# customers, one operator's panel (every position): 10 001 WebSocket
# connections, for 2 minutes.
set -euo pipefail
DRIVERS=${1:-2000}
CUSTOMERS=${2:-8000}
EVERY=${3:-1s}
DURATION=${4:-2m}
RATE=${RATE:-5}
PORT=${PORT:-18580}
OPS=${OPS:-18581}
# As many descriptors as allowed: one per connection on each side.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open files: $(ulimit -n)" >&2
cd "$(dirname "$0")/.."
BIN=$(mktemp -d)/yolda
go build -o "$BIN" ./cmd/yolda
DATA=$(mktemp -d)
export YOLDA_DATA_DIR=$DATA YOLDA_HTTP_ADDR=127.0.0.1:$PORT YOLDA_OPS_ADDR=127.0.0.1:$OPS \
  YOLDA_MAX_CONNS_PER_IP=0 YOLDA_RATE_LIMIT_IP=0 YOLDA_RATE_LIMIT_USER=0 YOLDA_WS_MAX_CONNS=200000 \
  YOLDA_LOG_LEVEL=warn YOLDA_MAX_IN_FLIGHT=20000
"$BIN" serve 2>"$DATA/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
until curl -sf "127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }   # KiB
cpu() { awk '{print $14+$15}' "/proc/$PID/stat"; }          # clock ticks
# Accounts first (beside the running server), then the run.
"$BIN" sim --setup-only --data-dir "$DATA" --drivers "$DRIVERS" --customers "$CUSTOMERS" --operators 1
IDLE_RSS=$(rss)
"$BIN" sim --url "http://127.0.0.1:$PORT" --drivers "$DRIVERS" --customers "$CUSTOMERS" --operators 1 \
  --position-every "$EVERY" --rate "$RATE" --duration "$DURATION" --drain 20s --connect-rate 1000 \
  --local-addrs 127.0.0.2-127.0.0.5 --progress-lines --json >"$DATA/report.json" 2>"$DATA/progress.log" &
SIM=$!
# Measure in the middle of the run, once every connection is up.
CONNS=$((DRIVERS + CUSTOMERS + 1))
until [ "$(curl -s "127.0.0.1:$OPS/metrics" | awk '/^yolda_ws_connections/ {s+=$2} END {print s+0}')" -ge "$CONNS" ]; do sleep 1; done
sleep 20
T0=$(date +%s.%N); C0=$(cpu)
sleep 30
T1=$(date +%s.%N); C1=$(cpu)
RSS=$(rss)
HEAP=$(curl -s "127.0.0.1:$OPS/metrics" | awk '/^go_memstats_heap_inuse_bytes/ {print $2}')
GOROUTINES=$(curl -s "127.0.0.1:$OPS/metrics" | awk '/^go_goroutines/ {print $2}')
FANOUT=$(curl -s "127.0.0.1:$OPS/metrics" | grep '^yolda_ws_fanout_seconds_\(sum\|count\)')
wait $SIM
cat "$DATA/report.json"
TICKS=$(getconf CLK_TCK)
awk -v r="$RSS" -v i="$IDLE_RSS" -v n="$CONNS" -v c0="$C0" -v c1="$C1" -v t0="$T0" -v t1="$T1" -v hz="$TICKS" -v heap="$HEAP" -v g="$GOROUTINES" 'BEGIN {
  printf "server: %d connections, RSS %.0f MiB (idle before: %.0f MiB), %.1f KiB per connection, heap in use %.0f MiB, %d goroutines, CPU %.0f%% of one core\n",
    n, r/1024, i/1024, (r-i)/n, heap/1048576, g, 100*(c1-c0)/hz/(t1-t0) }'
echo "$FANOUT"
tail -3 "$DATA/progress.log"
