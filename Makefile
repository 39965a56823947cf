# taskq: PGXS build, plus the two set-up commands of the README
#
#   make test   install missing Debian packages, build, install, run every suite
#   make demo   the same set-up, then a live tour on a throwaway local instance
#   make bench  the same set-up plus the benchmark's packages, then the
#               side-by-side benchmark (test/bench/run.sh $(BENCH_ARGS))
#
# Plain `make`, `make install` and `make installcheck` (against a running
# server) behave as for any PGXS extension.

# taskq, and taskq_router (PL/Proxy functions over taskq shards; SQL only)
EXTENSION = taskq taskq_router
EXTVERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" taskq.control)

MODULE_big = taskq
OBJS = \
	src/taskq.o \
	src/uuid7.o \
	src/util.o \
	src/resultrel.o \
	src/rowinsert.o \
	src/options.o \
	src/backoff.o \
	src/push.o \
	src/pull.o \
	src/mallocpad.o \
	src/direct.o \
	src/leafpeek.o \
	src/pullhead.o \
	src/pullwait.o \
	src/flowcontrol.o \
	src/ratelimit.o \
	src/lifecycle.o \
	src/queue.o \
	src/queuecache.o \
	src/dag.o \
	src/dagfinish.o \
	src/dagflow.o \
	src/events.o \
	src/eventring.o \
	src/webhook.o \
	src/delivery.o \
	src/signature.o \
	src/workerslots.o \
	src/launcher.o \
	src/worker.o \
	src/acl.o \
	src/metrics.o \
	src/metricsscrape.o

# every install and upgrade script: ALTER EXTENSION UPDATE needs the old
# ones (test/t/207_upgrade.pl updates from every version found here)
DATA = $(wildcard taskq--*.sql)

# taskq_router's install script is built from src/router/taskq_router.sql:
# the sections of taskq's install script between "-- @begin shared serve"
# and "-- @end shared serve" replace its line "-- @shared serve" (what
# taskq serve needs besides the API: tokens, request bodies, the TCP
# commands), so that one code serves both
ROUTER_VERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" taskq_router.control)
DATA_built = taskq_router--$(ROUTER_VERSION).sql

taskq_router--$(ROUTER_VERSION).sql: src/router/taskq_router.sql taskq--$(EXTVERSION).sql
	awk 'FNR == NR { if ($$0 ~ /^-- @end shared serve/) keep = 0; \
	                 if (keep) shared = shared $$0 "\n"; \
	                 if ($$0 ~ /^-- @begin shared serve/) keep = 1; next } \
	     /^-- @shared serve$$/ { if (shared == "") exit 1; printf "%s", shared; next } \
	     { print }' taskq--$(EXTVERSION).sql src/router/taskq_router.sql > $@.tmp
	mv $@.tmp $@

# pg_regress suites: one file per feature, in sql/ and expected/
REGRESS = \
	push \
	options \
	limits \
	flow_control \
	pull \
	direct \
	malloc_pad \
	ack \
	fail \
	release \
	command \
	lease \
	plans \
	heartbeat_progress \
	cancel \
	queues \
	history_counts \
	dlq \
	retention \
	unique \
	metadata \
	dag \
	dag_cascade \
	dag_flow \
	dag_followups \
	webhooks \
	triggers \
	events \
	security \
	metrics \
	schedules \
	api_tokens
# `make installcheck` (PGXS) runs these on a temporary instance with the
# project's configuration, never on whatever server is up (as pg_cron's);
# pg_regress refuses to start one as root: run it as another user, or use
# `make run-tests`, which does
REGRESS_OPTS = --temp-config=$(srcdir)/test/taskq.conf --temp-instance=./tmp_check

# isolation specs: test/isolation/specs/*.spec
ISOLATION = \
	pull-concurrent \
	pull-skip-locked \
	ack-vs-redelivery \
	dag-promote-concurrent \
	dag-cancel-vs-promote \
	dag-push-vs-ack \
	grant-revoke-cache \
	pull-head \
	pull-peek \
	pull-quiet \
	flow-limits \
	webhook-remove \
	webhook-remove-ack \
	write-index-locks
ISOLATION_OPTS = \
	--inputdir=$(srcdir)/test/isolation \
	--outputdir=test/isolation/output_iso \
	--temp-config=$(srcdir)/test/taskq.conf \
	--temp-instance=./tmp_check_iso

