#!/usr/bin/env bash
# node-drivers.sh: Node.js, npm and the npm MySQL drivers that the e2e tests and
# scripts/driver-suites.sh run through the proxy (mysql2 and mariadb, at the versions that
# internal/e2e/testdata/node/package-lock.json pins).
#
# Usage: scripts/node-drivers.sh [--check]
#
# Installs Debian's nodejs and npm with scripts/apt-install.sh when `node` or `npm` is missing (a
# machine with Node.js from elsewhere keeps it), then the drivers with `npm ci` into
# internal/e2e/testdata/node/node_modules (git-ignored). Idempotent: node_modules installed from the
# same package files is kept. --check installs nothing: exit 0 if all is there, 1 if not.
# The mariadb driver needs Node.js 20 or later (Debian 12's nodejs is 18): with an older Node the
# tests run mysql2's cases only and say so.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly NODE_DIR=internal/e2e/testdata/node
readonly STAMP=${NODE_DIR}/node_modules/.scalestack-installed

log() { printf '[node-drivers.sh] %s\n' "$*" >&2; }

# fingerprint names the package files an installation came from.
fingerprint() { cat "${NODE_DIR}/package.json" "${NODE_DIR}/package-lock.json" | sha256sum | cut -d' ' -f1; }

installed() {
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
		[[ -f ${STAMP} && $(cat "${STAMP}") == "$(fingerprint)" ]] &&
		[[ -f ${NODE_DIR}/node_modules/mysql2/package.json && -f ${NODE_DIR}/node_modules/mariadb/package.json ]]
}

main() {
	case ${1:-} in
	-h | --help)
		sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
		return 0
		;;
	--check)
		installed
		return
		;;
	"") ;;
	*)
		log "unknown option $1"
		return 2
		;;
	esac
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		scripts/apt-install.sh nodejs npm
	fi
	if installed; then
		log "up to date: node $(node --version), $(cd "${NODE_DIR}" && npm ls --depth=0 --parseable 2>/dev/null | sed -n 's#.*/node_modules/##p' | tr '\n' ' ')"
		return 0
	fi
	log "installing the drivers of ${NODE_DIR}/package-lock.json with npm ci (node $(node --version), npm $(npm --version))"
	(cd "${NODE_DIR}" && npm ci --no-audit --no-fund --loglevel=error)
	fingerprint >"${STAMP}"
	log "installed: $(cd "${NODE_DIR}" && npm ls --depth=0 --parseable 2>/dev/null | sed -n 's#.*/node_modules/##p' | tr '\n' ' ')"
}

main "$@"
