#!/usr/bin/env bash
# bench/bighost.sh: the 16-core run of the headline curve, in one command, on a host with no network.
#
# On a connected machine of the same architecture (a Debian or Ubuntu one, ideally the release the
# packages should come from):   bench/bighost.sh --fetch
# then carry the checkout, .bighost/ included (git-ignored), to the 16-core host and run:
#                               bench/bighost.sh
# Run `bench/bighost.sh --help` for what it does, the time arithmetic and the options.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
# The tools the sweep runs, as Debian packages: -core packages carry mariadbd, mariadb-install-db,
# my_print_defaults and the mariadb client without the perl, galera and rsync that the full
# mariadb-server pulls in for replication and service management.
readonly PACKAGES=(sysbench mariadb-server-core mariadb-client-core haproxy)
# Dependencies left out of the fetch: glibc must be the host's own (a second libc on
# LD_LIBRARY_PATH beside the host's dynamic loader crashes), and the rest is package-manager and
# maintainer-script plumbing that none of the tools runs.
readonly SKIP_PACKAGES_RE='^(libc6|libc-bin|dpkg|tar|passwd|adduser|debconf|cdebconf|init-system-helpers|install-info|usrmerge|usr-is-merged|sysvinit-utils|lsb-base|perl|perl-base|perl-modules-.*|libperl.*|.*-perl|libdebian-installer4|libtextwrap1|libnewt0\.52|libslang2)$'
# The original curve's points (issue 21).
readonly FULL_THREADS=1,16,256,1024,4096,8192
readonly FULL_TARGETS=direct,proxy-epoll,haproxy

log() { printf '[bighost] %s\n' "$*" >&2; }
step() { printf '\n[bighost] == %s (at %ss)\n' "$*" "$((SECONDS - STARTED))" >&2; }
die() {
	printf '[bighost] error: %s\n' "$*" >&2
	exit 1
}
STARTED=${SECONDS}

