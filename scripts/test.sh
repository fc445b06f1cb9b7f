#!/usr/bin/env bash
# test.sh: the whole test suite against a real, throwaway MariaDB; `make test` and CI run this.
#
# Steps: install missing OS packages (MariaDB, sysbench, gcc for -race), start a private MariaDB in
# .tmp/mariadb-test, export its env (SCALESTACK_MYSQL_*), go vet, go test -race, then every fuzz
# target briefly. The database is stopped and removed on every exit path. Every step runs even if an
# earlier one failed, so one CI log shows all failures; the exit status is non-zero if any failed.
#
# Knobs (environment):
#   PKGS='./conn/... ./pool/...'   packages (default ./...)
#   TESTFLAGS='-run TestX -v'      extra `go test` flags
#   FUZZTIME=5s                    time per fuzz target; FUZZTIME=0 skips fuzzing
#   SCALESTACK_TEST_DB_DIR=DIR     where the throwaway server lives
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export GOFLAGS=${GOFLAGS:--ldflags=-checklinkname=0 -buildvcs=false}
read -ra pkg_args <<<"${PKGS:-./...}"
read -ra test_flags <<<"${TESTFLAGS:-}"
FUZZTIME=${FUZZTIME:-5s}
DB_DIR=${SCALESTACK_TEST_DB_DIR:-${ROOT}/.tmp/mariadb-test}

section() { printf "\n==================== %s ==================== (at %ss)\n" "$1" "$((SECONDS - started))"; }
failures=()
started=$SECONDS


stop_db() {
	section "stop MariaDB"
	scripts/mariadb.sh stop --dir "${DB_DIR}" || echo "warning: stopping MariaDB failed"
}

section "OS dependencies"
scripts/mariadb.sh deps --sysbench --toolchain

section "start MariaDB (${DB_DIR})"
# A server left behind by an interrupted run would carry its data into this one; start clean.
scripts/mariadb.sh stop --dir "${DB_DIR}"
trap stop_db EXIT
trap 'exit 130' INT TERM
scripts/mariadb.sh start --dir "${DB_DIR}" >/dev/null
set -a
# shellcheck source=/dev/null
source "${DB_DIR}/env"
set +a
echo "MariaDB $(mariadb --defaults-file="${DB_DIR}/root.cnf" -N -e 'SELECT VERSION()') at ${SCALESTACK_MYSQL_ADDR}"

section "go vet"
go vet "${pkg_args[@]}" || failures+=("go vet")

section "go test -race"
go test -race -count=1 -timeout 25m "${test_flags[@]}" "${pkg_args[@]}" || failures+=("go test")

if [[ ${FUZZTIME} != 0 ]]; then
	section "fuzz (${FUZZTIME} per target)"
	FUZZTIME=${FUZZTIME} PKGS=${PKGS:-./...} scripts/fuzz.sh || failures+=("fuzz")
fi

section "summary ($((SECONDS - started))s)"
if [[ ${#failures[@]} -gt 0 ]]; then
	printf 'FAILED: %s\n' "${failures[@]}"
	exit 1
fi
echo "all steps passed"
