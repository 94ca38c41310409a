#!/usr/bin/env bash
# Intake benchmark: POST /v1/requests at 16, 64 and 256 connections, on
# SQLite and on PostgreSQL, with group commit and with one transaction per
# request. Prints one line per run; docs/benchmarks.md holds the results.
#
#   bench/intake.sh [DURATION]          # default 10s per run
#
# ROLES picks what the server runs (default "api": intake alone; "all" adds
# the relay and the notify worker, as in production).
#
# The load generator runs on the same machine as the server and the
# database, as in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
work=$(mktemp -d)
chmod 755 "$work" # the PostgreSQL cluster inside runs as the postgres user
trap 'pkill -f "$work/yolda serve" 2>/dev/null || true; scripts/postgres-test-cluster.sh stop "$work/pg" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

go build -o "$work/yolda" ./cmd/yolda
pg_url=$(scripts/postgres-test-cluster.sh start "$work/pg")
# 256 connections from one address: lift the per-address cap (docs/security.md).
export YOLDA_RATE_LIMIT_USER=0 YOLDA_LOG_LEVEL=warn YOLDA_MAX_IN_FLIGHT=0 YOLDA_MAX_CONNS_PER_IP=0 YOLDA_ROLES=${ROLES:-api}

run() { # engine batch_max
	local engine=$1 batch=$2 port=18090 data="$work/data-$1-$2"
	mkdir -p "$data"
	local db_env=()
	if [ "$engine" = postgres ]; then
		psql -q "$pg_url" -c 'DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench' >/dev/null
		db_env=(YOLDA_DATABASE_URL="${pg_url}&search_path=bench")
	fi
	env "${db_env[@]}" YOLDA_DATA_DIR="$data" "$work/yolda" users add --role customer --username bench --password bench-password >/dev/null
	env "${db_env[@]}" YOLDA_DATA_DIR="$data" YOLDA_INTAKE_BATCH_MAX="$batch" \
		"$work/yolda" serve --http-addr 127.0.0.1:$port --ops-addr 127.0.0.1:$((port + 1)) 2>"$data/serve.log" &
	local pid=$!
	for _ in $(seq 50); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.2; done
	# Fill the tables first: PostgreSQL plans the foreign-key checks of a
	# never-analysed table badly for its first seconds (bench/pgbench).
	"$work/yolda" bench intake -url http://127.0.0.1:$port -concurrency 64 -duration 5s -warmup 0s >/dev/null
	if [ "$engine" = postgres ]; then
		psql -q "$pg_url" -c 'ANALYZE bench.requests; ANALYZE bench.request_timeline; ANALYZE bench.outbox' >/dev/null
	fi
	for c in 16 64 256; do
		printf '%-8s roles=%-4s batch=%-4s c=%-4s ' "$engine" "$YOLDA_ROLES" "$batch" "$c"
		"$work/yolda" bench intake -url http://127.0.0.1:$port -concurrency "$c" -duration "$duration" -warmup 2s \
			-insurers anadolu,axa,allianz | tail -2 | tr '\n' ' '
		echo
	done
	kill "$pid"; wait "$pid" || true
}

for engine in ${ENGINES:-sqlite postgres}; do
	for batch in 128 1; do
		run "$engine" "$batch"
	done
done