usage() {
	cat <<'EOF'
bench/bighost.sh: sysbench oltp_read_only at 1, 16, 256, 1024, 4096 and 8192 threads, direct vs the
Scale Stack proxy (epoll, 4 loops) vs HAProxy, on a 16-core Linux host without network, with the proxy,
MariaDB and sysbench each on CPUs of their own. Writes bench/results/bighost-DATE.{csv,md,png}.

Usage
  bench/bighost.sh --fetch [DIR]    on a connected machine: download the packages and build the Go tools
  bench/bighost.sh [options]        on the big host: unpack, check, pin, run, write results
  bench/bighost.sh --ci             reduced end-to-end run for make test (results in a temp dir)

1. Packages. --fetch runs `apt-get download` of sysbench, mariadb-server-core, mariadb-client-core
   and haproxy and of every dependency (apt-cache depends --recurse) except glibc and package-manager
   plumbing, into DIR/debs (DIR defaults to .bighost/ in the checkout, git-ignored; a package whose
   .deb is already there is not fetched again). It also builds bin/scalestack, the sweep driver and the
   graph drawer into DIR/bin (the big host needs no Go then), recording the commit. On the big host
   every .deb is unpacked with `dpkg-deb -x` (or `ar` + `tar` where there is no dpkg) into a private
   prefix (.tmp/bighost/prefix), never into /; each tool is reached through a small wrapper that sets
   LD_LIBRARY_PATH for that tool alone, LUA_PATH for sysbench's tests, and --basedir, --plugin-dir,
   --lc-messages-dir and --character-sets-dir for MariaDB. Every tool's libraries are checked with ldd
   before anything runs. The host's glibc must be at least the fetching machine's (MANIFEST says which).
   Without DIR/debs the tools already on PATH are used (--apt installs missing ones with apt-get).
2. Kernel. Refuses a kernel that is not a real Linux one: gVisor reports 4.4.0 (uname -r) and says
   so in dmesg; CPU pinning and the CPU figures would be fiction there.
3. Placement. Of the CPUs this process may use (/proc/self/status Cpus_allowed_list), the first 4 run
   the proxy (4 loops, its --cpus) and HAProxy, the next 8 MariaDB and the next 4 sysbench, through
   the sweep's --proxy-cpus, --mariadb-cpus and --sysbench-cpus (taskset). Fewer than 16 CPUs is
   refused unless --small: then a quarter goes to the proxy, a quarter to sysbench and the rest to
   MariaDB (below 4 CPUs: proxy on the first, sysbench on the last, MariaDB on all).
4. The run. 6 thread counts × 3 targets × 1 repetition = 18 points of --warmup 3 + --time 10 s:
   234 s measured. Connecting and tearing down the threads costs about 3 s a point up to 1024
   threads, 10 s at 4096 and 20 s at 8192 (measured on 2 cores; a 16-core host is faster):
   12×3 + 3×10 + 3×20 = 126 s, plus about 20 s to start MariaDB and load 100,000 rows, so about
   380 s, within the 8 minutes (480 s) with 100 s to spare. The results file says how long it took.
5. Output. bench/results/bighost-YYYYMMDD-HHMM.{csv,md,png}; the .md ends with a "Big host" section:
   this exact command, the CPU model, the kernel (uname -r and /proc/version), the placement, where
   the packages came from and their versions, and the wall time. Progress: each step, then the
   sweep's line per point with its ETA.

Options
  --fetch [DIR]            fetch mode (see 1); DIR defaults to .bighost
  --pkgs DIR               where the fetched files are [.bighost]; its debs/ is used when present
  --prefix DIR             where the packages are unpacked [.tmp/bighost/prefix]
  --apt                    without DIR/debs, apt-get install missing tools (needs network)
  --small                  allow fewer than 16 CPUs (see 3)
  --ci                     make test's reduced run: --small, threads 16,64, 2 s + 1 s warm-up per
                           point, 10,000 rows, packages fetched into .tmp/bighost-ci/debs and
                           unpacked (the same path as the big host's), results in a temp dir that is
                           checked (every point ok, a graph) and removed
  --threads LIST           thread counts [1,16,256,1024,4096,8192]
  --targets LIST           sweep targets [direct,proxy-epoll,haproxy]
  --time S, --warmup S     measured and warm-up seconds per point [10, 3]
  --reps N                 repetitions [1]
  --backend-conns N        the proxy's backend connections [32: a few per MariaDB core]
  --proxy-extra "FLAGS"    more flags for the proxy ["--queue-timeout 60s": 8192 read_only clients
                           queue for backends longer than the default]
  --out DIR                results directory [bench/results]
  --name STEM              results file stem [bighost-YYYYMMDD-HHMM]
  --rebuild                build the Go tools here even when DIR/bin has them (needs Go and its
                           module cache)
  --plan                   print the checks, the placement and the sweep command, run nothing
  -h, --help               this text

On the big host (see bench/README.md, "Run it on a 16-core host"): copy the checkout with .bighost/,
`cd` into it, run `bench/bighost.sh` as root or as a user whose hard open-file limit is at least
17,000 (HAProxy at 8192 threads), then commit bench/results/bighost-*.
EOF
}

# shell_word quotes an argument for the command line recorded in the results.
shell_word() {
	if [[ $1 =~ ^[A-Za-z0-9_./,:=@+-]+$ ]]; then
		printf '%s' "$1"
	else
		local q="'\\''"
		printf "'%s'" "${1//\'/${q}}"
	fi
}

# ---------------------------------------------------------------------------------------------------
# Fetch (connected machine)

# dependency_closure prints the packages to fetch: the tools and everything they depend on,
# recursively, less the skipped ones. Virtual packages (<name>) and alternatives' markers are dropped.
dependency_closure() {
	apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
		--no-replaces --no-enhances "$@" |
		grep -E '^[a-z0-9]' | sed 's/:.*//' | sort -u | grep -Ev "${SKIP_PACKAGES_RE}"
}

fetch_debs() {
	local dir=$1
	shift
	command -v apt-get >/dev/null 2>&1 || die "--fetch needs apt-get (a Debian or Ubuntu machine)"
	mkdir -p "${dir}"
	local -a all=() todo=()
	mapfile -t all < <(dependency_closure "$@")
	[[ ${#all[@]} -gt 0 ]] || die "apt-cache found no packages for $* (apt-get update?)"
	local p f
	for p in "${all[@]}"; do
		compgen -G "${dir}/${p}_*.deb" >/dev/null || todo+=("${p}")
	done
	log "${#all[@]} packages (${#todo[@]} to download) into ${dir}"
	if [[ ${#todo[@]} -gt 0 ]]; then
		# apt-get download writes into the current directory. One failed name fails the batch, so a
		# failed batch is retried one by one to name the culprit.
		if ! (cd "${dir}" && apt-get download -q "${todo[@]}" >/dev/null 2>"${dir}/.download.err"); then
			for p in "${todo[@]}"; do
				compgen -G "${dir}/${p}_*.deb" >/dev/null && continue
				(cd "${dir}" && apt-get download -q "${p}" >/dev/null 2>>"${dir}/.download.err") ||
					die "apt-get download ${p} failed: $(tail -n 3 "${dir}/.download.err")"
			done
		fi
	fi
	{
		echo "# Fetched by bench/bighost.sh --fetch on $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "# from: $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | tr -d '"'), $(uname -m)"
		echo "# glibc of the fetching machine (the host's must be at least this): $(getconf GNU_LIBC_VERSION 2>/dev/null || echo unknown)"
		echo "# tools: $*"
		# name_version_arch.deb, the epoch's colon written %3a
		for p in "${all[@]}"; do
			f=$(compgen -G "${dir}/${p}_*.deb" | head -n 1)
			f=${f##*/}
			f=${f#*_}
			printf '%s %s\n' "${p}" "${f%_*}" | sed 's/%3a/:/'
		done
	} >"${dir}/MANIFEST"
	log "fetched: $(du -sh "${dir}" | cut -f1) in ${dir} (list in ${dir}/MANIFEST)"
}

build_tools() {
	local bin=$1
	command -v go >/dev/null 2>&1 || die "go is not on PATH; the proxy, the sweep driver and the graph are Go programs"
	export GOFLAGS="${GOFLAGS:--ldflags=-checklinkname=0 -buildvcs=false}"
	mkdir -p "${bin}"
	log "building bin/scalestack, bench/sweep and bench/plot into ${bin}"
	(cd "${REPO_ROOT}" && go build -o "${bin}/scalestack" ./cmd/scalestack) || die "building cmd/scalestack failed"
	(cd "${REPO_ROOT}/bench" && go build -o "${bin}/sweep" ./sweep && go build -o "${bin}/plot" ./plot) ||
		die "building bench/sweep and bench/plot failed"
	git -C "${REPO_ROOT}" describe --always --dirty >"${bin}/COMMIT" 2>/dev/null || echo unknown >"${bin}/COMMIT"
}

cmd_fetch() {
	local dir=$1
	step "fetch: packages into ${dir}/debs"
	fetch_debs "${dir}/debs" "${PACKAGES[@]}"
	step "fetch: Go tools into ${dir}/bin"
	build_tools "${dir}/bin"
	step "done"
	log "carry ${dir} with the checkout to the big host and run bench/bighost.sh there"
}

# ---------------------------------------------------------------------------------------------------
# Unpack (big host)

extract_deb() {
	local deb=$1 prefix=$2
	if command -v dpkg-deb >/dev/null 2>&1; then
		dpkg-deb -x "${deb}" "${prefix}"
		return
	fi
	command -v ar >/dev/null 2>&1 || die "neither dpkg-deb nor ar is installed; one is needed to unpack ${deb}"
	# A .deb is an ar archive whose data.tar.{xz,zst,gz} holds the files; tar picks the decompressor.
	local member tmp
	member=$(ar t "${deb}" | grep '^data\.tar') || die "${deb}: no data.tar member"
	tmp=$(mktemp -d)
	(cd "${tmp}" && ar x "${deb}" "${member}") && tar -xf "${tmp}/${member}" -C "${prefix}"
	rm -rf "${tmp}"
}

# write_wrapper NAME REAL [EXTRA ARG...] makes PREFIX/wrap/NAME run REAL with the prefix's libraries,
# appending EXTRA after the caller's arguments (MariaDB wants --defaults-file first).
write_wrapper() {
	local name=$1 real=$2
	shift 2
	local extra="" a
	for a in "$@"; do extra+=" $(shell_word "${a}")"; done
	cat >"${WRAP_DIR}/${name}" <<EOF
#!/bin/sh
# Made by bench/bighost.sh: ${name} from ${PREFIX}, its libraries for it and its children alone.
LD_LIBRARY_PATH='${PREFIX_LIBS}'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
LUA_PATH='${PREFIX}/usr/share/sysbench/?.lua;;'
export LD_LIBRARY_PATH LUA_PATH
exec '${real}' "\$@"${extra}
EOF
	chmod 755 "${WRAP_DIR}/${name}"
}

find_in_prefix() {
	local d
	for d in usr/sbin usr/bin sbin bin; do
		if [[ -x ${PREFIX}/${d}/$1 ]]; then
			echo "${PREFIX}/${d}/$1"
			return 0
		fi
	done
	return 1
}

unpack_debs() {
	local debs=$1
	PREFIX_LIBS=""
	local stamp="${PREFIX}/.unpacked-from"
	local want
	want=$(cd "${debs}" && find . -maxdepth 1 -name '*.deb' -printf '%f %s\n' | sort | cksum)
	if [[ -s ${stamp} && $(cat "${stamp}") == "${want}" ]]; then
		log "prefix ${PREFIX} already holds these packages"
	else
		rm -rf "${PREFIX}"
		mkdir -p "${PREFIX}"
		local n=0 deb
		for deb in "${debs}"/*.deb; do
			extract_deb "${deb}" "${PREFIX}" || die "unpacking ${deb} failed"
			n=$((n + 1))
		done
		echo "${want}" >"${stamp}"
		log "unpacked ${n} packages into ${PREFIX} ($(du -sh "${PREFIX}" | cut -f1))"
	fi
	local d
	for d in "${PREFIX}"/usr/lib/*-linux-gnu* "${PREFIX}"/lib/*-linux-gnu* "${PREFIX}/usr/lib" "${PREFIX}/lib"; do
		[[ -d ${d} ]] && PREFIX_LIBS+="${PREFIX_LIBS:+:}${d}"
	done
	WRAP_DIR="${PREFIX}/wrap"
	rm -rf "${WRAP_DIR}"
	mkdir -p "${WRAP_DIR}"
	local real share="${PREFIX}/usr/share/mysql"
	local -a mariadbd_args=(--basedir="${PREFIX}/usr" --plugin-dir="${PREFIX}/usr/lib/mysql/plugin"
		--lc-messages-dir="${share}" --character-sets-dir="${share}/charsets")
	real=$(find_in_prefix mariadbd) || die "mariadbd is not in the unpacked packages"
	write_wrapper mariadbd "${real}" "${mariadbd_args[@]}"
	# mariadb-install-db finds mariadbd, my_print_defaults, resolveip, its SQL and messages under basedir.
	real=$(find_in_prefix mariadb-install-db) || die "mariadb-install-db is not in the unpacked packages"
	write_wrapper mariadb-install-db "${real}" --basedir="${PREFIX}/usr"
	local t
	for t in mariadb my_print_defaults sysbench haproxy; do
		real=$(find_in_prefix "${t}") || die "${t} is not in the unpacked packages"
		write_wrapper "${t}" "${real}"
	done
	# ldd (glibc's, on every glibc host) names any library neither the prefix nor the host has.
	local missing
	for t in mariadbd mariadb my_print_defaults sysbench haproxy; do
		real=$(find_in_prefix "${t}")
		missing=$(LD_LIBRARY_PATH="${PREFIX_LIBS}" ldd "${real}" 2>&1 | grep -E 'not found|version .* not found' || true)
		[[ -z ${missing} ]] || die "${real} cannot load: ${missing} (fetch on a machine whose release matches this host's; MANIFEST names the fetching machine's glibc, this host has $(getconf GNU_LIBC_VERSION 2>/dev/null))"
	done
	export PATH="${WRAP_DIR}:${PATH}"
	log "tools from ${PREFIX}: $(sysbench --version), $(mariadbd --version | sed 's/.*Ver //; s/ for .*//'), $(haproxy -v | head -n 1 | cut -d' ' -f1-3)"
}

# ---------------------------------------------------------------------------------------------------
# Checks and placement

check_kernel() {
	local release=${BIGHOST_KERNEL_RELEASE:-$(uname -r)}
	[[ $(uname -s) == Linux ]] || die "not Linux ($(uname -s)); the proxy's loops drive epoll/io_uring"
	if [[ ${release} == 4.4.0 ]] || grep -qi gvisor /proc/version 2>/dev/null ||
		{ dmesg 2>/dev/null | head -n 20 | grep -qi gvisor; }; then
		die "kernel ${release} is not a real Linux kernel (gVisor reports 4.4.0): CPU pinning, the per-process CPU figures and the proxy's I/O would not be real there; run on a VM or bare metal"
	fi
	log "kernel: $(uname -r) ($(cut -c1-100 /proc/version))"
}

# expand_cpus turns a CPU list such as 0-3,8,10-11 into one CPU per line.
expand_cpus() {
	local part a b
	local -a parts
	IFS=, read -ra parts <<<"$1"
	for part in "${parts[@]}"; do
		if [[ ${part} == *-* ]]; then
			a=${part%-*} b=${part#*-}
			seq "${a}" "${b}"
		else
			echo "${part}"
		fi
	done
}

join_commas() {
	local IFS=,
	echo "$*"
}

# plan_cpus sets PROXY_CPUS, MARIADB_CPUS, SYSBENCH_CPUS and PROXY_LOOPS from the CPUs this process may
# use (a cgroup cpuset or taskset may leave fewer than nproc --all).
plan_cpus() {
	local small=$1
	local -a cpus
	local list
	# BIGHOST_CPUS_ALLOWED stands in for the host's list in tests of the placement (with --plan).
	list=${BIGHOST_CPUS_ALLOWED:-$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status)}
	mapfile -t cpus < <(expand_cpus "${list}")
	local n=${#cpus[@]}
	if [[ ${n} -ge 16 ]]; then
		PROXY_CPUS=$(join_commas "${cpus[@]:0:4}")
		MARIADB_CPUS=$(join_commas "${cpus[@]:4:8}")
		SYSBENCH_CPUS=$(join_commas "${cpus[@]:12:4}")
	elif [[ ${small} -eq 0 ]]; then
		die "this host lets me use ${n} CPUs (${list}); the big-host run needs 16 (4 proxy, 8 MariaDB, 4 sysbench). --small runs on fewer, with the results file saying so"
	elif [[ ${n} -ge 4 ]]; then
		local q=$((n / 4))
		PROXY_CPUS=$(join_commas "${cpus[@]:0:q}")
		MARIADB_CPUS=$(join_commas "${cpus[@]:q:n-2*q}")
		SYSBENCH_CPUS=$(join_commas "${cpus[@]:n-q:q}")
	else
		PROXY_CPUS=${cpus[0]}
		MARIADB_CPUS=$(join_commas "${cpus[@]}")
		SYSBENCH_CPUS=${cpus[n - 1]}
	fi
	PROXY_LOOPS=$(expand_cpus "${PROXY_CPUS}" | wc -l)
	log "placement over ${n} CPUs (${list}): proxy/HAProxy ${PROXY_CPUS} (${PROXY_LOOPS} loops), MariaDB ${MARIADB_CPUS}, sysbench ${SYSBENCH_CPUS}"
}

# ---------------------------------------------------------------------------------------------------
# Tools on PATH when no packages were carried

use_system_tools() {
	local apt=$1 need_haproxy=$2
	local -a missing=()
	command -v sysbench >/dev/null 2>&1 || missing+=(sysbench)
	command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] || missing+=(mariadb-server-core)
	command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client-core)
	if [[ ${need_haproxy} -eq 1 ]]; then
		command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
	fi
	[[ ${#missing[@]} -gt 0 ]] || return 0
	[[ ${apt} -eq 1 ]] || die "no packages carried (${PKGS_DIR}/debs) and missing here: ${missing[*]}; on a connected machine run bench/bighost.sh --fetch and carry .bighost/ along, or pass --apt where apt-get can reach a mirror"
	"${REPO_ROOT}/scripts/apt-install.sh" "${missing[@]}"
}

# ---------------------------------------------------------------------------------------------------
# CI check of a run's outputs

check_ci_results() {
	local out=$1 stem=$2 want=$3
	local csv="${out}/${stem}.csv"
	[[ -s ${csv} ]] || die "CI: ${csv} missing"
	[[ -s ${out}/${stem}.png ]] || die "CI: no graph ${out}/${stem}.png"
	grep -q '^## Big host' "${out}/${stem}.md" || die "CI: ${out}/${stem}.md has no Big host section"
	local rows ok
	rows=$(($(wc -l <"${csv}") - 1))
	ok=$(grep -c ',ok,' "${csv}" || true)
	[[ ${rows} -eq ${want} && ${ok} -eq ${want} ]] ||
		die "CI: expected ${want} points all ok, got ${rows} rows of which ${ok} ok:"$'\n'"$(cat "${csv}")"
	log "CI: ${want} points ok, graph and results file written"
}

# ---------------------------------------------------------------------------------------------------

main() {
	local mode=run fetch_dir="" small=0 ci=0 apt=0 plan_only=0 rebuild=0
	local threads=${FULL_THREADS} targets=${FULL_TARGETS} time_s=10 warmup_s=3 reps=1
	local backend_conns=32 proxy_extra="--queue-timeout 60s" out="${REPO_ROOT}/bench/results" name=""
	local table_size=100000
	PKGS_DIR="${REPO_ROOT}/.bighost"
	PREFIX="${REPO_ROOT}/.tmp/bighost/prefix"
	local -a original=("$@")
	local -A given=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		-h | --help) usage; return 0 ;;
		--fetch)
			mode=fetch
			if [[ $# -ge 2 && $2 != --* ]]; then fetch_dir=$2; shift; fi
			;;
		--pkgs) PKGS_DIR=${2:?--pkgs needs a directory}; shift ;;
		--prefix) PREFIX=${2:?--prefix needs a directory}; shift ;;
		--apt) apt=1 ;;
		--small) small=1 ;;
		--ci) ci=1 small=1 ;;
		--plan) plan_only=1 ;;
		--rebuild) rebuild=1 ;;
		--threads) threads=${2:?}; given[threads]=1; shift ;;
		--targets) targets=${2:?}; shift ;;
		--time) time_s=${2:?}; given[time]=1; shift ;;
		--warmup) warmup_s=${2:?}; given[warmup]=1; shift ;;
		--reps) reps=${2:?}; shift ;;
		--backend-conns) backend_conns=${2:?}; shift ;;
		--proxy-extra) proxy_extra=${2?}; shift ;;
		--out) out=${2:?}; given[out]=1; shift ;;
		--name) name=${2:?}; shift ;;
		*) die "unknown argument $1 (see --help)" ;;
		esac
		shift
	done
	# Absolute: the unpacking and the wrappers change directory.
	PREFIX=$(realpath -m "${PREFIX}")
	PKGS_DIR=$(realpath -m "${PKGS_DIR}")
	[[ -z ${fetch_dir} ]] || fetch_dir=$(realpath -m "${fetch_dir}")
	if [[ ${mode} == fetch ]]; then
		cmd_fetch "${fetch_dir:-${PKGS_DIR}}"
		return
	fi

	local ci_dir="" debs="${PKGS_DIR}/debs"
	if [[ ${ci} -eq 1 ]]; then
		ci_dir="${REPO_ROOT}/.tmp/bighost-ci"
		[[ -n ${given[threads]-} ]] || threads=16,64
		[[ -n ${given[time]-} ]] || time_s=2
		[[ -n ${given[warmup]-} ]] || warmup_s=1
		table_size=10000
		PREFIX="${ci_dir}/prefix"
		# CI proves the carried-packages path: fetch (kept between runs: only new names download),
		# unpack afresh every time, run through the wrappers.
		[[ -d ${debs} ]] || debs="${ci_dir}/debs"
		rm -rf "${PREFIX}"
	fi

	step "1/5 checks"
	check_kernel
	plan_cpus "${small}"

	local stamp
	stamp=$(date -u +%Y%m%d-%H%M)
	name=${name:-bighost-${stamp}}
	local work="${REPO_ROOT}/.tmp/bighost/work"
	if [[ ${ci} -eq 1 ]]; then
		name="bighost-ci-${stamp}"
		work="${ci_dir}/work"
		[[ -n ${given[out]-} ]] || out=$(mktemp -d "${TMPDIR:-/tmp}/bighost-ci.XXXXXX")
	fi
	local -a sweep_args=(--tests oltp_read_only --threads "${threads}" --targets "${targets}"
		--time "${time_s}" --warmup "${warmup_s}" --reps "${reps}" --table-size "${table_size}"
		--proxy-cpus "${PROXY_CPUS}" --proxy-loops "${PROXY_LOOPS}" --mariadb-cpus "${MARIADB_CPUS}"
		--sysbench-cpus "${SYSBENCH_CPUS}" --backend-conns "${backend_conns}" --proxy-extra "${proxy_extra}"
		--mariadb-script none --out "${out}" --work "${work}" --name "${name}")
	local cmdline="bench/bighost.sh" a
	for a in "${original[@]}"; do cmdline+=" $(shell_word "${a}")"; done
	if [[ ${plan_only} -eq 1 ]]; then
		local sw="sweep"
		for a in "${sweep_args[@]}"; do sw+=" $(shell_word "${a}")"; done
		log "would run: ${sw}"
		return 0
	fi

	step "2/5 packages"
	local pkg_source
	if [[ ${ci} -eq 1 && ! -d ${PKGS_DIR}/debs ]]; then
		fetch_debs "${debs}" "${PACKAGES[@]}"
	fi
	if compgen -G "${debs}/*.deb" >/dev/null; then
		unpack_debs "${debs}"
		pkg_source="unpacked from ${debs} into ${PREFIX} ($(grep -c -v '^#' "${debs}/MANIFEST" 2>/dev/null || echo '?') packages; $(sed -n 's/^# from: //p' "${debs}/MANIFEST" 2>/dev/null))"
	else
		local need_haproxy=0
		[[ ",${targets}," != *,haproxy,* ]] || need_haproxy=1
		use_system_tools "${apt}" "${need_haproxy}"
		pkg_source="the host's own (PATH)"
		log "no .deb files in ${debs}; using the tools on PATH"
	fi

	step "3/5 Go tools"
	local bin="${PKGS_DIR}/bin" commit
	if [[ ${ci} -eq 1 || ${rebuild} -eq 1 || ! -x ${bin}/sweep ]]; then
		bin="$(dirname "${PREFIX}")/bin"
		build_tools "${bin}"
	else
		commit=$(git -C "${REPO_ROOT}" describe --always --dirty 2>/dev/null || echo unknown)
		[[ $(cat "${bin}/COMMIT") == "${commit}" ]] ||
			log "warning: ${bin} was built from $(cat "${bin}/COMMIT"), the checkout is ${commit}; --rebuild builds from the checkout (needs Go)"
		log "using the tools built by --fetch in ${bin} ($(cat "${bin}/COMMIT"))"
	fi
	commit=$(cat "${bin}/COMMIT")

	step "4/5 sweep: ${threads} threads × ${targets} × ${reps} rep(s), ${warmup_s} + ${time_s} s per point"
	# sysbench opens a socket per thread and HAProxy two per client; root may raise the hard limit too.
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	local sweep_started=${SECONDS} rc=0
	(cd "${REPO_ROOT}" && SWEEP_COMMAND="${cmdline}" "${bin}/sweep" --plot-bin "${bin}/plot" \
		--proxy-bin "${bin}/scalestack" "${sweep_args[@]}") || rc=$?
	local took=$((SECONDS - sweep_started))

	step "5/5 results"
	local md="${out}/${name}.md"
	if [[ -f ${md} ]]; then
		local sw="sweep" cpu_model
		for a in "${sweep_args[@]}"; do sw+=" $(shell_word "${a}")"; done
		cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
		{
			echo
			echo "## Big host"
			echo
			echo "- Command: \`${cmdline}\`, which ran \`${sw}\`"
			echo "- CPU: ${cpu_model:-unknown}; $(nproc) CPUs usable of $(nproc --all)"
			echo "- Kernel: $(uname -r); $(cat /proc/version)"
			echo "- Placement: proxy/HAProxy CPUs ${PROXY_CPUS} (${PROXY_LOOPS} loops), MariaDB ${MARIADB_CPUS}, sysbench ${SYSBENCH_CPUS}$(pick "${small}" ' (--small: fewer than 16 CPUs, not the 16-core layout)')"
			echo "- Packages: ${pkg_source}"
			echo "- Proxy, sweep and graph built from ${commit}"
			echo "- Sweep wall time: ${took} s (the budget is 480 s)$( [[ ${took} -le 480 ]] || echo '; OVER BUDGET')"
		} >>"${md}"
	fi
	[[ ${rc} -eq 0 ]] || die "the sweep failed (exit ${rc}); logs in ${work}/logs"
	log "done in $((SECONDS - STARTED)) s (sweep ${took} s): ${out}/${name}.{csv,md,png}"
	if [[ ${ci} -eq 1 ]]; then
		local nth ntg
		nth=$(expand_cpus "${threads}" | wc -l)
		ntg=$(tr ',' '\n' <<<"${targets}" | wc -l)
		check_ci_results "${out}" "${name}" "$((nth * ntg * reps))"
		[[ -n ${given[out]-} ]] || rm -rf "${out}"
	fi
}

pick() {
	if [[ $1 -eq 1 ]]; then printf '%s' "$2"; fi
}

main "$@"
