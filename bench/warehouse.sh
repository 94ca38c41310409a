#!/usr/bin/env bash
# Warehouse benchmark: synthetic request facts loaded into DuckDB and the
# PostgreSQL warehouse, every report's query time cold and warm, the same
# reports as plain SQL on the operational PostgreSQL schema holding the same
# requests, and the loader's lag at a steady live event rate.
#
#   bench/warehouse.sh [ROWS]        # default 10000000
#
# PostgreSQL: $PG_URL, else $YOLDA_TEST_POSTGRES_URL, else a throwaway
# cluster (scripts/postgres-test-cluster.sh). Two schemas are made in it
# for the run (warehouse and operational) and dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-10000000}
work=$(mktemp -d)
pg_url=${PG_URL:-${YOLDA_TEST_POSTGRES_URL:-}}
suffix=$$
cleanup() {
	if [ -n "$pg_url" ]; then
		psql "$pg_url" -qc "DROP SCHEMA IF EXISTS bench_wh_$suffix CASCADE; DROP SCHEMA IF EXISTS bench_op_$suffix CASCADE" >/dev/null 2>&1 || true
	fi
	scripts/postgres-test-cluster.sh stop "$work/pg" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
if [ -z "$pg_url" ]; then
	pg_url=$(scripts/postgres-test-cluster.sh start "$work/pg")
fi
with_schema() { # URL SCHEMA -> URL with search_path
	case "$1" in
	*\?*) echo "$1&search_path=$2" ;;
	*) echo "$1?search_path=$2" ;;
	esac
}
psql "$pg_url" -qc "CREATE SCHEMA bench_wh_$suffix; CREATE SCHEMA bench_op_$suffix"
go build -o "$work/yolda" ./cmd/yolda
"$work/yolda" bench warehouse --rows "$rows" --warm 3 --engines duckdb,postgres --duckdb-file "$work/warehouse.duckdb" \
	--postgres-url "$(with_schema "$pg_url" "bench_wh_$suffix")" --operational-url "$(with_schema "$pg_url" "bench_op_$suffix")"
"$work/yolda" bench warehouse --engines duckdb --lag-rate 1000 --lag-duration 60s
