#!/usr/bin/env bash
# The whole Yolda topology on one machine, everything under DIR:
#
#   deploy/local/cluster.sh up DIR       # prints the Nginx base URL last
#   deploy/local/cluster.sh status DIR
#   deploy/local/cluster.sh down DIR
#   deploy/local/cluster.sh kill DIR NAME     # SIGKILL one process (api-1, nats-2, redis, ...)
#   deploy/local/cluster.sh start DIR NAME    # start it again
#   deploy/local/cluster.sh pid DIR NAME
#
# up starts PostgreSQL (scripts/postgres-test-cluster.sh), Redis
# (scripts/redis-test-server.sh), a 3-node NATS JetStream cluster
# (nats-server built from the module go.mod pins, or $NATS_SERVER), a mock
# insurer, the yolda processes of deploy/local/roles.txt (or
# $YOLDA_CLUSTER_ROLES) that the binary has, and Nginx with
# deploy/nginx/yolda.conf rendered into DIR/nginx (TLS with a self-signed
# certificate made here, HTTP/2). Missing Debian packages (postgresql,
# redis-server, nginx, openssl, curl) are installed with apt-get. The
# yolda binary is $YOLDA_BIN, or built from this repository into DIR/bin.
#
# Every process's pid is in DIR/pids/NAME.pid, its log in DIR/logs, its
# start command in DIR/run/NAME.sh; DIR/cluster.env holds the addresses
# (NGINX_URL, API_ADDRS, OPS_ADDRS, NATS_URLS, REDIS_URL, DATABASE_URL,
# JWT_SECRET) for scripts and tests. Nginx runs as root with its own
# config and pid file under DIR; the machine's nginx is left alone.
#
# Tunables (environment): YOLDA_EDGE_API_RATE/BURST (default 500r/s, 1000),
# YOLDA_EDGE_LOGIN_RATE/BURST (5, 20), YOLDA_EDGE_WS_RATE/BURST (200,
# 2000), YOLDA_EDGE_CONNS_PER_IP (10000), YOLDA_EDGE_PORT (free port), and
# any YOLDA_* setting, passed to every yolda process.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
usage() { die "usage: $0 up|down|status DIR | kill|start|pid DIR NAME"; }

