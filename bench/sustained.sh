#!/usr/bin/env bash
# End to end, sustained: the highest intake rate at which every consumer
# keeps up (`yolda bench pipeline`), for each configuration below. Open-loop
# load at a constant rate, STEP per step, stepping up 1k, 2k, 3k, 4k, 5k,
# 6k, 8k, 10k, 12k requests/s, then bisecting between the last step that
# held and the first that failed. A step holds when every consumer's lag
# p99 stays under 1 s, no backlog grows (outbox, each consumer's pending
# messages: last third of the step against the first), under 0.1 % of
# arrivals are not accepted and, when the build has the dispatch role, the
# first offer of 99 % of requests comes within 1 s, with DRIVERS drivers
# online over İstanbul.
#
#   bench/sustained.sh [STEP]                 # default 60s per step
#   CONFIGS=sqlite bench/sustained.sh 10s     # one configuration, a smoke run
#
# Configurations (CONFIGS, default sqlite postgres postgres-split):
#   sqlite          every role in one process, SQLite, embedded broker
#   postgres        every role in one process, PostgreSQL, embedded broker
#   postgres-split  api+relay in one process, the workers in another,
#                   PostgreSQL, an external nats-server (two processes
#                   cannot share an embedded broker) and, with drivers, the
#                   Redis position index (two processes cannot share the
#                   in-process one)
#   sqlite-backbone, postgres-backbone
#                   the backbone alone (api, relay, notify, insurance in one
#                   process): what intake, the outbox, the broker and the
#                   batched consumers sustain before dispatch, realtime and
#                   the warehouse add their work
#
# Insurers: one mock insurer (`yolda mock-insurer`, MOCK_LATENCY, default
# 30ms ± 20ms) answers for the three insurer codes the requests name, so
# every request's policy check is a real HTTP call behind the breakers; its
# CPU is not the server's (it shows under the others' CPU). INSURERS=0
# runs without an insurers file (every request straight to manual review).
#
# Other settings: PORT_BASE (18290), RATES (comma-separated), BISECT (2),
# RESOLUTION (500 requests/s: bisection stops when held and failed are
# this close), DRIVERS (10000 if
# the build has the dispatch role, else 0), REDIS_URL
# (redis://127.0.0.1:6390/13; its database is flushed), OUT (where the
# logs, the output and, with PROFILE=1, CPU profiles of the middle third
# of each step go; default a new directory under /tmp).
#
# PostgreSQL is a throwaway cluster of this script's own
# (scripts/postgres-test-cluster.sh), so that its processes' CPU and PSS are
# this benchmark's alone. Only the processes this script starts are
# stopped, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
# Ports: PORT_BASE and the nine after it (two runs at once need two bases).
port=${PORT_BASE:-18290}
step=${1:-60s}
configs=${CONFIGS:-sqlite postgres postgres-split}
rates=${RATES:-1000,2000,3000,4000,5000,6000,8000,10000,12000}
bisect=${BISECT:-2}
resolution=${RESOLUTION:-500}
redis_url=${REDIS_URL:-redis://127.0.0.1:6390/13}
out=${OUT:-$(mktemp -d /tmp/yolda-sustained.XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d)
chmod 755 "$work" # the PostgreSQL cluster inside runs as the postgres user

started=() # pids of every process this script started
stop_started() {
	local pid
	for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
	started=()
}
cleanup() {
	stop_started
	[ -n "${started_mock:-}" ] && kill "$started_mock" 2>/dev/null
	scripts/postgres-test-cluster.sh stop "$work/pg" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/yolda" ./cmd/yolda
roles=$("$work/yolda" serve --help 2>&1 | awk '/^Roles/{on=1; next} on && /^  [a-z]/{print $1} on && !/^  /{on=0}')
worker_roles=$(grep -vxE 'api|relay' <<<"$roles" | paste -sd, -)
has_dispatch=$(grep -qx dispatch <<<"$roles" && echo 1 || echo 0)
drivers=${DRIVERS:-$([ "$has_dispatch" = 1 ] && echo 10000 || echo 0)}
if [[ " $configs " == *" postgres"* ]]; then
	pg_url=$(scripts/postgres-test-cluster.sh start "$work/pg")
	pg_pid=$(head -1 "$work/pg/data/postmaster.pid")
fi
if [[ " $configs " == *" postgres-split "* ]]; then
	go build -o "$work/nats-server" github.com/nats-io/nats-server/v2
fi
backbone_roles=api,relay,notify,insurance

if [ "${INSURERS:-1}" = 1 ]; then
	"$work/yolda" mock-insurer --addr 127.0.0.1:$((port + 8)) --latency "${MOCK_LATENCY:-30ms}" --jitter "${MOCK_JITTER:-20ms}" --seed 1 2>"$out/mock-insurer.log" &
	started_mock=$!
	for code in anadolu axa allianz; do
		printf '  - code: %s\n    name: %s\n    base_url: http://127.0.0.1:%s\n    timeout: 2s\n    bulkhead: 512\n' "$code" "$code" $((port + 8))
	done | sed '1i insurers:' >"$work/insurers.yaml"
	export YOLDA_INSURERS_FILE="$work/insurers.yaml"
fi

# The server's settings: limits off (one address sends everything), and,
# for dispatch, drivers that never answer: an offer expires after 1 s and
# the request, in one round, becomes unfulfilled, so 10,000 drivers serve
# an unbounded stream of requests (each holds a driver for about a second).
# Positions are reported once, so they must stay fresh for the whole run.
export YOLDA_RATE_LIMIT_USER=0 YOLDA_RATE_LIMIT_IP=0 YOLDA_MAX_IN_FLIGHT=0 YOLDA_MAX_CONNS_PER_IP=0 YOLDA_LOG_LEVEL=warn
export YOLDA_JWT_SECRET=sustained-benchmark-secret-0123456789abcdef
export YOLDA_OFFER_TIMEOUT=1s YOLDA_DISPATCH_RADII_KM=10 YOLDA_DRIVER_STALE_AFTER=1h
api=127.0.0.1:$((port + 0))

wait_ready() { # host:port log
	for _ in $(seq 300); do curl -sf "http://$1/readyz" >/dev/null && return; sleep 0.2; done
	echo "no answer on $1" >&2; cat "$2" >&2; exit 1
}

{
	echo "# yolda bench pipeline, $(date -u +%FT%TZ), $(nproc) cores, step $step, drivers $drivers, rev $(git rev-parse --short HEAD)"
	echo "# roles of this build: $(paste -sd, - <<<"$roles")"
} | tee "$out/summary.md"

for config in $configs; do
	data="$work/$config"
	mkdir -p "$data"
	env_db=()
	config_drivers=$drivers
	case $config in
	*-backbone) config_drivers=0 ;;
	esac
	case $config in
	sqlite | sqlite-backbone) ;;
	postgres | postgres-split | postgres-backbone)
		schema=s_${config//-/_}
		psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" >/dev/null
		env_db=(YOLDA_DATABASE_URL="${pg_url}&search_path=$schema")
		;;
	*) echo "unknown configuration $config" >&2; exit 2 ;;
	esac
	env "${env_db[@]}" YOLDA_DATA_DIR="$data" "$work/yolda" users add --role customer --username bench --password bench-password >/dev/null

	bench_args=(-label "$config" -url "http://$api" -step "$step" -rates "$rates" -bisect "$bisect" -resolution "$resolution" -drivers "$config_drivers" -data-dir "$data")
	[ "${PROFILE:-0}" = 1 ] && bench_args+=(-profile-dir "$out")
	case $config in
	sqlite | postgres | sqlite-backbone | postgres-backbone)
		config_roles=all
		[[ $config == *-backbone ]] && config_roles=$backbone_roles
		env "${env_db[@]}" YOLDA_DATA_DIR="$data" YOLDA_ROLES=$config_roles YOLDA_PPROF_ADDR=127.0.0.1:$((port + 3)) \
			"$work/yolda" serve --http-addr "$api" --ops-addr 127.0.0.1:$((port + 1)) 2>"$out/$config.log" &
		started+=($!)
		wait_ready "$api" "$out/$config.log"
		bench_args+=(-ops-urls 127.0.0.1:$((port + 1)) -pprof-urls 127.0.0.1:$((port + 3)) -server-pids "${started[-1]}")
		;;
	postgres-split)
		mkdir -p "$work/nats"
		"$work/nats-server" -js -sd "$work/nats" -a 127.0.0.1 -p $((port + 9)) 2>"$out/nats.log" &
		started+=($!)
		nats_pid=$!
		for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$((port + 9))) 2>/dev/null && break; sleep 0.2; done
		env_split=(YOLDA_NATS_URL=nats://127.0.0.1:$((port + 9)))
		if [ "$config_drivers" -gt 0 ]; then
			redis-cli -u "$redis_url" FLUSHDB >/dev/null
			env_split+=(YOLDA_REDIS_URL="$redis_url")
		fi
		env "${env_db[@]}" "${env_split[@]}" YOLDA_DATA_DIR="$data" YOLDA_ROLES=api,relay YOLDA_PPROF_ADDR=127.0.0.1:$((port + 3)) \
			"$work/yolda" serve --http-addr "$api" --ops-addr 127.0.0.1:$((port + 1)) 2>"$out/$config-api.log" &
		started+=($!)
		api_pid=$!
		wait_ready "$api" "$out/$config-api.log"
		mkdir -p "$data/workers"
		env "${env_db[@]}" "${env_split[@]}" YOLDA_DATA_DIR="$data/workers" YOLDA_ROLES="$worker_roles" YOLDA_PPROF_ADDR=127.0.0.1:$((port + 4)) \
			"$work/yolda" serve --http-addr 127.0.0.1:$((port + 5)) --ops-addr 127.0.0.1:$((port + 2)) 2>"$out/$config-workers.log" &
		started+=($!)
		workers_pid=$!
		wait_ready 127.0.0.1:$((port + 2)) "$out/$config-workers.log"
		bench_args+=(-ops-urls 127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2)) -pprof-urls 127.0.0.1:$((port + 3)),127.0.0.1:$((port + 4))
			-server-pids "$api_pid,$workers_pid,$nats_pid")
		;;
	esac
	[ -n "${env_db[*]}" ] && bench_args+=(-database-url "${pg_url}&search_path=$schema" -postgres-pid "$pg_pid")

	echo "== $config: load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/summary.md"
	"$work/yolda" bench pipeline "${bench_args[@]}" | tee "$out/$config.out"
	sed -n '/^Steps:/,$p' "$out/$config.out" >>"$out/summary.md"
	stop_started
done
echo "output in $out (summary.md: the tables)"
