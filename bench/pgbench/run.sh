#!/usr/bin/env bash
# PostgreSQL's own ceiling for one request's rows, without Yolda in the way.
#
#   bench/pgbench/run.sh [URL]
#
# With no URL it starts a throwaway cluster (scripts/postgres-test-cluster.sh)
# and stops it at the end. Each run gets a fresh database `yolda_bench` with
# the real schema (internal/store/postgres/migrations) and OWNERS customers,
# then a CHECKPOINT, so runs do not inherit each other's tables or dirty
# pages. Durability is the server's default: fsync on, synchronous_commit on.
#
# Environment: DURATION (s, default 30), CLIENTS ("16 64"), SCRIPTS
# ("requests_tx requests_cte"), NS ("1 10"), OWNERS (1000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
duration=${DURATION:-30}
clients=${CLIENTS:-16 64}
scripts=${SCRIPTS:-requests_tx requests_cte}
ns=${NS:-1 10}
owners=${OWNERS:-1000}

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
	"$bin/psql" "$url" -Xq -c CHECKPOINT
}

echo "# $("$bin/postgres" --version), $(nproc) cores; fsync=$("$bin/psql" "$url" -XAtc 'show fsync'), synchronous_commit=$("$bin/psql" "$url" -XAtc 'show synchronous_commit'); ${duration}s per run"
printf '%-14s %3s %8s %10s %14s %12s\n' script n clients tx/s requests/s latency_ms
for script in $scripts; do
	for n in $ns; do
		for c in $clients; do
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
