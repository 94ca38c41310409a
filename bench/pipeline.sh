#!/usr/bin/env bash
# Messaging backbone benchmark: commit-to-broker (relay lag) and
# commit-to-consumer (notify handled) latency at a steady intake rate, and
# the relay's drain rate over a backlog, with the embedded broker and with
# an external nats-server process. SQLite store unless ENGINE=postgres.
#
#   bench/pipeline.sh [DURATION]        # default 15s per steady run
#
# Needs python3 (to read quantiles off the Prometheus histograms).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}
engine=${ENGINE:-sqlite}
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
	pkill -f "$work/" 2>/dev/null || true
	scripts/postgres-test-cluster.sh stop "$work/pg" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/yolda" ./cmd/yolda
go build -o "$work/nats-server" github.com/nats-io/nats-server/v2
if [ "$engine" = postgres ]; then
	pg_url=$(scripts/postgres-test-cluster.sh start "$work/pg")
fi
export YOLDA_RATE_LIMIT_USER=0 YOLDA_LOG_LEVEL=warn YOLDA_MAX_IN_FLIGHT=0 YOLDA_MAX_CONNS_PER_IP=0
port=18190 ops=18191 # API, and metrics on the operations listener

cat >"$work/quantiles.py" <<'PY'
import sys, re
name = sys.argv[1]
buckets = []
for line in sys.stdin:
    m = re.match(name + r'_bucket\{.*le="([^"]+)"\} (\S+)', line)
    if m:
        buckets.append((float('inf') if m.group(1) == '+Inf' else float(m.group(1)), float(m.group(2))))
buckets.sort()
total = buckets[-1][1] if buckets else 0
def q(p):
    if total == 0: return float('nan')
    want, prev_le, prev_c = p * total, 0.0, 0.0
    for le, c in buckets:
        if c >= want:
            if le == float('inf'): return prev_le * 1000
            return (prev_le + (le - prev_le) * (want - prev_c) / max(c - prev_c, 1e-9)) * 1000
        prev_le, prev_c = le, c
print(f"p50 {q(0.5):.1f}ms p99 {q(0.99):.1f}ms (n={int(total)})")
PY
quantiles() { # metric-name < metrics: p50 and p99 in ms, read off a histogram
	python3 "$work/quantiles.py" "$1"
}

start_yolda() { # data-dir roles [nats-url]
	local env=(YOLDA_DATA_DIR="$1" YOLDA_ROLES="$2")
	[ -n "${3:-}" ] && env+=(YOLDA_NATS_URL="$3")
	[ "$engine" = postgres ] && env+=(YOLDA_DATABASE_URL="${pg_url}&search_path=$schema")
	env "${env[@]}" "$work/yolda" serve --http-addr 127.0.0.1:$port --ops-addr 127.0.0.1:$ops 2>>"$1/serve.log" &
	for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && return; sleep 0.1; done
	echo "yolda did not start" >&2; cat "$1/serve.log" >&2; exit 1
}

setup() { # name -> data dir with a bench user
	local data="$work/$1"
	mkdir -p "$data"
	schema=b_${1//-/_}
	local env=(YOLDA_DATA_DIR="$data")
	if [ "$engine" = postgres ]; then
		psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" >/dev/null
		env+=(YOLDA_DATABASE_URL="${pg_url}&search_path=$schema")
	fi
	env "${env[@]}" "$work/yolda" users add --role customer --username bench --password bench-password >/dev/null
	echo "$data"
}

for broker in embedded external; do
	nats_url=
	if [ $broker = external ]; then
		mkdir -p "$work/nats"
		"$work/nats-server" -js -sd "$work/nats" -a 127.0.0.1 -p 14222 2>"$work/nats/log" &
		sleep 1
		nats_url=nats://127.0.0.1:14222
	fi
	for rate in 1000 5000; do
		data=$(setup "$broker-$rate")
		start_yolda "$data" all "$nats_url"
		echo "== $engine, $broker broker, steady $rate requests/s for $duration"
		"$work/yolda" bench intake -url http://127.0.0.1:$port -rate "$rate" -concurrency 512 -duration "$duration" -warmup 3s | tail -2
		sleep 3
		metrics=$(curl -s http://127.0.0.1:$ops/metrics)
		echo "   commit -> broker ack (relay lag):     $(quantiles yolda_relay_lag_seconds <<<"$metrics")"
		echo "   commit -> consumer done (notify lag): $(quantiles yolda_consumer_lag_seconds <<<"$metrics")"
		echo "   rows relayed: $(grep '^yolda_relay_published_total' <<<"$metrics" | awk '{print $2}')"
		pkill -f "$work/yolda serve"; sleep 1
	done

	# Drain rate: commit a backlog with the API alone, then time a relay.
	data=$(setup "$broker-drain")
	start_yolda "$data" api
	"$work/yolda" bench intake -url http://127.0.0.1:$port -concurrency 64 -duration 10s -warmup 0s >/dev/null
	pkill -f "$work/yolda serve"; sleep 1
	start_yolda "$data" relay "$nats_url"
	t0=$(date +%s.%N)
	backlog=$(curl -s http://127.0.0.1:$ops/metrics | awk '/^yolda_outbox_backlog /{print $2}')
	while :; do
		published=$(curl -s http://127.0.0.1:$ops/metrics | awk '/^yolda_relay_published_total /{print $2}')
		left=$(curl -s http://127.0.0.1:$ops/metrics | awk '/^yolda_outbox_backlog /{print $2}')
		[ "${left:-1}" = 0 ] && [ "${published:-0}" != 0 ] && break
		sleep 0.2
	done
	t1=$(date +%s.%N)
	echo "== $engine, $broker broker, relay drain: $published rows in $(python3 -c "print(f'{$t1-$t0:.2f}')")s = $(python3 -c "print(int($published/($t1-$t0)))") rows/s (backlog at start as last read: ${backlog:-?})"
	pkill -f "$work/yolda serve"; sleep 1
	[ $broker = external ] && pkill -f "$work/nats-server"
done
