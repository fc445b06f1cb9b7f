#!/usr/bin/env bash
# driver-suites.sh: real clients' own test suites, direct against MariaDB and through `scalestack
# mysqlproxy` in front of the same server, and the difference (issue 16: "behave like the server").
#
# Usage: scripts/driver-suites.sh [--go] [--node] [--out DIR] [--backend-conns N] [--concurrent]
#
#   --go             go-sql-driver/mysql's own suite (the module version go.mod names, from the module
#                    cache: `go mod download -json`), copied to DIR and run with `go test -v` once
#                    with MYSQL_TEST_ADDR at MariaDB and once at the proxy
#   --node           internal/e2e/testdata/node/compat.cjs: the npm drivers mysql2 and mariadb, every
#                    case against MariaDB and through the proxy (neither package ships its own suite)
#                    (no option: both)
#   --out DIR        where logs, pass/fail lists and summary.md go (default .tmp/driver-suites)
#   --backend-conns  the proxy's N (default 8)
#   --concurrent     also run TestConcurrent (MYSQL_TEST_CONCURRENT=1: as many connections as the
#                    server's max_connections, 300 here, each holding a transaction)
#
# It builds bin/scalestack from this checkout, starts a throwaway MariaDB with TLS in
# .tmp/driver-suites-db (scripts/mariadb.sh start --tls), writes a users file with the server's
# accounts scalestack_svc and test_native under their server passwords (so a client logs in to the
# proxy exactly as it would to the server), gives the proxy the server's certificate (DIR/tls, for
# 127.0.0.1) so that clients may ask it for TLS as they ask the server, and stops both on exit. The
# direct runs use the service account, which the proxy's backends use, so privileges are the same
# both ways.
# go-sql-driver's TestConnectorReturnsTimeout is skipped: it dials a public address.
# The exit status is 0 when the lists were made, whatever they hold; summary.md has the counts, the
# tests that fail only through the proxy (or only direct) and the cause of each known one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

run_go=0 run_node=0 out=${ROOT}/.tmp/driver-suites backend_conns=8 concurrent=0
while [[ $# -gt 0 ]]; do
	case $1 in
	--go) run_go=1 ;;
	--node) run_node=1 ;;
	--out) out=${2:?--out needs a directory}; shift ;;
	--backend-conns) backend_conns=${2:?--backend-conns needs a number}; shift ;;
	--concurrent) concurrent=1 ;;
	-h | --help) sed -n '2,28s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "driver-suites.sh: unknown option $1 (--help lists them)" >&2; exit 2 ;;
	esac
	shift
done
if [[ ${run_go} -eq 0 && ${run_node} -eq 0 ]]; then run_go=1 run_node=1; fi
[[ ${backend_conns} =~ ^[1-9][0-9]*$ ]] || { echo "--backend-conns must be a positive number" >&2; exit 2; }

case ${GOFLAGS:-} in
*checklinkname*) ;;
*) export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-ldflags=-checklinkname=0 -buildvcs=false" ;;
esac
DB_DIR=${ROOT}/.tmp/driver-suites-db
started=$SECONDS
step() { printf '\n== %s (at %ss)\n' "$*" "$((SECONDS - started))" >&2; }
note() { printf '   %s\n' "$*" >&2; }

proxy_pid=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	if [[ -n ${proxy_pid} ]] && kill -0 "${proxy_pid}" 2>/dev/null; then
		kill -TERM "${proxy_pid}" 2>/dev/null || true
		wait "${proxy_pid}" 2>/dev/null || true
	fi
	scripts/mariadb.sh stop --dir "${DB_DIR}" >/dev/null 2>&1 || echo "warning: stopping MariaDB in ${DB_DIR} failed" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port picks a loopback port nothing listens on.
free_port() {
	local port
	for _ in $(seq 50); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
			echo "${port}"
			return 0
		fi
	done
	echo "no free port found" >&2
	return 1
}

rm -rf "${out}"
mkdir -p "${out}"
out=$(cd "${out}" && pwd)

step "build bin/scalestack"
go build -o bin/scalestack ./cmd/scalestack

step "start MariaDB with TLS (${DB_DIR})"
scripts/mariadb.sh stop --dir "${DB_DIR}" >/dev/null 2>&1 || true
scripts/mariadb.sh start --dir "${DB_DIR}" --tls --max-connections 300 >/dev/null
# shellcheck source=/dev/null
source "${DB_DIR}/env"
mariadb_version=$(mariadb --defaults-file="${DB_DIR}/root.cnf" -N -e 'SELECT VERSION()')
note "MariaDB ${mariadb_version} at ${SCALESTACK_MYSQL_ADDR}"