[[ $# -ge 2 ]] || usage
cmd=$1
dir=$2
name=${3:-}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Run as root, the servers run as their own users (postgres, redis,
# www-data) and must be able to enter DIR.
[[ $EUID -ne 0 ]] || chmod 0755 "$dir"

need_pkg() { # need_pkg COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 && return 0
	[[ -x /usr/sbin/$1 ]] && return 0
	[[ $EUID -eq 0 ]] || die "$1 is missing and we are not root: install the $2 package"
	log "installing $2 with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	if [[ ! -f $dir/.apt-updated ]]; then apt-get update -qq >&2 && touch "$dir/.apt-updated"; fi
	apt-get install -y -qq --no-install-recommends "$2" >&2
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# free_port VAR: sets VAR to a port nothing listens on and this run has
# not handed out (not in a subshell: the list must outlive the call).
taken_ports=" "
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((10000 + RANDOM % 22000)) # below the ephemeral range (32768-): outbound sockets take those
		[[ $taken_ports == *" $p "* ]] && continue
		port_in_use "$p" && continue
		taken_ports+="$p "
		printf -v "$1" '%s' "$p"
		return 0
	done
	die "no free port"
}

alive() { [[ -f $dir/pids/$1.pid ]] && kill -0 "$(cat "$dir/pids/$1.pid")" 2>/dev/null; }

# launch NAME: runs DIR/run/NAME.sh detached, its pid into DIR/pids.
launch() {
	local n=$1
	alive "$n" && { log "$n already running"; return 0; }
	setsid bash "$dir/run/$n.sh" </dev/null >>"$dir/logs/$n.log" 2>&1 &
	echo $! >"$dir/pids/$n.pid"
}

wait_http() { # wait_http URL SECONDS
	local deadline=$((SECONDS + $2))
	until curl -fsk -o /dev/null "$1"; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

yolda_roles() { "$YOLDA" serve --help 2>&1 | awk '/^Roles/{on=1; next} on && /^  [a-z]/{print $1}'; }

build_yolda() {
	if [[ -n ${YOLDA_BIN:-} ]]; then YOLDA=$YOLDA_BIN; return; fi
	YOLDA=$dir/bin/yolda
	if [[ ! -x $YOLDA || -n $(find "$repo/cmd" "$repo/internal" -name '*.go' -newer "$YOLDA" -print -quit) ]]; then
		log "building yolda into $YOLDA"
		(cd "$repo" && go build -o "$YOLDA" ./cmd/yolda)
	fi
}

build_nats() {
	if [[ -n ${NATS_SERVER:-} ]]; then NATS=$NATS_SERVER; return; fi
	NATS=$dir/bin/nats-server
	[[ -x $NATS ]] && return
	if command -v go >/dev/null 2>&1; then
		log "building nats-server (the version go.mod pins) into $NATS"
		(cd "$repo" && go build -o "$NATS" github.com/nats-io/nats-server/v2)
	else
		need_pkg nats-server nats-server
		NATS=$(command -v nats-server)
	fi
}

# script NAME CMD...: the start command of a process, kept for restarts.
script() {
	local n=$1
	shift
	{
		echo '#!/usr/bin/env bash'
		echo "cd $(printf %q "$dir")"
		printf 'exec'
		printf ' %q' "$@"
		echo
	} >"$dir/run/$n.sh"
}

up() {
	mkdir -p "$dir"/{bin,pids,logs,run,nats,yolda,nginx/tmp,nginx/tls,nginx/cache}
	for p in curl:curl openssl:openssl nginx:nginx; do need_pkg "${p%%:*}" "${p##*:}"; done
	build_yolda
	build_nats

	# PostgreSQL and Redis, through the scripts the tests use.
	local db redis
	db=$("$repo/scripts/postgres-test-cluster.sh" start "$dir/pg")
	redis=$("$repo/scripts/redis-test-server.sh" start "$dir/redis")/0
	ln -sf "$dir/pg/postgres.log" "$dir/logs/postgres.log"
	ln -sf "$dir/redis/redis.log" "$dir/logs/redis.log"
	[[ -f $dir/secret ]] || head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$dir/secret"

	# NATS: three nodes, one JetStream cluster.
	local -a nport cport hport
	local urls="" routes i
	for i in 1 2 3; do free_port "nport[$i]"; free_port "cport[$i]"; free_port "hport[$i]"; done
	for i in 1 2 3; do
		routes=""
		for j in 1 2 3; do [[ $j != "$i" ]] && routes+="\"nats-route://127.0.0.1:${cport[j]}\", "; done
		mkdir -p "$dir/nats/n$i"
		cat >"$dir/nats/n$i.conf" <<-CONF
			server_name: "n$i"
			listen: "127.0.0.1:${nport[i]}"
			http: "127.0.0.1:${hport[i]}"
			jetstream { store_dir: "$dir/nats/n$i" }
			cluster { name: "yolda", listen: "127.0.0.1:${cport[i]}", routes: [${routes%, }] }
		CONF
		script "nats-$i" "$NATS" -c "$dir/nats/n$i.conf"
		urls+="nats://127.0.0.1:${nport[i]},"
	done
	urls=${urls%,}
	for i in 1 2 3; do launch "nats-$i"; done
	for i in 1 2 3; do wait_http "http://127.0.0.1:${hport[i]}/healthz" 30 || die "nats-$i did not start (see $dir/logs/nats-$i.log)"; done
	# JetStream answers once the cluster has elected its meta leader.
	local deadline=$((SECONDS + 60))
	until curl -fs "http://127.0.0.1:${hport[1]}/jsz" | grep -q '"leader": *"n[123]"'; do
		((SECONDS < deadline)) || die "the NATS cluster elected no JetStream leader (see $dir/logs/nats-*.log)"
		sleep 0.2
	done

	# The mock insurer and the insurers file.
	local mport
	free_port mport
	script insurer "$YOLDA" mock-insurer --addr "127.0.0.1:$mport"
	launch insurer
	cat >"$dir/insurers.yaml" <<-YAML
		insurers:
		  - code: anadolu
		    name: Anadolu Sigorta
		    base_url: http://127.0.0.1:$mport
	YAML

	local common=(env YOLDA_DATABASE_URL="$db" YOLDA_NATS_URL="$urls" YOLDA_REDIS_URL="$redis"
		YOLDA_JWT_SECRET="$(cat "$dir/secret")" YOLDA_INSURERS_FILE="$dir/insurers.yaml"
		YOLDA_TRUSTED_PROXIES=127.0.0.1/32 YOLDA_LOG_FORMAT=json)
	# Settings given to this script go to every process.
	while IFS='=' read -r k v; do
		case $k in YOLDA_BIN | YOLDA_CLUSTER_ROLES | YOLDA_EDGE_*) ;; YOLDA_*) common+=("$k=$v") ;; esac
	done < <(env)

	"${common[@]}" "$YOLDA" migrate >>"$dir/logs/migrate.log" 2>&1 || die "migrate failed (see $dir/logs/migrate.log)"

	# The warehouse listens where the api processes forward reports.
	local reports_port=""
	if grep -Eq '^[a-z]+ +1 +reports' "${YOLDA_CLUSTER_ROLES:-$here/roles.txt}" && [[ " $(yolda_roles | tr '\n' ' ') " == *" warehouse "* ]]; then
		free_port reports_port
		common+=(YOLDA_REPORTS_URL="http://127.0.0.1:$reports_port")
	fi
	local first="" have role count listens api_servers="" rt_servers="" api_addrs="" ops_addrs="" hp op n
	have=" $(yolda_roles | tr '\n' ' ') "
	while read -r role count listens; do
		[[ -z $role || $role == \#* ]] && continue
		if [[ $have != *" $role "* ]]; then
			log "role $role: this yolda binary does not have it (skipped)"
			continue
		fi
		for i in $(seq 1 "$count"); do
			n=$role-$i
			free_port op
			local args=("${common[@]}" YOLDA_ROLES="$role" YOLDA_DATA_DIR="$dir/yolda/$n" YOLDA_OPS_ADDR="127.0.0.1:$op")
			if [[ $listens == reports && -n $reports_port ]]; then
				args+=(YOLDA_HTTP_ADDR="127.0.0.1:$reports_port")
			fi
			if [[ $listens == http ]]; then
				free_port hp
				args+=(YOLDA_HTTP_ADDR="127.0.0.1:$hp")
				if [[ $role == realtime ]]; then
					rt_servers+="        server 127.0.0.1:$hp max_fails=1 fail_timeout=3s;"$'\n'
				else
					api_servers+="        server 127.0.0.1:$hp max_fails=1 fail_timeout=3s;"$'\n'
					api_addrs+="127.0.0.1:$hp,"
				fi
			fi
			# (Made here: the warehouse opens its DuckDB file in it before
			# yolda creates the directory.)
			mkdir -p "$dir/yolda/$n"
			script "$n" "${args[@]}" "$YOLDA" serve
			ops_addrs+="$n=127.0.0.1:$op,"
			launch "$n"
			# The first process declares the streams; the others start
			# once it has (many declaring at once on a cluster just
			# formed only wait on each other).
			if [[ -z ${first:-} ]]; then
				first=$n
				wait_http "http://127.0.0.1:$op/readyz" 90 || die "$n is not ready (see $dir/logs/$n.log)"
			fi
		done
	done <"${YOLDA_CLUSTER_ROLES:-$here/roles.txt}"
	[[ -n $api_servers ]] || die "no api process: the topology needs the api role"
	# Without a realtime role the WebSocket goes to the api processes.
	[[ -n $rt_servers ]] || rt_servers=$api_servers

	for entry in ${ops_addrs//,/ }; do
		n=${entry%%=*}
		wait_http "http://${entry#*=}/readyz" 60 || die "$n is not ready (see $dir/logs/$n.log)"
	done

	# Nginx.
	local eport cert=$dir/nginx/tls/cert.pem key=$dir/nginx/tls/key.pem user_line=""
	if [[ -n ${YOLDA_EDGE_PORT:-} ]]; then eport=$YOLDA_EDGE_PORT; else free_port eport; fi
	if [[ ! -f $cert ]]; then
		openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
			-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$key" -out "$cert" 2>/dev/null
	fi
	if [[ $EUID -eq 0 ]]; then
		# Workers drop root; they read the certificate and write the
		# cache and temp files under DIR.
		user_line="user www-data;"
		id www-data >/dev/null 2>&1 || user_line="user nobody nogroup;"
		chmod 0755 "$dir" "$dir/nginx" "$dir/nginx/tls"
		chmod 0644 "$cert" "$key"
		chown -R "${user_line#user }" "$dir/nginx/tmp" "$dir/nginx/cache" 2>/dev/null || chown -R "$(echo "${user_line#user }" | tr -d ';' | cut -d' ' -f1)" "$dir/nginx/tmp" "$dir/nginx/cache"
	fi
	local mime=/etc/nginx/mime.types
	[[ -f $mime ]] || mime=$dir/nginx/mime.types && touch "$mime"
	sed -e "s|@DIR@|$dir/nginx|g" -e "s|@LISTEN@|127.0.0.1:$eport|g" -e "s|@CERT@|$cert|g" -e "s|@KEY@|$key|g" \
		-e "s|@USER_LINE@|$user_line|g" -e "s|@MIME_TYPES@|$mime|g" -e "s|@WORKERS@|${YOLDA_EDGE_WORKERS:-2}|g" \
		-e "s|@API_RATE@|${YOLDA_EDGE_API_RATE:-500}|g" -e "s|@API_BURST@|${YOLDA_EDGE_API_BURST:-1000}|g" \
		-e "s|@LOGIN_RATE@|${YOLDA_EDGE_LOGIN_RATE:-5}|g" -e "s|@LOGIN_BURST@|${YOLDA_EDGE_LOGIN_BURST:-20}|g" \
		-e "s|@WS_RATE@|${YOLDA_EDGE_WS_RATE:-200}|g" -e "s|@WS_BURST@|${YOLDA_EDGE_WS_BURST:-2000}|g" \
		-e "s|@CONNS_PER_IP@|${YOLDA_EDGE_CONNS_PER_IP:-10000}|g" \
		"$repo/deploy/nginx/yolda.conf" >"$dir/nginx/nginx.conf.tmp"
	awk -v api="$api_servers" -v rt="$rt_servers" '
		/^@API_SERVERS@$/ {printf "%s", api; next}
		/^@REALTIME_SERVERS@$/ {printf "%s", rt; next}
		{print}' "$dir/nginx/nginx.conf.tmp" >"$dir/nginx/nginx.conf"
	rm "$dir/nginx/nginx.conf.tmp"
	local nginx
	nginx=$(command -v nginx || echo /usr/sbin/nginx)
	"$nginx" -t -q -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" >&2 || die "nginx -t failed"
	if [[ -f $dir/nginx/nginx.pid ]] && kill -0 "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null; then
		"$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" -s reload
	else
		"$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log"
	fi
	ln -sf "$dir/nginx/nginx.pid" "$dir/pids/nginx.pid"
	script nginx "$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" -g "daemon off;"
	local base=https://127.0.0.1:$eport
	wait_http "$base/healthz" 30 || die "nginx does not answer on $base"

	cat >"$dir/cluster.env" <<-ENV
		NGINX_URL=$base
		NGINX_CERT=$cert
		API_ADDRS=${api_addrs%,}
		OPS_ADDRS=${ops_addrs%,}
		NATS_URLS=$urls
		NATS_MONITOR=http://127.0.0.1:${hport[1]},http://127.0.0.1:${hport[2]},http://127.0.0.1:${hport[3]}
		REDIS_URL=$redis
		DATABASE_URL=$db
		JWT_SECRET=$(cat "$dir/secret")
		YOLDA=$YOLDA
	ENV
	log "up: $(ls "$dir/pids" | wc -l) processes; logs in $dir/logs"
	echo "$base"
}

names() { ls "$dir/pids" 2>/dev/null | sed 's/\.pid$//'; }

stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL after 25 s
	local pid=$1
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 250); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

down() {
	[[ -d $dir/pids ]] || { log "nothing runs in $dir"; return 0; }
	local nginx
	nginx=$(command -v nginx || echo /usr/sbin/nginx)
	if [[ -f $dir/nginx/nginx.pid ]] && kill -0 "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null; then
		"$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" -s quit || true
	fi
	# Clients' side first, the stores last.
	local n
	for group in 'api-|realtime-' 'dispatch-|insurance-|notify-|warehouse-' 'relay-' 'insurer' 'nats-'; do
		for n in $(names | grep -E "^($group)" || true); do
			alive "$n" && stop_pid "$(cat "$dir/pids/$n.pid")" &
		done
		wait
	done
	"$repo/scripts/redis-test-server.sh" stop "$dir/redis" || true
	"$repo/scripts/postgres-test-cluster.sh" stop "$dir/pg" || true
	log "down"
}

status() {
	local n state
	for n in $(names); do
		state=stopped
		alive "$n" && state="running (pid $(cat "$dir/pids/$n.pid"))"
		printf '%-12s %s\n' "$n" "$state"
	done
	if [[ -f $dir/redis/redis.pid ]] && kill -0 "$(cat "$dir/redis/redis.pid")" 2>/dev/null; then
		printf '%-12s running (pid %s)\n' redis "$(cat "$dir/redis/redis.pid")"
	else
		printf '%-12s stopped\n' redis
	fi
	printf '%-12s %s\n' postgres "$("$repo/scripts/postgres-test-cluster.sh" url "$dir/pg" 2>/dev/null || echo stopped)"
	[[ -f $dir/cluster.env ]] && grep '^NGINX_URL=' "$dir/cluster.env" | cut -d= -f2
}

pid_of() {
	case $1 in
	redis) cat "$dir/redis/redis.pid" ;;
	*) cat "$dir/pids/$1.pid" ;;
	esac
}

case $cmd in
up) up ;;
down) down ;;
status) status ;;
pid) [[ -n $name ]] || usage; pid_of "$name" ;;
kill)
	[[ -n $name ]] || usage
	kill -9 "$(pid_of "$name")"
	;;
start)
	[[ -n $name ]] || usage
	case $name in
	redis) "$repo/scripts/redis-test-server.sh" start "$dir/redis" >/dev/null ;;
	nginx) die "nginx: run up again" ;;
	*) launch "$name" ;;
	esac
	;;
*) usage ;;
esac
