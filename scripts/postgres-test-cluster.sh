#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, CI and benchmarks.
#
#   scripts/postgres-test-cluster.sh start DIR   # prints the URL on stdout
#   scripts/postgres-test-cluster.sh url DIR     # URL of a running cluster
#   scripts/postgres-test-cluster.sh stop DIR
#
# start installs PostgreSQL with apt-get when no initdb is found, creates a
# cluster in DIR/data (once), starts it on a free TCP port of 127.0.0.1 with
# its unix socket in DIR/sock, and prints
#   postgres://yolda@127.0.0.1:PORT/yolda?sslmode=disable
# The superuser `yolda` logs in without a password (trust, loopback only).
# Durability stays as in production (fsync on, synchronous_commit on).
# Everything else goes to stderr; the server log is DIR/postgres.log.
# Run as root, the server runs as the `postgres` OS user; run as anyone
# else, it runs as that user. start on a running cluster only prints its
# URL; stop on a stopped one does nothing.
set -euo pipefail

log() { printf 'postgres-test-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() { die "usage: $0 start|stop|url DIR"; }

[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2

find_bin() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	if [[ -n $d && -x $d/initdb ]]; then
		echo "$d"
		return 0
	fi
	if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
		pg_config --bindir
		return 0
	fi
	return 1
}

install_postgres() {
	[[ $EUID -eq 0 ]] || die "PostgreSQL is not installed and we are not root: install the postgresql package"
	command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is missing"
	log "installing PostgreSQL with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >&2
}

# as_pg runs a command as the user that owns the cluster.
as_pg() {
	if [[ $EUID -eq 0 ]]; then
		(cd "$dir" && runuser -u postgres -- "$@")
	else
		(cd "$dir" && "$@")
	fi
}

running() {
	[[ -f $dir/data/postmaster.pid ]] && as_pg "$bin/pg_ctl" status -D "$dir/data" >/dev/null 2>&1
}

url() { echo "postgres://yolda@127.0.0.1:$(cat "$dir/port")/yolda?sslmode=disable"; }

port_in_use() {
	# Anything answering on the port, or a stale socket file of ours.
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
	[[ -e $dir/sock/.s.PGSQL.$1 ]]
}

pick_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		port_in_use "$p" || { echo "$p"; return 0; }
	done
	die "no free port found"
}

start() {
	if ! bin=$(find_bin); then
		install_postgres
		bin=$(find_bin) || die "initdb still not found after installing postgresql"
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [[ $EUID -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "no postgres OS user (is the postgresql package installed?)"
		chown postgres: "$dir"
		chmod 0700 "$dir"
		runuser -u postgres -- test -x "$dir" ||
			die "$dir is not reachable by the postgres user: choose a DIR whose parents others may enter (e.g. under /tmp)"
	fi

	if running; then
		log "already running"
		url
		return 0
	fi

	if [[ ! -f $dir/data/PG_VERSION ]]; then
		log "creating cluster in $dir/data with $bin"
		rm -rf "$dir/data"
		as_pg "$bin/initdb" -D "$dir/data" -U yolda --auth=trust -E UTF8 --locale=C.UTF-8 \
			--no-instructions >"$dir/initdb.log" 2>&1 || {
			cat "$dir/initdb.log" >&2
			die "initdb failed"
		}
		cat >>"$dir/data/postgresql.conf" <<-EOF

			# postgres-test-cluster.sh
			listen_addresses = '127.0.0.1'
			unix_socket_directories = '$dir/sock'
			max_connections = 200
			shared_buffers = 256MB
			# Keep WAL segments for reuse instead of creating (zero-filling,
			# fsyncing) new ones under load, and no checkpoint within a
			# benchmark run of a minute or so.
			min_wal_size = 2GB
			max_wal_size = 4GB
			checkpoint_timeout = 15min
			fsync = on
			synchronous_commit = on
			log_min_messages = warning
			log_line_prefix = '%m [%p] %q%u@%d '
			log_lock_waits = on
		EOF
	fi
	as_pg mkdir -p "$dir/sock"

	local port tries=0
	while :; do
		port=$(pick_port)
		echo "$port" >"$dir/port"
		log "starting on 127.0.0.1:$port"
		if as_pg "$bin/pg_ctl" start -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
			-o "-p $port" >&2; then
			break
		fi
		tries=$((tries + 1))
		if ((tries >= 5)); then
			tail -n 30 "$dir/postgres.log" >&2 || true
			die "could not start PostgreSQL"
		fi
		log "start failed (port taken?); trying another port"
	done

	for _ in $(seq 1 60); do
		"$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U yolda && break
		sleep 0.5
	done
	"$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U yolda || die "PostgreSQL does not answer"
	if [[ -z $("$bin/psql" -h 127.0.0.1 -p "$port" -U yolda -d postgres -XAtq \
		-c "SELECT 1 FROM pg_database WHERE datname = 'yolda'") ]]; then
		"$bin/psql" -h 127.0.0.1 -p "$port" -U yolda -d postgres -Xq -v ON_ERROR_STOP=1 \
			-c "CREATE DATABASE yolda" >&2
	fi
	log "ready"
	url
}

stop() {
	bin=$(find_bin) || { log "PostgreSQL is not installed; nothing to stop"; return 0; }
	[[ -d $dir ]] || { log "$dir does not exist; nothing to stop"; return 0; }
	dir=$(cd "$dir" && pwd)
	if running; then
		as_pg "$bin/pg_ctl" stop -D "$dir/data" -m fast -w -t 60 >&2
	else
		log "not running"
	fi
}

case $cmd in
start) start ;;
stop) stop ;;
url)
	bin=$(find_bin) || die "PostgreSQL is not installed"
	dir=$(cd "$dir" && pwd)
	running || die "not running"
	url
	;;
*) usage ;;
esac
