#!/usr/bin/env bash
# fuzz.sh: run every fuzz target in $PKGS (default ./...) for $FUZZTIME each (default 60s).
#
# Go can fuzz only one target of one package per command, so targets are discovered with
# `go test -list '^Fuzz'` and run one by one. Exits non-zero if any target failed; the failing input
# is kept under the package's testdata/fuzz/ by Go, so rerunning `go test` reproduces it.
#   FUZZTIME=10s PKGS=./mysqlwire/... scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# giouring only links with -checklinkname=0; keep whatever else the caller put in GOFLAGS.
case ${GOFLAGS:-} in
*checklinkname*) ;;
*) export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-ldflags=-checklinkname=0 -buildvcs=false" ;;
esac
FUZZTIME=${FUZZTIME:-60s}
read -ra pkg_args <<<"${PKGS:-./...}"

mapfile -t packages < <(go list "${pkg_args[@]}")
failed=()
ran=0
for pkg in "${packages[@]}"; do
	mapfile -t targets < <(go test -list '^Fuzz' "${pkg}" | grep -E '^Fuzz[A-Za-z0-9_]*$' || true)
	for target in "${targets[@]}"; do
		echo "-- fuzz ${pkg} ${target} (${FUZZTIME})"
		ran=$((ran + 1))
		if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="${FUZZTIME}" "${pkg}"; then
			failed+=("${pkg}.${target}")
		fi
	done
done
echo "fuzz: ${ran} target(s) run, ${#failed[@]} failed"
if [[ ${#failed[@]} -gt 0 ]]; then
	printf 'failed fuzz target: %s\n' "${failed[@]}"
	exit 1
fi
