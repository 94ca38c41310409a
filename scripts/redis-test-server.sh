#!/usr/bin/env bash
# A throwaway Redis server for tests and CI.
#
#   scripts/redis-test-server.sh start DIR   # prints the URL on stdout
#   scripts/redis-test-server.sh url DIR     # URL of a running server
#   scripts/redis-test-server.sh stop DIR
#
# start installs redis-server with apt-get when it is missing, and starts
# it on a free TCP port of 127.0.0.1, with its pid file, log and working
# directory in DIR and no persistence (nothing is saved: a test server),
# and prints
#   redis://127.0.0.1:PORT
# Everything else goes to stderr; the server log is DIR/redis.log. Run as
# root, the server runs as the `redis` OS user; run as anyone else, it runs
# as that user. start on a running server only prints its URL; stop on a
# stopped one does nothing. Like postgres-test-cluster.sh.
set -euo pipefail

log() { printf 'redis-test-server: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() { die "usage: $0 start|stop|url DIR"; }

[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2

install_redis() {
	[[ $EUID -eq 0 ]] || die "redis-server is not installed and we are not root: install the redis-server package"
	command -v apt-get >/dev/null 2>&1 || die "redis-server is not installed and apt-get is missing"
	log "installing redis-server with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends redis-server >&2
	# The package starts a server on 6379 for the whole machine; tests
	# want their own.
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now redis-server >/dev/null 2>&1 || true
	fi
	service redis-server stop >/dev/null 2>&1 || true
}

# as_redis runs a command as the user that owns the server.
as_redis() {
	if [[ $EUID -eq 0 ]]; then
		(cd "$dir" && runuser -u redis -- "$@")
	else
		(cd "$dir" && "$@")
	fi
}

url() { echo "redis://127.0.0.1:$(cat "$dir/port")"; }

# ping sends PING to the port and expects PONG, with redis-cli when there
# is one, else over bash's /dev/tcp.
ping() {
	if command -v redis-cli >/dev/null 2>&1; then
		[[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]
		return
	fi
	local reply
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'PING\r\n' >&3
	read -r -t 2 reply <&3 || true
	exec 3<&- 3>&-
	[[ $reply == +PONG* ]]
}

running() {
	[[ -f $dir/redis.pid && -f $dir/port ]] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null && ping "$(cat "$dir/port")"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		port_in_use "$p" || { echo "$p"; return 0; }
	done
	die "no free port found"
}

start() {
	command -v redis-server >/dev/null 2>&1 || install_redis
	command -v redis-server >/dev/null 2>&1 || die "redis-server still not found after installing it"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [[ $EUID -eq 0 ]]; then
		id redis >/dev/null 2>&1 || die "no redis OS user (is the redis-server package installed?)"
		chown redis: "$dir"
		chmod 0700 "$dir"
		runuser -u redis -- test -x "$dir" ||
			die "$dir is not reachable by the redis user: choose a DIR whose parents others may enter (e.g. under /tmp)"
	fi

	if running; then
		log "already running"
		url
		return 0
	fi

	local port tries=0
	while :; do
		port=$(pick_port)
		echo "$port" >"$dir/port"
		log "starting on 127.0.0.1:$port"
		rm -f "$dir/redis.pid"
		if as_redis redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
			--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" \
			--save '' --appendonly no --databases 64 >&2; then
			for _ in $(seq 1 50); do
				ping "$port" && break
				sleep 0.1
			done
			ping "$port" && break
		fi
		tries=$((tries + 1))
		if ((tries >= 5)); then
			tail -n 30 "$dir/redis.log" >&2 || true
			die "could not start redis-server"
		fi
		log "start failed (port taken?); trying another port"
	done
	log "ready"
	url
}

stop() {
	[[ -d $dir ]] || { log "$dir does not exist; nothing to stop"; return 0; }
	dir=$(cd "$dir" && pwd)
	if [[ ! -f $dir/redis.pid ]] || ! kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
		log "not running"
		return 0
	fi
	local pid
	pid=$(cat "$dir/redis.pid")
	kill "$pid"
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	die "redis-server (pid $pid) did not stop"
}

case $cmd in
start) start ;;
stop) stop ;;
url)
	dir=$(cd "$dir" && pwd)
	running || die "not running"
	url
	;;
*) usage ;;
esac
