#!/usr/bin/env bash
# Insurer isolation: intake throughput and latency with every insurer
# healthy, then, in the same run, with the busiest insurer hanging (every
# call waits until Yolda's deadline). The ratio shows whether one dead
# insurer slows down the rest of the platform. Then the worker's checks/s
# against a healthy mock answering in 50 ms.
#
#   bench/isolation.sh [DURATION]        # default 15s per phase
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}
work=$(mktemp -d)
chmod 755 "$work"
trap 'pkill -f "$work/" 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/yolda" ./cmd/yolda
cat >"$work/insurers.yaml" <<YAML
insurers:
  - {code: anadolu, name: Anadolu Sigorta, base_url: "http://127.0.0.1:19201", timeout: 2s, verify_before_dispatch: true}
  - {code: axa, name: AXA Sigorta, base_url: "http://127.0.0.1:19202", timeout: 2s}
  - {code: allianz, name: Allianz, base_url: "http://127.0.0.1:19203", timeout: 2s}
YAML
for i in 1 2 3; do
	"$work/yolda" mock-insurer --addr 127.0.0.1:1920$i --latency 50ms --jitter 10ms 2>"$work/mock$i.log" &
done
export YOLDA_DATA_DIR="$work/data" YOLDA_INSURERS_FILE="$work/insurers.yaml" YOLDA_RATE_LIMIT_USER=0 YOLDA_LOG_LEVEL=warn YOLDA_MAX_IN_FLIGHT=0 YOLDA_MAX_CONNS_PER_IP=0
"$work/yolda" users add --role customer --username bench --password bench-password >/dev/null
"$work/yolda" serve --http-addr 127.0.0.1:18290 --ops-addr 127.0.0.1:18291 2>"$work/serve.log" &
for _ in $(seq 100); do curl -sf http://127.0.0.1:18290/readyz >/dev/null && break; sleep 0.1; done

calls() { curl -s http://127.0.0.1:18291/metrics | awk -v ins="$1" '$1 ~ "^yolda_insurer_calls_total\\{insurer=\""ins"\"" {s+=$2} END {print s+0}'; }
phase() {
	"$work/yolda" bench intake -url http://127.0.0.1:18290 -concurrency 64 -duration "$duration" -warmup 3s \
		-insurers anadolu,anadolu,axa,allianz | tail -2
}
echo "== all insurers healthy (anadolu gets half the requests)"
phase
echo "== anadolu hanging"
curl -s http://127.0.0.1:19201/control --json '{"mode":"hang"}' >/dev/null
phase
echo "   anadolu breaker: $(curl -s http://127.0.0.1:18291/metrics | awk '/^yolda_insurer_breaker_state\{insurer="anadolu"\}/{print $2}') (2 = open)"
curl -s http://127.0.0.1:19201/control --json '{"mode":"ok"}' >/dev/null

echo "== checks/s through the worker, mock latency 50 ms"
before=$(calls axa)
t0=$(date +%s.%N)
"$work/yolda" bench intake -url http://127.0.0.1:18290 -concurrency 64 -duration "$duration" -warmup 0s -insurers axa | tail -1
# Wait until the worker has drained what intake took.
after=$(calls axa)
while sleep 2; do
	now=$(calls axa)
	[ "$now" = "$after" ] && break
	after=$now
	t1=$(date +%s.%N)
done
t1=${t1:-$(date +%s.%N)}
python3 -c "print(f'   axa calls: {$after-$before:.0f} in {$t1-$t0:.1f}s = {($after-$before)/($t1-$t0):.0f} checks/s')"
