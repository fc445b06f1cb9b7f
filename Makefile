# Scale Stack build, test and run targets. `make help` lists them.
#
# giouring only links with -checklinkname=0, so every go command gets it through GOFLAGS.
export GOFLAGS := -ldflags=-checklinkname=0 -buildvcs=false

GO        ?= go
PKGS      ?= ./...
TESTFLAGS ?=
FUZZTIME  ?= 60s
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
# Where `make run` keeps its throwaway MariaDB (tests use .tmp/mariadb-test; see scripts/test.sh).
RUN_DB_DIR := $(CURDIR)/.tmp/mariadb-run

.PHONY: help build test lint fuzz run bench clean

help:
	@echo 'make build   build bin/scalestack'
	@echo 'make test    start a throwaway MariaDB, go vet, go test -race, brief fuzzing (scripts/test.sh)'
	@echo '             TESTFLAGS="-run X -v" PKGS=./conn/... narrow it'
	@echo 'make lint    gofmt, go vet, staticcheck $(STATICCHECK_VERSION)'
	@echo 'make fuzz    every fuzz target for FUZZTIME (default 60s), with a throwaway MariaDB'
	@echo 'make run     MariaDB + the MySQL proxy on 127.0.0.1:6033 in the foreground'
	@echo 'make bench   bench/run.sh (BENCH_ARGS="--quick" for a smoke run)'
	@echo 'make clean   remove bin/ and .tmp/ (stops servers left there)'

build:
	$(GO) build -o bin/scalestack ./cmd/scalestack

test:
	PKGS='$(PKGS)' TESTFLAGS='$(TESTFLAGS)' scripts/test.sh

lint:
	@echo '== gofmt'
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@echo '== go vet'
	$(GO) vet $(PKGS)
	@echo '== staticcheck'
	@if [ ! -x '$(GOBIN_DIR)/staticcheck' ]; then \
		echo 'installing staticcheck $(STATICCHECK_VERSION)'; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi
	'$(GOBIN_DIR)/staticcheck' $(PKGS)
	@if command -v shellcheck >/dev/null; then echo '== shellcheck'; shellcheck scripts/*.sh .ci/run bench/bighost.sh; \
	else echo '== shellcheck not installed (apt-get install shellcheck); skipped'; fi

# Fuzzing runs under the same throwaway MariaDB as the tests (pool/mysqlproxy's client-packet target no
# longer needs it: it runs against the in-process double internal/mysqlfake).
fuzz:
	FUZZ_ONLY=1 FUZZTIME='$(FUZZTIME)' PKGS='$(PKGS)' scripts/test.sh

# run needs the lead's `scalestack passwd` and `scalestack mysqlproxy` subcommands.
run: build
	@scripts/run.sh '$(RUN_DB_DIR)'

# make bench BENCH_ARGS='--quick' passes options through (bench/run.sh --help).
bench:
	bench/run.sh $(BENCH_ARGS)

clean:
	@for d in .tmp/*/ .tmp/*/*/; do \
		if [ -e "$$d.scalestack-mariadb" ]; then scripts/mariadb.sh stop --dir "$$d"; fi; \
	done
	rm -rf bin .tmp
