#!/usr/bin/env bash
# mariadb.sh: throwaway MariaDB servers for Scale Stack's tests, examples and benchmarks.
#
# Every server this script starts lives entirely inside one directory (its "dir"): data, unix socket,
# pid file, config, passwords and an env file of shell `export` lines that tests read. It listens on
# 127.0.0.1 only, on a port derived from the dir (so reruns are deterministic and two worktrees do not
# collide), never on 3306, and it never touches the system's MariaDB service or /etc/mysql.
#
# Usage (run `scripts/mariadb.sh --help` for every option):
#   scripts/mariadb.sh deps [--sysbench] [--bench] [--toolchain] [--memcached]   install missing OS packages
#   scripts/mariadb.sh start [--dir DIR] [--port PORT] [--max-connections N] [--tuned-for-bench] [--reuse]
#   source "$(scripts/mariadb.sh env --path)"                       or: eval "$(scripts/mariadb.sh env)"
#   scripts/mariadb.sh status [--dir DIR]
#   scripts/mariadb.sh stop [--dir DIR] [--keep] [--crash]
#   scripts/mariadb.sh restart [--dir DIR]                           stop --keep, then start --reuse
#
# The default dir is .tmp/mariadb under the repository root (git-ignored); $SCALESTACK_MYSQL_DIR
# overrides it.
set -euo pipefail

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly SCRIPT_PATH REPO_ROOT

# Accounts created on every server. The test password is fixed on purpose: tests and humans type it.
readonly SERVICE_USER=scalestack_svc
readonly TEST_USER=test_native
readonly TEST_PASSWORD=scalestack-test
readonly TEST_ED25519_USER=test_ed25519
readonly TLS_USER=test_tls
readonly TEST_DATABASES=(scalestack_test sbtest)
# Marker that proves a directory was made by this script, so `stop` never deletes anything else.
readonly MARKER=.scalestack-mariadb

START_TIMEOUT_S=60
STOP_TIMEOUT_S=30

log() { printf '[mariadb.sh] %s\n' "$*" >&2; }
die() {
	printf '[mariadb.sh] error: %s\n' "$*" >&2
	exit 1
}

usage() {
	cat <<'EOF'
scripts/mariadb.sh: throwaway MariaDB servers for Scale Stack's tests and benchmarks.

Subcommands:
  deps [--sysbench] [--bench] [--toolchain] [--memcached]
      Install what is missing with apt-get (Debian): mariadb-server and mariadb-client always;
      --sysbench adds sysbench; --bench adds sysbench and haproxy; --toolchain adds gcc and
      libc6-dev (needed by `go test -race`); --memcached adds memcached, nutcracker (twemproxy)
      and libmemcached-tools (memccapable, memcaslap) for the memcache proxy's tests (their
      services stay stopped; tests start their own servers). Needs root (or password-less sudo).

  start [--dir DIR] [--port PORT] [--max-connections N] [--tuned-for-bench] [--reuse] [--tls]
      Start a private server in DIR (default: $SCALESTACK_MYSQL_DIR or <repo>/.tmp/mariadb), installing
      MariaDB first if it is missing. Idempotent: if that server already runs, it only prints its env.
      A DIR that holds a stopped server's data (see `stop --keep`) is restarted on the same port with
      the same data; --reuse makes that mandatory (fails if DIR holds no data). The port is the one
      given, else the one DIR used before, else a free one derived from DIR. Creates:
        root           root password in DIR/root.password (also DIR/root.cnf for `mariadb --defaults-file`)
        scalestack_svc the proxy's service account, password in DIR/service.password
        test_native    mysql_native_password, password "scalestack-test"
        test_ed25519   ed25519 authentication, password "scalestack-test"
      and databases scalestack_test and sbtest on which all of them have every privilege, plus the
      global PROCESS privilege (to read the processlist). LOCAL INFILE is enabled (no FILE needed).
      --tuned-for-bench raises max_connections to 16770, the buffer pool to 1G and the caches.
      --tls makes a throwaway CA and a server certificate for 127.0.0.1 and localhost (openssl, in
      DIR/tls/: ca.pem, server.pem, server.key), serves TLS with them, and adds the account
      test_tls (password "scalestack-test", REQUIRE SSL); a DIR started with --tls keeps TLS when
      restarted. The env then also exports SCALESTACK_MYSQL_TLS_CA and _TLS_USER.

  env [--dir DIR] [--path]
      Print DIR/env (or with --path just its file name). It exports SCALESTACK_MYSQL_ADDR, _SOCKET,
      _USER, _PASSWORD, _PASSWORD_FILE, _TEST_USER, _TEST_PASSWORD, _ROOT_USER, _ROOT_PASSWORD,
      _DATABASE, _DIR, _PID and _SCRIPT (and _TLS_CA and _TLS_USER for a server started with --tls).

  status [--dir DIR]
      Say whether the server in DIR runs and answers; exit 0 if so, 3 if not.

  stop [--dir DIR] [--keep] [--crash]
      Shut the server down (mariadb-admin shutdown, then SIGTERM, then SIGKILL after a timeout) and
      remove DIR. --keep keeps DIR so that `start --reuse` brings the same data and port back.
      --crash kills the server with SIGKILL at once (for crash-recovery tests; implies nothing else).
      Succeeds when nothing runs.

  restart [--dir DIR]
      stop --keep, then start --reuse.

