#!/usr/bin/env bash
# apt-install.sh: install Debian packages without prompts, for scripts/mariadb.sh and bench/run.sh.
#
# Usage: scripts/apt-install.sh PACKAGE...
#
# Installing mariadb-server would normally start the system service on port 3306; a temporary
# policy-rc.d (Debian's documented switch) keeps every service the packages bring stopped, so the
# throwaway servers of this project never meet a system one. Needs root or password-less sudo.
# A failed install is retried once after `apt-get update` (a fresh machine's package lists may be
# stale or missing).
set -euo pipefail

log() { printf '[apt-install.sh] %s\n' "$*" >&2; }
die() {
	printf '[apt-install.sh] error: %s\n' "$*" >&2
	exit 1
}

run_as_root() {
	if [[ ${EUID} -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		die "installing packages needs root; run as root: $*"
	fi
}

main() {
	if [[ $# -eq 0 || $1 == -h || $1 == --help ]]; then
		sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
		return 0
	fi
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install these packages by hand: $*"
	log "installing: $* (apt-get, no recommends)"
	local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
	if [[ ! -e ${policy} ]]; then
		run_as_root sh -c "printf '#!/bin/sh\nexit 101\n' > ${policy} && chmod 755 ${policy}"
		made_policy=1
	fi
	local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q --no-install-recommends
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	if ! run_as_root "${apt[@]}" install "$@"; then
		log "install failed; running apt-get update and retrying"
		run_as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update || true
		run_as_root "${apt[@]}" install "$@" || rc=$?
	fi
	if [[ ${made_policy} -eq 1 ]]; then
		run_as_root rm -f "${policy}"
	fi
	[[ ${rc} -eq 0 ]] || die "apt-get install $* failed (exit ${rc})"
	log "installed: $*"
}

main "$@"
