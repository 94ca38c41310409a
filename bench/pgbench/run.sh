#!/usr/bin/env bash
# PostgreSQL's own ceiling for one request's rows, without Yolda in the way.
#
#   bench/pgbench/run.sh [URL]
#
# With no URL it starts a throwaway cluster (scripts/postgres-test-cluster.sh)
# and stops it at the end. Each run gets a fresh database `yolda_bench` with
# the real schema (internal/store/postgres/migrations), OWNERS customers and
# 20,000 seeded requests, then VACUUM ANALYZE and a CHECKPOINT, so runs do
# not inherit each other's tables or dirty pages. Durability is the server's default: fsync on, synchronous_commit on.
#
# Before the measured runs, an unrecorded WARMUP-second run (default 20)
# makes the server allocate its WAL segments, which later runs recycle
# (the cluster keeps min_wal_size = 2GB) as a server in steady state does.
#
# Environment: DURATION (s, default 30), CLIENTS ("16 64"), SCRIPTS
# ("requests_tx requests_cte"), NS ("1 10"), OWNERS (1000), REPEAT (1),
# WARMUP (20).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
duration=${DURATION:-30}
clients=${CLIENTS:-16 64}
scripts=${SCRIPTS:-requests_tx requests_cte}
ns=${NS:-1 10}
owners=${OWNERS:-1000}
repeat=${REPEAT:-1}
warmup=${WARMUP:-20}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -n ${bin:-} ]] || { echo "PostgreSQL is not installed" >&2; exit 1; }

url=${1:-}
if [[ -z $url ]]; then
	dir=$(mktemp -d /tmp/yolda-pgbench.XXXXXX)
	trap '"$root/scripts/postgres-test-cluster.sh" stop "$dir" || true; rm -rf "$dir"' EXIT
	url=$("$root/scripts/postgres-test-cluster.sh" start "$dir")
fi
bench_url=${url/\/yolda\?//yolda_bench?}
[[ $bench_url != "$url" ]] || { echo "URL must end in /yolda?...: $url" >&2; exit 1; }

reset_db() {
	export PGOPTIONS="-c client_min_messages=warning"
	"$bin/psql" "$url" -Xq -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS yolda_bench' -c 'CREATE DATABASE yolda_bench'
	"$bin/psql" "$bench_url" -Xq -v ON_ERROR_STOP=1 -f "$root/internal/store/postgres/migrations/0001_init.sql"
	"$bin/psql" "$bench_url" -Xq -v ON_ERROR_STOP=1 -v owners="$owners" -f "$here/setup.sql"
	# Seed 20,000 requests and ANALYZE: in a never-analyzed table the
	# foreign-key checks of request_timeline get a cached sequential-scan
	# plan on requests that stays until autovacuum's ANALYZE, which made the
	# first 10-15 s of a run on a fresh database several times slower.
	"$bin/pgbench" "$bench_url" -n -M prepared -c 4 -j 2 -t 500 -D n=10 -D owners="$owners" \
		-f "$here/requests_cte.sql" >/dev/null 2>&1
	"$bin/psql" "$bench_url" -Xq -c 'VACUUM ANALYZE'
	"$bin/psql" "$url" -Xq -c CHECKPOINT
}

if ((warmup > 0)); then
	reset_db
	"$bin/pgbench" "$bench_url" -n -M prepared -c 16 -j 2 -T "$warmup" -D n=10 -D owners="$owners" \
		-f "$here/requests_cte.sql" >/dev/null 2>&1
fi

echo "# $("$bin/postgres" --version), $(nproc) cores; fsync=$("$bin/psql" "$url" -XAtc 'show fsync'), synchronous_commit=$("$bin/psql" "$url" -XAtc 'show synchronous_commit'); ${duration}s per run"
printf '%-14s %3s %8s %10s %14s %12s\n' script n clients tx/s requests/s latency_ms
for script in $scripts; do
	for n in $ns; do
		for c in $clients; do
			for _ in $(seq 1 "$repeat"); do
				reset_db
				out=$("$bin/pgbench" "$bench_url" -n -M prepared -c "$c" -j 2 -T "$duration" \
					-D n="$n" -D owners="$owners" -f "$here/$script.sql" 2>&1) || { echo "$out" >&2; exit 1; }
				tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")
				lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
				failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
				[[ ${failed:-0} == 0 ]] || { echo "$out" >&2; echo "failed transactions" >&2; exit 1; }
				printf '%-14s %3s %8s %10.0f %14.0f %12s\n' "$script" "$n" "$c" "$tps" "$(awk -v t="$tps" -v n="$n" 'BEGIN{print t*n}')" "$lat"
			done
		done
	done
done