Examples:
  scripts/mariadb.sh start && source .tmp/mariadb/env
  mariadb -h127.0.0.1 -P"${SCALESTACK_MYSQL_ADDR##*:}" -utest_native -pscalestack-test scalestack_test
  scripts/mariadb.sh stop
EOF
}

# ---------------------------------------------------------------------------------------------------
# Package installation

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/sbin/$1" ]]; }

# apt_install installs Debian packages without prompts and without starting the system service
# (scripts/apt-install.sh, shared with bench/run.sh).
apt_install() {
	[[ $# -gt 0 ]] || return 0
	"${REPO_ROOT}/scripts/apt-install.sh" "$@"
}

cmd_deps() {
	local want_sysbench=0 want_haproxy=0 want_toolchain=0 want_memcached=0
	while [[ $# -gt 0 ]]; do
		case $1 in
		--sysbench) want_sysbench=1 ;;
		--bench) want_sysbench=1 want_haproxy=1 ;;
		--toolchain) want_toolchain=1 ;;
		--memcached) want_memcached=1 ;;
		-h | --help) usage; return 0 ;;
		*) die "deps: unknown option $1" ;;
		esac
		shift
	done
	local -a missing=()
	if ! have mariadbd && ! have mysqld; then missing+=(mariadb-server); fi
	if ! have mariadb-install-db && ! have mysql_install_db; then
		[[ " ${missing[*]-} " == *" mariadb-server "* ]] || missing+=(mariadb-server)
	fi
	if ! have mariadb || ! have mariadb-admin; then missing+=(mariadb-client); fi
	if [[ ${want_sysbench} -eq 1 ]] && ! have sysbench; then missing+=(sysbench); fi
	if [[ ${want_haproxy} -eq 1 ]] && ! have haproxy; then missing+=(haproxy); fi
	if [[ ${want_toolchain} -eq 1 ]]; then
		have gcc || missing+=(gcc)
		[[ -e /usr/include/stdlib.h ]] || missing+=(libc6-dev)
	fi
	if [[ ${want_memcached} -eq 1 ]]; then
		have memcached || missing+=(memcached)
		have nutcracker || [[ -x /usr/sbin/nutcracker ]] || missing+=(nutcracker)
		have memccapable || missing+=(libmemcached-tools)
	fi
	if [[ ${#missing[@]} -eq 0 ]]; then
		log "dependencies present"
		return 0
	fi
	apt_install "${missing[@]}"
}

server_binary() {
	local b
	for b in mariadbd mysqld; do
		if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
		if [[ -x /usr/sbin/$b ]]; then echo "/usr/sbin/$b"; return 0; fi
	done
	return 1
}

first_command() {
	local c
	for c in "$@"; do
		if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
	done
	return 1
}

# ---------------------------------------------------------------------------------------------------
# Directory layout and state

DIR=""
set_dir() {
	local d=${1:-${SCALESTACK_MYSQL_DIR:-${REPO_ROOT}/.tmp/mariadb}}
	mkdir -p "$d"
	DIR=$(cd "$d" && pwd)
	DATADIR=${DIR}/data
	CNF=${DIR}/my.cnf
	ROOT_CNF=${DIR}/root.cnf
	PIDFILE=${DIR}/mariadbd.pid
	ERRLOG=${DATADIR}/error.log
	ENVFILE=${DIR}/env
	SOCKET=${DIR}/mariadbd.sock
	# A unix socket path must fit in 107 bytes; fall back to /tmp for deeply nested dirs.
	if [[ ${#SOCKET} -gt 100 ]]; then
		SOCKET=/tmp/scalestack-mariadb-$(printf '%s' "${DIR}" | cksum | cut -d' ' -f1).sock
	fi
}

ensure_marker() {
	if [[ ! -e ${DIR}/${MARKER} ]]; then
		if [[ -n $(ls -A "${DIR}") ]]; then
			die "${DIR} is not empty and was not made by this script; refusing to use it"
		fi
		printf 'made by scripts/mariadb.sh; "scripts/mariadb.sh stop --dir %s" removes this directory\n' \
			"${DIR}" >"${DIR}/${MARKER}"
	fi
}

# lock serialises start/stop on one dir, so two concurrent `start`s do not race.
lock_dir() {
	exec 9>"${DIR}/.lock"
	flock -w 120 9 || die "timed out waiting for the lock on ${DIR}"
}

read_secret() { tr -d '\n' <"$1"; }

new_secret() {
	local f=$1
	if [[ ! -s $f ]]; then
		(umask 077 && head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f")
	fi
}

# server_pid prints the pid of this dir's server if it is alive and really is that server.
server_pid() {
	[[ -s ${PIDFILE} ]] || return 1
	local pid
	pid=$(tr -d ' \n' <"${PIDFILE}")
	[[ ${pid} =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/${pid}/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "--defaults-file=${CNF}" || return 1
	echo "${pid}"
}

ping_server() {
	local admin
	admin=$(first_command mariadb-admin mysqladmin) || return 1
	# `ping` exits 0 whenever the server answers, even when the credentials are refused; the right
	# ones only keep "access denied" warnings out of the error log.
	if [[ -s ${ROOT_CNF} && -e ${DATADIR}/.root-password-set ]]; then
		"${admin}" --defaults-file="${ROOT_CNF}" --connect-timeout=2 ping >/dev/null 2>&1
	else
		"${admin}" --no-defaults --socket="${SOCKET}" --connect-timeout=2 -uroot ping >/dev/null 2>&1
	fi
}

# ---------------------------------------------------------------------------------------------------
# Ports

# port_in_use: any socket bound to 127.0.0.1:PORT or *:PORT (v4 or v6), in any state.
port_in_use() {
	local hex
	hex=$(printf ':%04X ' "$1")
	grep -q -- "${hex}" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# pick_port derives a start point from the dir so that each dir keeps its port across runs, then walks
# forward to the first free port. The range 20000-31999 lies below Linux's ephemeral range.
pick_port() {
	local h p i
	h=$(printf '%s' "${DIR}" | cksum | cut -d' ' -f1)
	p=$((20000 + h % 12000))
	for ((i = 0; i < 12000; i++)); do
		if [[ ${p} -ne 3306 ]] && ! port_in_use "${p}"; then
			echo "${p}"
			return 0
		fi
		p=$((p + 1))
		[[ ${p} -lt 32000 ]] || p=20000
	done
	die "no free TCP port in 20000-31999"
}

# ---------------------------------------------------------------------------------------------------
# start

write_cnf() {
	local port=$1 max_conns=$2 tuned=$3 tls=$4
	local bp=256M extra=""
	if [[ ${tuned} -eq 1 ]]; then
		bp=1G
		extra=$'table_open_cache = 4000\nthread_cache_size = 1024\nback_log = 4096\nmax_connect_errors = 1000000000\n'
	fi
	if [[ ${tls} -eq 1 ]]; then
		extra+="ssl_ca = ${DIR}/tls/ca.pem"$'\n'"ssl_cert = ${DIR}/tls/server.pem"$'\n'"ssl_key = ${DIR}/tls/server.key"$'\n'
	fi
	local user_line=""
	[[ ${EUID} -ne 0 ]] || user_line="user = root"
	cat >"${CNF}.new" <<EOF
# Generated by scripts/mariadb.sh for a throwaway server; edits are overwritten on the next start.
[mariadbd]
${user_line}
datadir = ${DATADIR}
socket = ${SOCKET}
pid-file = ${PIDFILE}
log-error = ${ERRLOG}
port = ${port}
bind-address = 127.0.0.1
skip-name-resolve
max_connections = ${max_conns}
max_prepared_stmt_count = 1048576
# Room for the tests' 16-40 MiB packets (split over several wire packets).
max_allowed_packet = 64M
innodb_buffer_pool_size = ${bp}
local_infile = 1
thread_handling = one-thread-per-connection
performance_schema = OFF
# Durability is worthless for a throwaway server; skipping the per-commit fsync keeps tests fast.
innodb_flush_log_at_trx_commit = 2
innodb_doublewrite = 0
skip-log-bin
${extra}
EOF
	mv "${CNF}.new" "${CNF}"
}

# make_tls_files writes a throwaway CA and a server certificate signed by it for 127.0.0.1 and
# localhost into DIR/tls, once: a restart keeps them, so clients holding the CA still verify.
make_tls_files() {
	local t="${DIR}/tls"
	[[ ! -s ${t}/server.pem || ! -s ${t}/ca.pem || ! -s ${t}/server.key ]] || return 0
	command -v openssl >/dev/null 2>&1 || apt_install openssl
	mkdir -p "${t}"
	log "making a throwaway CA and server certificate in ${t}"
	(
		umask 077
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
			-subj "/CN=Scale Stack throwaway test CA" -keyout "${t}/ca.key" -out "${t}/ca.pem" 2>/dev/null &&
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
				-keyout "${t}/server.key" -out "${t}/server.csr" 2>/dev/null &&
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"${t}/ext.cnf" &&
			openssl x509 -req -in "${t}/server.csr" -CA "${t}/ca.pem" -CAkey "${t}/ca.key" -CAcreateserial \
				-days 30 -extfile "${t}/ext.cnf" -out "${t}/server.pem" 2>/dev/null
	) || die "making the TLS files in ${t} failed"
	# Clients need the CA; the certificate is public.
	chmod 644 "${t}/ca.pem" "${t}/server.pem"
}

init_datadir() {
	local installdb
	installdb=$(first_command mariadb-install-db mysql_install_db) || die "mariadb-install-db not found"
	rm -rf "${DATADIR}"
	mkdir -p "${DATADIR}"
	log "initialising ${DATADIR}"
	local -a args=(--defaults-file="${CNF}" --datadir="${DATADIR}" --auth-root-authentication-method=normal
		--skip-test-db)
	[[ ${EUID} -ne 0 ]] || args+=(--user=root)
	if ! "${installdb}" "${args[@]}" >"${DIR}/install-db.log" 2>&1; then
		tail -n 30 "${DIR}/install-db.log" >&2 || true
		die "mariadb-install-db failed (full log: ${DIR}/install-db.log)"
	fi
	touch "${DATADIR}/.initialised"
}

# launch starts mariadbd detached from this shell's session and waits until it answers. It returns 2
# when the port turned out to be taken (a race with another process), so the caller can pick another.
launch() {
	local server
	server=$(server_binary) || die "mariadbd not found"
	: >"${ERRLOG}.launch-mark"
	local log_lines=0
	[[ ! -f ${ERRLOG} ]] || log_lines=$(wc -l <"${ERRLOG}")
	rm -f "${PIDFILE}"
	# fd 9 holds the dir lock; the server must not inherit it or the lock would outlive this script.
	setsid "${server}" --defaults-file="${CNF}" </dev/null >>"${DIR}/mariadbd.out" 2>&1 9>&- &
	local launched=$!
	local deadline=$((SECONDS + START_TIMEOUT_S))
	while ((SECONDS < deadline)); do
		if ping_server; then
			return 0
		fi
		if ! kill -0 "${launched}" 2>/dev/null; then
			wait "${launched}" 2>/dev/null || true
			if tail -n +"$((log_lines + 1))" "${ERRLOG}" 2>/dev/null | grep -q 'Address already in use'; then
				return 2
			fi
			log "mariadbd exited during start-up; error log tail:"
			tail -n 30 "${ERRLOG}" >&2 2>/dev/null || cat "${DIR}/mariadbd.out" >&2 || true
			die "mariadbd did not start (dir ${DIR})"
		fi
		sleep 0.2
	done
	log "mariadbd did not answer within ${START_TIMEOUT_S}s; error log tail:"
	tail -n 30 "${ERRLOG}" >&2 2>/dev/null || true
	kill -KILL "${launched}" 2>/dev/null || true
	die "mariadbd start timed out (dir ${DIR})"
}

root_sql() {
	local client
	client=$(first_command mariadb mysql) || die "mariadb client not found"
	"${client}" --defaults-file="${ROOT_CNF}" --batch --skip-column-names "$@"
}

write_root_cnf() {
	(umask 077 && cat >"${ROOT_CNF}" <<EOF
[client]
user = root
password = $(read_secret "${DIR}/root.password")
socket = ${SOCKET}
EOF
	)
}

# provision makes accounts and databases match this script's contract; it is safe to rerun.
provision() {
	local root_pw svc_pw
	root_pw=$(read_secret "${DIR}/root.password")
	svc_pw=$(read_secret "${DIR}/service.password")
	local client
	client=$(first_command mariadb mysql) || die "mariadb client not found"
	# A fresh datadir has a password-less root; afterwards root.cnf holds the real password.
	if [[ ! -e ${DATADIR}/.root-password-set ]]; then
		"${client}" --no-defaults --socket="${SOCKET}" -uroot --batch \
			-e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('${root_pw}')"
		touch "${DATADIR}/.root-password-set"
	fi
	if [[ $(root_sql -e "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME='ed25519'") == 0 ]]; then
		root_sql -e "INSTALL SONAME 'auth_ed25519'"
	fi
	local sql db u
	# Anonymous accounts would shadow the test users on socket logins, and accounts named after the
	# host only fill the error log with warnings under skip-name-resolve.
	sql="DELETE FROM mysql.global_priv WHERE User='' OR Host NOT IN ('localhost', '127.0.0.1', '::1', '%');"
	sql+="DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1', '%');"
	sql+="FLUSH PRIVILEGES;"
	sql+="CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';"
	sql+="ALTER USER 'root'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('${root_pw}');"
	sql+="GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
	for db in "${TEST_DATABASES[@]}"; do
		sql+="CREATE DATABASE IF NOT EXISTS \`${db}\`;"
	done
	for u in "${SERVICE_USER}:${svc_pw}:mysql_native_password" \
		"${TEST_USER}:${TEST_PASSWORD}:mysql_native_password" \
		"${TEST_ED25519_USER}:${TEST_PASSWORD}:ed25519"; do
		local name=${u%%:*} rest=${u#*:}
		local pw=${rest%%:*} plugin=${rest#*:}
		local host
		for host in '%' 'localhost'; do
			sql+="CREATE USER IF NOT EXISTS '${name}'@'${host}';"
			sql+="ALTER USER '${name}'@'${host}' IDENTIFIED VIA ${plugin} USING PASSWORD('${pw}');"
			for db in "${TEST_DATABASES[@]}"; do
				sql+="GRANT ALL PRIVILEGES ON \`${db}\`.* TO '${name}'@'${host}';"
			done
			sql+="GRANT PROCESS ON *.* TO '${name}'@'${host}';"
		done
	done
	if [[ -e ${DIR}/tls-enabled ]]; then
		for host in '%' 'localhost'; do
			sql+="CREATE USER IF NOT EXISTS '${TLS_USER}'@'${host}';"
			sql+="ALTER USER '${TLS_USER}'@'${host}' IDENTIFIED VIA mysql_native_password USING PASSWORD('${TEST_PASSWORD}') REQUIRE SSL;"
			for db in "${TEST_DATABASES[@]}"; do
				sql+="GRANT ALL PRIVILEGES ON \`${db}\`.* TO '${TLS_USER}'@'${host}';"
			done
		done
	fi
	root_sql -e "${sql}"
}

write_env() {
	local port=$1 pid=$2
	cat >"${ENVFILE}.new" <<EOF
# Generated by scripts/mariadb.sh start; source it to reach this throwaway MariaDB.
export SCALESTACK_MYSQL_ADDR=127.0.0.1:${port}
export SCALESTACK_MYSQL_SOCKET=${SOCKET}
export SCALESTACK_MYSQL_USER=${SERVICE_USER}
export SCALESTACK_MYSQL_PASSWORD=$(read_secret "${DIR}/service.password")
export SCALESTACK_MYSQL_PASSWORD_FILE=${DIR}/service.password
export SCALESTACK_MYSQL_TEST_USER=${TEST_USER}
export SCALESTACK_MYSQL_TEST_PASSWORD=${TEST_PASSWORD}
export SCALESTACK_MYSQL_ROOT_USER=root
export SCALESTACK_MYSQL_ROOT_PASSWORD=$(read_secret "${DIR}/root.password")
export SCALESTACK_MYSQL_DATABASE=${TEST_DATABASES[0]}
export SCALESTACK_MYSQL_DIR=${DIR}
export SCALESTACK_MYSQL_PID=${pid}
export SCALESTACK_MYSQL_SCRIPT=${SCRIPT_PATH}
EOF
	if [[ -e ${DIR}/tls-enabled ]]; then
		printf 'export SCALESTACK_MYSQL_TLS_CA=%s\nexport SCALESTACK_MYSQL_TLS_USER=%s\n' \
			"${DIR}/tls/ca.pem" "${TLS_USER}" >>"${ENVFILE}.new"
	fi
	mv "${ENVFILE}.new" "${ENVFILE}"
	chmod 600 "${ENVFILE}"
}

HALF_STARTED_PID=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
kill_half_started() {
	local rc=$?
	if [[ ${rc} -ne 0 && -n ${HALF_STARTED_PID} ]]; then
		log "start failed after the server came up; killing it (pid ${HALF_STARTED_PID})"
		kill -KILL "${HALF_STARTED_PID}" 2>/dev/null || true
		rm -f "${ENVFILE}"
	fi
}

cmd_start() {
	local dir="" port="" max_conns=2000 tuned=0 reuse=0 tls=0
	while [[ $# -gt 0 ]]; do
		case $1 in
		--dir) dir=${2:?--dir needs a value}; shift ;;
		--dir=*) dir=${1#*=} ;;
		--port) port=${2:?--port needs a value}; shift ;;
		--port=*) port=${1#*=} ;;
		--max-connections) max_conns=${2:?--max-connections needs a value}; shift ;;
		--max-connections=*) max_conns=${1#*=} ;;
		--tuned-for-bench) tuned=1 ;;
		--reuse) reuse=1 ;;
		--tls) tls=1 ;;
		-h | --help) usage; return 0 ;;
		*) die "start: unknown option $1" ;;
		esac
		shift
	done
	[[ -z ${port} || ${port} =~ ^[0-9]+$ ]] || die "--port must be a number"
	[[ ${port} != 3306 ]] || die "refusing port 3306: it belongs to the system service"
	[[ ${max_conns} =~ ^[0-9]+$ ]] || die "--max-connections must be a number"
	if [[ ${tuned} -eq 1 && ${max_conns} -eq 2000 ]]; then max_conns=16770; fi

	if ! server_binary >/dev/null || ! first_command mariadb-install-db mysql_install_db >/dev/null ||
		! first_command mariadb mysql >/dev/null; then
		cmd_deps
	fi

	local want=${dir:-${SCALESTACK_MYSQL_DIR:-${REPO_ROOT}/.tmp/mariadb}}
	if [[ ${reuse} -eq 1 && ! -e ${want}/data/.initialised ]]; then
		die "--reuse: ${want} holds no data from an earlier start"
	fi
	set_dir "${want}"
	ensure_marker
	lock_dir

	# TLS sticks to the directory, so that restart (stop --keep, start --reuse) keeps it.
	if [[ ${tls} -eq 1 ]]; then touch "${DIR}/tls-enabled"; fi
	[[ ! -e ${DIR}/tls-enabled ]] || tls=1
	local pid
	if pid=$(server_pid) && ping_server; then
		log "already running (pid ${pid}, dir ${DIR})"
		cat "${ENVFILE}"
		return 0
	fi

	local have_data=0
	[[ ! -e ${DATADIR}/.initialised ]] || have_data=1
	local port_fixed=1
	if [[ -z ${port} ]]; then
		if [[ ${have_data} -eq 1 && -s ${DIR}/port ]]; then
			port=$(cat "${DIR}/port")
		else
			port=$(pick_port)
			port_fixed=0
		fi
	fi
	new_secret "${DIR}/root.password"
	new_secret "${DIR}/service.password"

	local attempt rc
	for attempt in 1 2 3 4 5; do
		echo "${port}" >"${DIR}/port"
		[[ ${tls} -eq 0 ]] || make_tls_files
		write_cnf "${port}" "${max_conns}" "${tuned}" "${tls}"
		if [[ ${have_data} -eq 0 ]]; then
			init_datadir
			have_data=1
		fi
		log "starting mariadbd on 127.0.0.1:${port} (dir ${DIR})"
		rc=0
		launch || rc=$?
		[[ ${rc} -eq 2 ]] || break
		[[ ${port_fixed} -eq 0 ]] || die "port ${port} is already in use"
		log "port ${port} was taken meanwhile (attempt ${attempt}); picking another"
		port=$(pick_port)
	done
	[[ ${rc} -eq 0 ]] || die "could not find a free port after 5 attempts"

	pid=$(server_pid) || die "server answers but its pid file ${PIDFILE} is missing"
	# A server whose accounts were not set up is useless and would pass for ready on the next start.
	HALF_STARTED_PID=${pid}
	trap kill_half_started EXIT
	write_root_cnf
	provision
	write_env "${port}" "${pid}"
	trap - EXIT
	HALF_STARTED_PID=
	log "ready: 127.0.0.1:${port}, socket ${SOCKET}, pid ${pid}; env in ${ENVFILE}"
	cat "${ENVFILE}"
}

# ---------------------------------------------------------------------------------------------------
# stop, status, env

wait_gone() {
	local pid=$1 secs=$2
	local deadline=$((SECONDS + secs))
	while ((SECONDS < deadline)); do
		[[ -d /proc/${pid} ]] || return 0
		# A zombie has exited; only its parent's wait is missing.
		if [[ $(awk '{print $3}' "/proc/${pid}/stat" 2>/dev/null) == Z ]]; then return 0; fi
		sleep 0.1
	done
	[[ ! -d /proc/${pid} ]]
}

cmd_stop() {
	local dir="" keep=0 crash=0
	while [[ $# -gt 0 ]]; do
		case $1 in
		--dir) dir=${2:?--dir needs a value}; shift ;;
		--dir=*) dir=${1#*=} ;;
		--keep) keep=1 ;;
		--crash) crash=1 ;;
		-h | --help) usage; return 0 ;;
		*) die "stop: unknown option $1" ;;
		esac
		shift
	done
	local target=${dir:-${SCALESTACK_MYSQL_DIR:-${REPO_ROOT}/.tmp/mariadb}}
	if [[ ! -d ${target} ]]; then
		log "nothing to stop: ${target} does not exist"
		return 0
	fi
	set_dir "${target}"
	[[ -e ${DIR}/${MARKER} ]] || die "${DIR} was not made by this script; refusing to touch it"
	lock_dir

	local pid
	if pid=$(server_pid); then
		if [[ ${crash} -eq 1 ]]; then
			log "killing mariadbd (pid ${pid}) with SIGKILL"
			kill -KILL "${pid}" 2>/dev/null || true
			wait_gone "${pid}" 10 || die "pid ${pid} survived SIGKILL"
		else
			log "shutting down mariadbd (pid ${pid})"
			local admin
			if admin=$(first_command mariadb-admin mysqladmin); then
				timeout "${STOP_TIMEOUT_S}" "${admin}" --defaults-file="${ROOT_CNF}" --connect-timeout=5 \
					shutdown >/dev/null 2>&1 || true
			fi
			if ! wait_gone "${pid}" "${STOP_TIMEOUT_S}"; then
				log "still running after ${STOP_TIMEOUT_S}s; sending SIGTERM"
				kill -TERM "${pid}" 2>/dev/null || true
				if ! wait_gone "${pid}" 10; then
					log "still running; sending SIGKILL"
					kill -KILL "${pid}" 2>/dev/null || true
					wait_gone "${pid}" 10 || die "pid ${pid} survived SIGKILL"
				fi
			fi
		fi
	else
		log "not running (dir ${DIR})"
	fi
	rm -f "${PIDFILE}"
	if [[ ${keep} -eq 1 ]]; then
		log "stopped; kept ${DIR} (restart with: $0 start --dir ${DIR} --reuse)"
		return 0
	fi
	[[ ${SOCKET} == "${DIR}"/* ]] || rm -f "${SOCKET}"
	rm -rf "${DIR}"
	log "stopped and removed ${DIR}"
}

cmd_status() {
	local dir=""
	while [[ $# -gt 0 ]]; do
		case $1 in
		--dir) dir=${2:?--dir needs a value}; shift ;;
		--dir=*) dir=${1#*=} ;;
		-h | --help) usage; return 0 ;;
		*) die "status: unknown option $1" ;;
		esac
		shift
	done
	local target=${dir:-${SCALESTACK_MYSQL_DIR:-${REPO_ROOT}/.tmp/mariadb}}
	if [[ ! -e ${target}/${MARKER} ]]; then
		echo "not running (no server dir at ${target})"
		return 3
	fi
	set_dir "${target}"
	local pid
	if pid=$(server_pid) && ping_server; then
		echo "running: pid ${pid}, 127.0.0.1:$(cat "${DIR}/port"), socket ${SOCKET}, dir ${DIR}"
		return 0
	fi
	if [[ -e ${DATADIR}/.initialised ]]; then
		echo "not running (data kept in ${DIR}; restart with: $0 start --dir ${DIR} --reuse)"
	else
		echo "not running (dir ${DIR})"
	fi
	return 3
}

cmd_env() {
	local dir="" path_only=0
	while [[ $# -gt 0 ]]; do
		case $1 in
		--dir) dir=${2:?--dir needs a value}; shift ;;
		--dir=*) dir=${1#*=} ;;
		--path) path_only=1 ;;
		-h | --help) usage; return 0 ;;
		*) die "env: unknown option $1" ;;
		esac
		shift
	done
	local target=${dir:-${SCALESTACK_MYSQL_DIR:-${REPO_ROOT}/.tmp/mariadb}}
	[[ -s ${target}/env ]] || die "no env file in ${target}; run: $0 start --dir ${target}"
	if [[ ${path_only} -eq 1 ]]; then
		echo "$(cd "${target}" && pwd)/env"
	else
		cat "${target}/env"
	fi
}

cmd_restart() {
	local -a dir_args=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		--dir) dir_args=(--dir "${2:?--dir needs a value}"); shift ;;
		--dir=*) dir_args=(--dir "${1#*=}") ;;
		-h | --help) usage; return 0 ;;
		*) die "restart: unknown option $1" ;;
		esac
		shift
	done
	cmd_stop "${dir_args[@]}" --keep
	# cmd_stop's lock is held on fd 9; release it before start takes it again.
	exec 9>&-
	cmd_start "${dir_args[@]}" --reuse
}

main() {
	[[ $# -gt 0 ]] || { usage >&2; exit 2; }
	local sub=$1
	shift
	case ${sub} in
	deps) cmd_deps "$@" ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status "$@" ;;
	env) cmd_env "$@" ;;
	restart) cmd_restart "$@" ;;
	-h | --help | help) usage ;;
	*) usage >&2; die "unknown subcommand ${sub}" ;;
	esac
}

main "$@"
