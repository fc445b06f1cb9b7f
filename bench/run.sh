#!/usr/bin/env bash
# bench/run.sh: the sysbench sweep behind Scale Stack's headline graph, as a user runs it.
#
# Installs what is missing (Debian packages), builds the sweep driver, the graph drawer and, when a proxy
# target is asked for, bin/scalestack; then runs bench/sweep, which starts a throwaway MariaDB, measures
# every point and writes bench/results/sweep-DATE.{csv,md,png}. `make bench` calls this script.
# With --idle-clients N it builds bench/cmd/mysqlload instead of needing sysbench and measures the
# proxy's memory with N idle clients (bench/results/idle-DATE.md).
# Run `bench/run.sh --help` for the options.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
TOOLS_DIR="${REPO_ROOT}/.tmp/bench/bin"
readonly TOOLS_DIR

log() { printf '[bench/run.sh] %s\n' "$*" >&2; }
die() {
	printf '[bench/run.sh] error: %s\n' "$*" >&2
	exit 1
}

usage() {
	cat <<'EOF'
bench/run.sh: sysbench oltp_read_only / oltp_point_select at 1..8192 client threads against MariaDB
directly, through the Scale Stack proxy (epoll and io_uring) and through HAProxy (TCP mode, 1:1).

Usage: bench/run.sh [--quick] [options]

What to run
  --quick                 smoke run: threads 16,256, 5 s per point, 2 s warm-up, 1 repetition
                          (about 1 minute per target; explicit options below still win)
  --metrics-cost          what metrics cost (issue #6): proxy-epoll (admin endpoint off) against
                          proxy-epoll-scraped (admin on, /metrics scraped every second), oltp_point_select
                          and oltp_read_only at 256 threads, 7 rounds of 3 + 10 s (about 7 minutes);
                          explicit options win, and with --quick only the targets and tests are its
  --idle-clients N        idle clients (issue #5): hold N clients (bench/cmd/mysqlload) on each proxy
                          target, report its RSS per client and open files, then the latency of
                          --idle-active of them for --time seconds; targets proxy-epoll,proxy-uring only
                          (about 22 s per target and repetition at N=16000 and --time 10 on 2 cores)
  --idle-active K         with --idle-clients: how many clients run SELECT 1 back to back [100]
  --profile-scraped       also take a CPU profile of proxy-epoll-scraped over each measured window
                          (.tmp/bench/NAME/logs/*-cpu.pprof); profiling costs CPU itself
  --tests LIST            sysbench tests [oltp_read_only,oltp_point_select]
  --threads LIST          client thread counts [1,4,16,64,256,1024,2048,4096,8192]
  --targets LIST          direct, proxy-epoll, proxy-uring, haproxy [these four],
                          proxy-epoll-scraped (proxy-epoll with its /metrics scraped every second), and
                          proxy-epoll-base (proxy-epoll run from --base-bin or --base-rev: before/after a
                          change, side by side in one run), and proxy-epoll-tls (proxy-epoll with TLS towards
                          its clients: a throwaway CA's certificate, sysbench --mysql-ssl=on), and
                          proxy-epoll-pipelined (proxy-epoll with --pipeline-depth, below)
  --pipeline-depth K      the proxy-epoll-pipelined target's --pipeline-depth [8]
  --time S                measured seconds per point, or the active phase with --idle-clients [15]
  --warmup S              warm-up seconds per point, not measured [5]
  --reps N                repetitions; each round runs every target back to back per thread count [3]
  --tables N              sysbench tables [1]
  --table-size N          rows per table [100000]

Placement on a big host (CPU lists as taskset takes them, e.g. 0-3 or 0,2,4)
  --proxy-cpus LIST       the proxy (taskset and its --cpus) and HAProxy (taskset)
  --proxy-loops N         the proxy's reactor loops [its default: one per usable CPU]
  --backend-conns N       the proxy's backend connections to MariaDB [128]
  --proxy-extra "FLAGS"   more flags for scalestack mysqlproxy, e.g. "--queue-timeout 60s"
  --mariadb-cpus LIST     MariaDB
  --sysbench-cpus LIST    sysbench

Environment
  --max-connections N     MariaDB max_connections [10000]; must exceed the largest thread count
  --mariadb-script WHAT   auto (scripts/mariadb.sh when present), none (built-in starter) or a path [auto]
  --proxy-bin PATH        scalestack binary [bin/scalestack, built by this script]
  --base-bin PATH         the scalestack binary of the proxy-epoll-base target
  --base-rev REV          build the proxy-epoll-base binary from git revision REV (in a temporary
                          worktree; the binary stays in .tmp/bench/base-REV/) and use it as --base-bin
  --out DIR               where results go [bench/results]
  --work DIR              scratch: MariaDB data, configs, per-point logs [.tmp/bench]
  --name STEM             results file stem [sweep-YYYYMMDD-HHMM, sweep-quick-... with --quick,
                          metrics-cost-... with --metrics-cost, idle-... with --idle-clients]
  --keep-db               leave the MariaDB data directory behind
  --no-install            do not apt-get missing packages; fail instead
  -h, --help              this text

Outputs (in --out): STEM.csv (one row per run), STEM.md (medians, ratios, the exact command) and
STEM.png (QPS against threads on a log2 axis, one line per target); with --idle-clients only STEM.md.
See bench/README.md.

Examples
  bench/run.sh --quick --targets direct,haproxy
  bench/run.sh --metrics-cost
  bench/run.sh --idle-clients 16000 --idle-active 100 --time 10 --reps 1 --proxy-loops 1 --backend-conns 16
  bench/run.sh --threads 1,16,256,1024,4096,8192 --reps 1 --targets direct,haproxy
  bench/run.sh --proxy-cpus 0-3 --mariadb-cpus 4-11 --sysbench-cpus 12-15
  bench/run.sh --targets proxy-epoll,proxy-epoll-base --base-rev HEAD~3 --threads 16,1024
  bench/run.sh --targets proxy-epoll,proxy-epoll-tls --tests oltp_point_select --threads 16,1024
EOF
}

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }

# shell_word quotes an argument for the command line recorded in the results, leaving plain words
# (thread lists, paths, flags) as the user typed them.
shell_word() {
	if [[ $1 =~ ^[A-Za-z0-9_./,:=@+-]+$ ]]; then
		printf '%s' "$1"
	else
		local q="'\\''"
		printf "'%s'" "${1//\'/${q}}"
	fi
}

main() {
	local no_install=0 targets_given=0 targets="direct,proxy-epoll,proxy-uring,haproxy" proxy_bin="bin/scalestack"
	local idle=0 base_rev=""
	local -a forward=() original=("$@")
	while [[ $# -gt 0 ]]; do
		case $1 in
		-h | --help | -help)
			usage
			return 0
			;;
		--no-install) ;;
		--metrics-cost) [[ ${targets_given} -eq 1 ]] || targets="proxy-epoll,proxy-epoll-scraped" ;;
		--idle-clients | --idle-clients=*)
			idle=1
			[[ ${targets_given} -eq 1 ]] || targets="proxy-epoll,proxy-uring"
			;;
		--targets) targets=${2:?--targets needs a value} targets_given=1 ;;
		--targets=*) targets=${1#*=} targets_given=1 ;;
		--proxy-bin) proxy_bin=${2:?--proxy-bin needs a value} ;;
		--proxy-bin=*) proxy_bin=${1#*=} ;;
		--base-rev)
			base_rev=${2:?--base-rev needs a value}
			shift 2
			continue
			;;
		--base-rev=*)
			base_rev=${1#*=}
			shift
			continue
			;;
		esac
		case $1 in
		--no-install) no_install=1 ;;
		--quick | --keep-db | --metrics-cost | --profile-scraped | --*=*) forward+=("$1") ;;
		--*)
			[[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
			forward+=("$1" "$2")
			shift
			;;
		*) die "unexpected argument $1 (see --help)" ;;
		esac
		shift
	done

	cd "${REPO_ROOT}"
	local want_proxy=0
	[[ ",${targets}," != *",proxy-"* ]] || want_proxy=1

	local -a missing=()
	# The idle-clients mode drives the proxy with bench/cmd/mysqlload, not sysbench.
	[[ ${idle} -eq 1 ]] || have sysbench || missing+=(sysbench)
	if ! have mariadbd && ! have mysqld; then missing+=(mariadb-server); fi
	if ! have mariadb-install-db && ! have mysql_install_db; then
		[[ " ${missing[*]-} " == *" mariadb-server "* ]] || missing+=(mariadb-server)
	fi
	if ! have mariadb && ! have mysql; then missing+=(mariadb-client); fi
	if [[ ",${targets}," == *",haproxy,"* ]] && ! have haproxy; then missing+=(haproxy); fi
	have taskset || missing+=(util-linux)
	if [[ ${#missing[@]} -gt 0 ]]; then
		[[ ${no_install} -eq 0 ]] || die "missing packages (and --no-install given): ${missing[*]}"
		"${REPO_ROOT}/scripts/apt-install.sh" "${missing[@]}" || die "installing ${missing[*]} failed"
	fi
	command -v go >/dev/null 2>&1 || die "go is not on PATH; the sweep driver and the graph are Go programs"

	# giouring (in bin/scalestack) links only with -checklinkname=0; the bench tools do not mind it.
	export GOFLAGS="${GOFLAGS:--ldflags=-checklinkname=0 -buildvcs=false}"
	mkdir -p "${TOOLS_DIR}"
	log "building the sweep driver, the graph drawer and the idle-clients load generator"
	(cd bench && go build -o "${TOOLS_DIR}/sweep" ./sweep && go build -o "${TOOLS_DIR}/plot" ./plot &&
		go build -o "${TOOLS_DIR}/mysqlload" ./cmd/mysqlload) ||
		die "building bench/sweep, bench/plot and bench/cmd/mysqlload failed"
	if [[ ${want_proxy} -eq 1 && ${proxy_bin} == "bin/scalestack" ]]; then
		log "building bin/scalestack"
		go build -o bin/scalestack ./cmd/scalestack ||
			die "building bin/scalestack failed; leave the proxy out with --targets direct,haproxy"
	fi

	if [[ -n ${base_rev} ]]; then
		local rev_id base_dir
		rev_id=$(git rev-parse --short "${base_rev}^{commit}") || die "--base-rev ${base_rev} is not a commit here"
		base_dir="${REPO_ROOT}/.tmp/bench/base-${rev_id}"
		if [[ ! -x ${base_dir}/scalestack ]]; then
			log "building the proxy-epoll-base binary from ${base_rev} (${rev_id})"
			local wt="${REPO_ROOT}/.tmp/bench/worktree-${rev_id}"
			rm -rf "${wt}"
			git worktree prune
			git worktree add --detach "${wt}" "${rev_id}" >/dev/null || die "git worktree add ${rev_id} failed"
			mkdir -p "${base_dir}"
			(cd "${wt}" && go build -o "${base_dir}/scalestack" ./cmd/scalestack) || die "building ${rev_id} failed"
			git worktree remove --force "${wt}"
		fi
		forward+=(--base-bin "${base_dir}/scalestack")
	fi

	# sysbench opens one socket per thread and HAProxy two per client: lift the soft file limit to the
	# hard one (MariaDB and HAProxy raise their own, sysbench does not).
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

	local cmdline="bench/run.sh"
	local a
	for a in "${original[@]}"; do cmdline+=" $(shell_word "${a}")"; done
	SWEEP_COMMAND="${cmdline}" exec "${TOOLS_DIR}/sweep" --plot-bin "${TOOLS_DIR}/plot" --mysqlload "${TOOLS_DIR}/mysqlload" "${forward[@]}"
}

main "$@"
