#!/usr/bin/env bash
# bighost-check.sh: make test's proof that bench/bighost.sh works, as far as a small host can prove it.
#
# 1. It refuses what it must: a gVisor kernel (4.4.0) and, without --small, fewer than 16 CPUs.
# 2. On 16 CPUs (as the kernel would list them) it places the proxy on 4 with 4 loops, MariaDB on 8 and
#    sysbench on 4.
# 3. `bench/bighost.sh --ci` end to end: fetch the .debs (apt-get download, kept in .tmp/bighost-ci),
#    unpack them with dpkg-deb -x into a fresh prefix, run 2 thread counts × 3 targets through the
#    unpacked sysbench, MariaDB and HAProxy, and check every point, the results file and the graph.
# About 70 s on the 2-core development host once the .debs are fetched (24 MB, ~60 s the first time).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
	printf 'bighost-check: FAIL: %s\n' "$*" >&2
	exit 1
}

# expect_refusal WANT CMD...: CMD must fail and say WANT.
expect_refusal() {
	local want=$1 out
	shift
	if out=$("$@" 2>&1); then fail "$* succeeded; it should refuse ($want)"; fi
	grep -q -- "${want}" <<<"${out}" || fail "$* failed without saying '${want}':"$'\n'"${out}"
	echo "ok: $* refused (${want})"
}

expect_refusal 'not a real Linux kernel' env BIGHOST_KERNEL_RELEASE=4.4.0 bench/bighost.sh --plan --small
expect_refusal 'needs 16' env BIGHOST_CPUS_ALLOWED=0-7 bench/bighost.sh --plan

plan=$(BIGHOST_CPUS_ALLOWED=0-19 bench/bighost.sh --plan 2>&1) || fail "--plan on 20 CPUs failed: ${plan}"
for want in '--proxy-cpus 0,1,2,3 --proxy-loops 4' '--mariadb-cpus 4,5,6,7,8,9,10,11' '--sysbench-cpus 12,13,14,15' \
	'--threads 1,16,256,1024,4096,8192' '--targets direct,proxy-epoll,haproxy' '--time 10 --warmup 3'; do
	grep -q -- "${want}" <<<"${plan}" || fail "the 16-core plan lacks '${want}':"$'\n'"${plan}"
done
echo "ok: the 16-core placement and points"

started=${SECONDS}
bench/bighost.sh --ci
echo "ok: bench/bighost.sh --ci in $((SECONDS - started)) s"