step "start the proxy (--backend-conns ${backend_conns})"
users=${out}/users
{
	printf '%s\n' "${SCALESTACK_MYSQL_PASSWORD}" | bin/scalestack passwd "${SCALESTACK_MYSQL_USER}"
	printf '%s\n' "${SCALESTACK_MYSQL_TEST_PASSWORD}" | bin/scalestack passwd "${SCALESTACK_MYSQL_TEST_USER}"
} >"${users}"
chmod 600 "${users}"
proxy_port=$(free_port)
proxy_addr=127.0.0.1:${proxy_port}
bin/scalestack mysqlproxy --listen "${proxy_addr}" --backend "${SCALESTACK_MYSQL_ADDR}" \
	--backend-user "${SCALESTACK_MYSQL_USER}" --backend-password-file "${SCALESTACK_MYSQL_PASSWORD_FILE}" \
	--backend-conns "${backend_conns}" --users "${users}" --admin "" \
	--tls-cert "${DB_DIR}/tls/server.pem" --tls-key "${DB_DIR}/tls/server.key" >"${out}/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 100); do
	if MYSQL_PWD=${SCALESTACK_MYSQL_PASSWORD} mariadb --no-defaults --protocol tcp -h 127.0.0.1 -P "${proxy_port}" \
		-u "${SCALESTACK_MYSQL_USER}" -N -e 'SELECT 1' >/dev/null 2>&1; then
		break
	fi
	kill -0 "${proxy_pid}" 2>/dev/null || { cat "${out}/proxy.log" >&2; exit 1; }
	sleep 0.2
done
note "proxy at ${proxy_addr}, log ${out}/proxy.log"

summary=${out}/summary.md
proxy_rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!.tmp' || echo '+changes')
{
	echo "# Real clients' suites, direct vs through scalestack mysqlproxy"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); proxy built from ${proxy_rev}, --backend-conns ${backend_conns}, --tls-cert/--tls-key the server's"
	echo "- MariaDB ${mariadb_version} with TLS (scripts/mariadb.sh start --tls); $(go version | cut -d' ' -f3)"
	echo "- command: scripts/driver-suites.sh $([[ ${run_go} -eq 1 ]] && echo --go) $([[ ${run_node} -eq 1 ]] && echo --node)$([[ ${concurrent} -eq 1 ]] && echo ' --concurrent')"
} >"${summary}"

# classify names the cause (an issue 16 item, or another) of a test known to fail only through the
# proxy; the lists in summary.md are the facts, this only annotates them.
classify() {
	case $1 in
	TestFoundRows2 | TestFoundRows2/*) echo "item 4 regressed (fixed: CLIENT_FOUND_ROWS per client)" ;;
	TestTLS | TestTLS/* | TestIssue1567 | TestIssue1567/*) echo "TLS regressed (the proxy offers TLS with a certificate)" ;;
	TestConcurrent | TestConcurrent/*) echo "not the proxy's: direct, it reaches the server's max_connections; through the proxy, N backend connections serve all" ;;
	*/extended-metadata) echo "item 5 regressed (fixed: MariaDB extended type metadata)" ;;
	*/found-rows-on) echo "item 4 regressed (fixed: CLIENT_FOUND_ROWS per client)" ;;
	*/connection-id | */kill-own-connection) echo "item 7 regressed (fixed: CONNECTION_ID() in any expression; the processlist is documented as the server's)" ;;
	*/kill-query) echo "item 9: KILL QUERY closes the session" ;;
	*/session-track) echo "item 10 regressed (fixed: session tracking toward clients)" ;;
	*) echo "unclassified" ;;
	esac
}

# go_results turns `go test -v` output into sorted "STATUS name" lines, subtests included.
go_results() {
	sed -nE 's/^ *--- (PASS|FAIL|SKIP): ([^ ]+) .*/\1 \2/p' "$1" | LC_ALL=C sort -k2,2
}

# compare_lists writes the names whose status differs between two "STATUS name" lists.
compare_lists() {
	local direct=$1 proxied=$2 name
	LC_ALL=C join -1 2 -2 2 -a 1 -a 2 -e missing -o 0,1.1,2.1 "${direct}" "${proxied}" |
		while read -r name d p; do
			[[ ${d} != "${p}" ]] || continue
			printf '| %s | %s | %s | %s |\n' "${name}" "${d}" "${p}" "$(classify "${name}")"
		done
}

