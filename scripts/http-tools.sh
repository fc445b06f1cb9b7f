#!/usr/bin/env bash
# http-tools.sh: install the clients and the reference server the HTTP module's tests use.
#
# Usage: scripts/http-tools.sh
#
# curl (requests with exact flags and status codes), wrk (keep-alive load) and nginx (the reference
# server the static-file tests compare against; the tests start their own instance on a free
# loopback port with a generated configuration, never the system service, which apt-install.sh
# keeps stopped). Installs only what is missing; needs root (or password-less sudo) when it does.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# nginx lives in /usr/sbin, which a non-root PATH may lack.
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
if [[ ${#missing[@]} -eq 0 ]]; then
	printf '[http-tools.sh] curl, wrk and nginx present\n' >&2
	exit 0
fi
exec scripts/apt-install.sh "${missing[@]}"