# Warnings are defects: -Wall -Wextra here, CI adds -Werror through
# TASKQ_CFLAGS.  PostgreSQL's own headers cannot be built with
# -Wunused-parameter (every fmgr function takes fcinfo), -Wsign-compare
# or -Wmissing-field-initializers, so those three stay off, as in the
# server's own build.
PG_CPPFLAGS = -DTASKQ_VERSION=\"$(EXTVERSION)\"
SHLIB_LINK = -lcurl

PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers $(TASKQ_CFLAGS)

# Debian ships one pg_config per major version; prefer PostgreSQL 15's.
PG_CONFIG ?= $(shell test -x /usr/lib/postgresql/15/bin/pg_config && \
	echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

# On a fresh machine the server headers are not there yet: `make test`
# and `make demo` install them first, then re-enter make.
ifneq ($(wildcard $(PGXS)),)
ifneq ($(wildcard $(shell $(PG_CONFIG) --includedir-server 2>/dev/null)/postgres.h),)
include $(PGXS)
endif
endif

# PGXS tracks no header dependencies: every object is rebuilt when the
# shared header changes (an enum that moved would otherwise be read with
# two layouts)
$(OBJS): src/taskq.h src/metrics.h

# the programs, each a PGXS sub-make of its own: the command-line tool
# (src/cli, taskq) and the HTTP gateway it runs for "taskq serve"
# (src/serve, taskq-serve); both compile the shared sources of src/fe.
# PROGRAMS: their directories under src/; program_DIR: what each makes.
PROGRAMS = cli serve
program_cli = taskq
program_serve = taskq-serve

ifneq ($(wildcard $(PGXS)),)
all: $(PROGRAMS)
install: $(addprefix install-,$(PROGRAMS))
clean: $(addprefix clean-,$(PROGRAMS))
endif

# Debian does not put PostgreSQL's bindir on the PATH: `make install` links
# the programs here (when it may write there); BIN_LINK_DIR= links nothing,
# e.g. when installing into a private copy of PostgreSQL
BIN_LINK_DIR = /usr/local/bin

$(PROGRAMS):
	$(MAKE) -C src/$@ PG_CONFIG=$(PG_CONFIG)
$(addprefix install-,$(PROGRAMS)): install-%: %
	$(MAKE) -C src/$* PG_CONFIG=$(PG_CONFIG) install
	@if [ -n "$(BIN_LINK_DIR)" ] && [ -w "$(BIN_LINK_DIR)" ]; then ln -sf "$$($(PG_CONFIG) --bindir)/$(program_$*)" "$(BIN_LINK_DIR)/$(program_$*)"; fi
$(addprefix clean-,$(PROGRAMS)): clean-%:
	$(MAKE) -C src/$* PG_CONFIG=$(PG_CONFIG) clean

.PHONY: test demo bench deps deps-bench run-tests $(PROGRAMS) \
	$(addprefix install-,$(PROGRAMS)) $(addprefix clean-,$(PROGRAMS)) \
	installcheck-tap check-modules

# the TAP tests (test/t) against what is installed, each on nodes of its
# own, as PGXS's prove_installcheck (which looks in ./t only) would run
# them; PROVE_TESTS="001_worker 104_serve" picks some
installcheck-tap:
	PG_CONFIG=$(PG_CONFIG) test/run-tests.sh $(if $(PROVE_TESTS),--tap "$(PROVE_TESTS)")

# the extension's C files call each other without cycles
check-modules:
	@perl test/modgraph.pl src

# installing into the server's directories needs root
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)

deps:
	@test/setup-deps.sh

deps-bench:
	@test/setup-deps.sh --bench

test: deps
	$(MAKE) all
	$(SUDO) $(MAKE) install
	$(MAKE) check-modules
	$(MAKE) run-tests

# every suite against what is installed already, for the PostgreSQL that
# PG_CONFIG names (e.g. a private copy), with no set-up first;
# TEST_ARGS passes e.g. --no-tap or --tap "003_webhooks" to test/run-tests.sh
run-tests:
	PG_CONFIG=$(PG_CONFIG) test/run-tests.sh --regress "$(REGRESS)" \
		--isolation "$(ISOLATION)" $(TEST_ARGS)

demo: deps
	$(MAKE) all
	$(SUDO) $(MAKE) install
	test/demo.sh

# e.g. make bench BENCH_ARGS="--quick --scenarios '1 3'"
bench: deps-bench
	$(MAKE) all
	$(SUDO) $(MAKE) install
	PG_CONFIG=$(PG_CONFIG) test/bench/run.sh $(BENCH_ARGS)