if [[ ${run_go} -eq 1 ]]; then
	step "go-sql-driver/mysql's own suite"
	mod_json=$(go mod download -json github.com/go-sql-driver/mysql)
	mod_dir=$(sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p' <<<"${mod_json}")
	mod_version=$(sed -nE 's/^\s*"Version": "(.*)",?$/\1/p' <<<"${mod_json}")
	[[ -d ${mod_dir} ]] || { echo "go mod download gave no source directory:" >&2; echo "${mod_json}" >&2; exit 1; }
	src=${out}/go-sql-driver-${mod_version}
	cp -r "${mod_dir}" "${src}"
	chmod -R u+w "${src}"
	note "source ${mod_version} copied to ${src}"
	for side in direct proxy; do
		addr=${SCALESTACK_MYSQL_ADDR}
		[[ ${side} == direct ]] || addr=${proxy_addr}
		note "go test against ${side} (${addr}) ..."
		t0=$SECONDS
		rc=0
		(cd "${src}" && env MYSQL_TEST_USER="${SCALESTACK_MYSQL_USER}" MYSQL_TEST_PASS="${SCALESTACK_MYSQL_PASSWORD}" \
			MYSQL_TEST_PROT=tcp MYSQL_TEST_ADDR="${addr}" MYSQL_TEST_DBNAME="${SCALESTACK_MYSQL_DATABASE}" \
			MYSQL_TEST_CONCURRENT="${concurrent}" GOFLAGS=-buildvcs=false \
			go test -count=1 -v -timeout 20m -skip '^TestConnectorReturnsTimeout$' . >"${out}/go-${side}.log" 2>&1) || rc=$?
		go_results "${out}/go-${side}.log" >"${out}/go-${side}.txt"
		note "$(grep -c '^PASS' "${out}/go-${side}.txt") passed, $(grep -c '^FAIL' "${out}/go-${side}.txt") failed, $(grep -c '^SKIP' "${out}/go-${side}.txt") skipped (tests and subtests; go test exit ${rc}, $((SECONDS - t0))s)"
	done
	{
		echo
		echo "## go-sql-driver/mysql ${mod_version}: its own suite (go test -v, tests and subtests)"
		echo
		echo '```'
		echo "cd COPY_OF_THE_MODULE && MYSQL_TEST_USER=scalestack_svc MYSQL_TEST_PASS=... MYSQL_TEST_PROT=tcp \\"
		echo "  MYSQL_TEST_ADDR=<MariaDB or proxy> MYSQL_TEST_DBNAME=scalestack_test MYSQL_TEST_CONCURRENT=${concurrent} \\"
		echo "  go test -count=1 -v -skip '^TestConnectorReturnsTimeout\$' ."
		echo '```'
		echo
		echo "| | passed | failed | skipped | top-level tests passed / failed |"
		echo "|---|---|---|---|---|"
		for side in direct proxy; do
			f=${out}/go-${side}.txt
			echo "| ${side} | $(grep -c '^PASS' "$f") | $(grep -c '^FAIL' "$f") | $(grep -c '^SKIP' "$f") |" \
				"$(grep -cE '^PASS [^/]+$' "$f") / $(grep -cE '^FAIL [^/]+$' "$f") |"
		done
		echo
		echo "Tests whose status differs (direct vs proxy):"
		echo
		echo "| test | direct | proxy | cause |"
		echo "|---|---|---|---|"
		compare_lists "${out}/go-direct.txt" "${out}/go-proxy.txt"
	} >>"${summary}"
fi

if [[ ${run_node} -eq 1 ]]; then
	step "Node.js drivers (mysql2, mariadb): compat.cjs"
	scripts/node-drivers.sh
	target() { # host port user password
		printf '{"host":"127.0.0.1","port":%s,"user":"%s","password":"%s","database":"%s","otherDatabase":"sbtest","other":{"user":"%s","password":"%s"}}' \
			"$1" "$2" "$3" "${SCALESTACK_MYSQL_DATABASE}" "${SCALESTACK_MYSQL_TEST_USER}" "${SCALESTACK_MYSQL_TEST_PASSWORD}"
	}
	config=$(printf '{"targets":{"direct":%s,"proxy":%s}}' \
		"$(target "${SCALESTACK_MYSQL_ADDR##*:}" "${SCALESTACK_MYSQL_USER}" "${SCALESTACK_MYSQL_PASSWORD}")" \
		"$(target "${proxy_port}" "${SCALESTACK_MYSQL_USER}" "${SCALESTACK_MYSQL_PASSWORD}")")
	t0=$SECONDS
	(cd internal/e2e/testdata/node && SCALESTACK_COMPAT_CONFIG=${config} node compat.cjs) \
		>"${out}/node.jsonl" 2>"${out}/node.log"
	note "$(tail -n 1 "${out}/node.log") ($((SECONDS - t0))s)"
	# Each case's name, item and verdict, without the answers (node.jsonl has them).
	sed -nE 's/^\{"name":"([^"]+)","driver":"[^"]+","item":([0-9]+),.*"same":(true|false),"ms".*/\1 \2 \3/p' \
		"${out}/node.jsonl" | sort >"${out}/node.txt"
	versions=$(cd internal/e2e/testdata/node && npm ls --depth=0 --parseable --long 2>/dev/null |
		sed -nE 's#.*/node_modules/[^:]*:([^:]+).*#\1#p' | tr '\n' ' ')
	{
		echo
		echo "## Node.js drivers: internal/e2e/testdata/node/compat.cjs (${versions}; node $(node --version))"
		echo
		echo "Neither npm package ships its integration suite, so each case runs the same statements"
		echo "direct and through the proxy and compares the answers (node.jsonl holds both)."
		echo
		echo "- cases: $(wc -l <"${out}/node.txt"), same answer: $(grep -c ' true$' "${out}/node.txt"), different: $(grep -c ' false$' "${out}/node.txt")"
		echo
		echo "| case | issue 16 item | cause |"
		echo "|---|---|---|"
		# (No difference is no match: grep's status 1 must not end the script.)
		{ grep ' false$' "${out}/node.txt" || true; } | while read -r name item _; do
			printf '| %s | %s | %s |\n' "${name}" "${item}" "$(classify "${name}")"
		done
	} >>"${summary}"
fi

step "summary: ${summary}"
cat "${summary}"
