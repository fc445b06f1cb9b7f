#!/usr/bin/env bash
# run.sh DB_DIR: `make run`. Starts a throwaway MariaDB in DB_DIR and bin/scalestack's MySQL proxy on
# 127.0.0.1:6033 in the foreground, with a users file holding test_native (password scalestack-test).
# Ctrl-C (or SIGTERM) stops the proxy, then the database, which is removed.
#
# Relies on two subcommands of bin/scalestack: `passwd NAME` (reads the password on stdin, prints a
# users-file line) and `mysqlproxy` with the flags used below.
set -euo pipefail
cd "$(dirname "$0")/.."
DB_DIR=${1:?usage: scripts/run.sh DB_DIR}
LISTEN=${LISTEN:-127.0.0.1:6033}
BACKEND_CONNS=${BACKEND_CONNS:-16}
ADMIN=${ADMIN:-127.0.0.1:6070}
[[ -x bin/scalestack ]] || { echo "bin/scalestack is missing; run: make build" >&2; exit 1; }

proxy_pid=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	if [[ -n ${proxy_pid} ]] && kill -0 "${proxy_pid}" 2>/dev/null; then
		kill -TERM "${proxy_pid}" 2>/dev/null || true
		wait "${proxy_pid}" 2>/dev/null || true
	fi
	scripts/mariadb.sh stop --dir "${DB_DIR}" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/mariadb.sh start --dir "${DB_DIR}" >/dev/null
# shellcheck source=/dev/null
source "${DB_DIR}/env"

users_file=${DB_DIR}/users
printf '%s\n' "${SCALESTACK_MYSQL_TEST_PASSWORD}" | bin/scalestack passwd "${SCALESTACK_MYSQL_TEST_USER}" >"${users_file}"

cat <<MSG

MariaDB (direct):  mariadb -h127.0.0.1 -P${SCALESTACK_MYSQL_ADDR##*:} -u${SCALESTACK_MYSQL_TEST_USER} -p${SCALESTACK_MYSQL_TEST_PASSWORD} ${SCALESTACK_MYSQL_DATABASE}
Through the proxy: mariadb -h${LISTEN%:*} -P${LISTEN##*:} -u${SCALESTACK_MYSQL_TEST_USER} -p${SCALESTACK_MYSQL_TEST_PASSWORD} ${SCALESTACK_MYSQL_DATABASE}
Metrics and status: curl http://${ADMIN}/metrics   curl http://${ADMIN}/status
Stop with Ctrl-C.

MSG
bin/scalestack mysqlproxy --listen "${LISTEN}" --backend "${SCALESTACK_MYSQL_ADDR}" \
	--backend-user "${SCALESTACK_MYSQL_USER}" --backend-password-file "${SCALESTACK_MYSQL_PASSWORD_FILE}" \
	--backend-conns "${BACKEND_CONNS}" --users "${users_file}" --admin "${ADMIN}" &
proxy_pid=$!
status=0
wait "${proxy_pid}" || status=$?
proxy_pid=""
exit "${status}"
