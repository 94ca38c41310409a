#!/usr/bin/env bash
# A throwaway redis-server for tests, CI and benchmarks.
#
#   scripts/redis-test-server.sh start DIR   # prints the URL on stdout
#   scripts/redis-test-server.sh stop DIR
#
# start installs redis-server with apt-get when it is missing, starts it on
# a free TCP port of 127.0.0.1 with no persistence (tests own their keys),
# and prints redis://127.0.0.1:PORT/0. Everything else goes to stderr; the
# server log is DIR/redis.log.
set -euo pipefail

log() { printf 'redis-test-server: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 start|stop DIR"
cmd=$1
dir=$2

case $cmd in
start)
	if ! command -v redis-server >/dev/null 2>&1; then
		log "installing redis-server"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq --no-install-recommends redis-server >&2
	fi
	mkdir -p "$dir"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
		--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" >&2
	for _ in $(seq 1 100); do
		if redis-cli -p "$port" ping >/dev/null 2>&1; then
			echo "redis://127.0.0.1:$port/0"
			exit 0
		fi
		sleep 0.1
	done
	die "redis-server did not answer on port $port (see $dir/redis.log)"
	;;
stop)
	if [[ -f $dir/redis.pid ]]; then
		kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
		rm -f "$dir/redis.pid"
	fi
	;;
*)
	die "usage: $0 start|stop DIR"
	;;
esac
