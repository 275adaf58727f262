# beamlet - build, run, test, bench.
#   make          build priv/beamlet and priv/libbeamlet.a
#   make run      install what is missing, start EPMD, run a node (--sname beamlet)
#   make test     install what is missing, run every test (ASan+UBSan build), print "N passed, N failed"
#   make test-scale  100 nodes (release build) booted at once form one cluster, every node answering
#   make bench    throughput/latency/RSS/start-up figures next to BEAM's, as ratios
#   make fuzz     run the fuzz targets for long
#   make compdb   compile_commands.json for clangd (bear)
#   make release  build/beamlet-VERSION-linux-ARCH.tar.gz (relocatable; docs/deploy.md)
#   make deb      build/beamlet_VERSION_ARCH.deb (dpkg-deb; docs/deploy.md)
#   make demo     the guided tour: a cluster, services, messages, failures and recovery, timed

SHELL := /bin/bash
ERL_EI := $(shell erl -noshell -eval 'io:format("~s",[code:lib_dir(erl_interface)]),halt().' 2>/dev/null)
CC ?= cc
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
# Bounded snprintf truncation is intended (lengths are validated first); gcc's guess is noise.
GCC_WARN := -Wno-format-truncation
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -D_REENTRANT -pthread $(WARN) -Iinclude -I$(ERL_EI)/include
CFLAGS_GCC := $(BASE_CFLAGS) $(GCC_WARN)
LIBS := -L$(ERL_EI)/lib -lei -lev -ljansson -lpthread -lm -ldl
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC := $(wildcard c_src/dist/*.c c_src/runtime/*.c c_src/otp/*.c c_src/cluster/*.c c_src/services/*.c c_src/store/*.c c_src/health/*.c c_src/tasks/*.c) c_src/cli/config.c
LIB_SRC += $(wildcard c_src/gateway/*.c)
# the dashboard and the OpenAPI document, embedded into the library (.incbin in assets.c)
GW_ASSETS := $(shell find c_src/gateway/assets -type f 2>/dev/null)
HDRS := $(wildcard include/beamlet/*.h c_src/*/*.h)

REL := build/release
ASAN := build/asan
REL_OBJ := $(patsubst c_src/%.c,$(REL)/obj/%.o,$(LIB_SRC))
ASAN_OBJ := $(patsubst c_src/%.c,$(ASAN)/obj/%.o,$(LIB_SRC))
UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(patsubst test/unit/%.c,$(ASAN)/unit/%,$(UNIT_SRC))
FUZZ_SRC := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst test/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
EXAMPLES := $(patsubst examples/%.c,$(REL)/examples/%,$(wildcard examples/*.c))

.PHONY: all deps deps-run run run-node test test-build test-scale bench fuzz clean compdb format
all: priv/beamlet priv/libbeamlet.a $(EXAMPLES)

deps:
	@rel/tools/deps.sh
deps-run:
	@rel/tools/deps.sh --run-only

# Library objects: internal symbols hidden; include/beamlet/*.h marks the public API default.
$(REL)/obj/%.o: c_src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_GCC) -fvisibility=hidden -O2 -g -c $< -o $@
$(ASAN)/obj/%.o: c_src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_GCC) -fvisibility=hidden -O1 -g $(SAN) -c $< -o $@

$(REL)/obj/gateway/assets.o $(ASAN)/obj/gateway/assets.o $(DIST)/obj/gateway/assets.o: $(GW_ASSETS)

$(REL)/libbeamlet.a: $(REL_OBJ)
	ar rcs $@ $^
$(ASAN)/libbeamlet.a: $(ASAN_OBJ)
	ar rcs $@ $^
# The shipped archive: one relocatable object whose hidden (internal) symbols are made local, so
# only the public bl_ API is global (test/unit/symbols.sh checks it). Tests link the build/ archives.
priv/libbeamlet.a: $(REL_OBJ)
	@mkdir -p priv $(REL)/pub
	ld -r -o $(REL)/pub/beamlet-all.o $(REL_OBJ)
	objcopy --localize-hidden $(REL)/pub/beamlet-all.o $(REL)/pub/beamlet.o
	rm -f $@.tmp && ar rcs $@.tmp $(REL)/pub/beamlet.o && mv -f $@.tmp $@
CLI_SRC := $(filter-out c_src/cli/config.c,$(wildcard c_src/cli/*.c))
# `beamlet version`: the git revision and the build date (SOURCE_DATE_EPOCH fixes the date)
GIT_REV = $(shell git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
BUILD_DATE = $(shell date -u -d "@$${SOURCE_DATE_EPOCH:-$$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)
VERSION_DEFS = -DBL_GIT_REV='"$(GIT_REV)"' -DBL_BUILD_DATE='"$(BUILD_DATE)"'
$(REL)/beamlet: $(CLI_SRC) $(HDRS) $(REL)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O2 -g $(VERSION_DEFS) $(CLI_SRC) $(REL)/libbeamlet.a $(LIBS) -o $@
priv/beamlet: $(REL)/beamlet
	@mkdir -p priv && cp $< $@.tmp && mv -f $@.tmp $@
$(ASAN)/beamlet: $(CLI_SRC) $(HDRS) $(ASAN)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O1 -g $(SAN) $(VERSION_DEFS) $(CLI_SRC) $(ASAN)/libbeamlet.a $(LIBS) -o $@
$(REL)/examples/%: examples/%.c $(REL)/libbeamlet.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_GCC) -O2 -g $< $(REL)/libbeamlet.a $(LIBS) -o $@
$(ASAN)/test_worker: test/integration/test_worker.c test/lib/test_cnode.h $(ASAN)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O1 -g $(SAN) $< $(ASAN)/libbeamlet.a $(LIBS) -o $@
$(ASAN)/pg_worker: test/services/pg_worker.c test/lib/test_cnode.h $(ASAN)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O1 -g $(SAN) $< $(ASAN)/libbeamlet.a $(LIBS) -o $@
$(ASAN)/global_node: test/services/global/global_node.c test/lib/test_cnode.h $(ASAN)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O1 -g $(SAN) $< $(ASAN)/libbeamlet.a $(LIBS) -o $@
$(ASAN)/pubsub_node: test/services/pubsub/pubsub_node.c test/lib/test_cnode.h $(ASAN)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O1 -g $(SAN) $< $(ASAN)/libbeamlet.a $(LIBS) -o $@
$(ASAN)/registry_node: test/services/registry/registry_node.c test/lib/test_cnode.h $(ASAN)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O1 -g $(SAN) $< $(ASAN)/libbeamlet.a $(LIBS) -o $@
$(ASAN)/trace_node: test/trace/trace_node.c test/lib/test_cnode.h $(ASAN)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O1 -g $(SAN) $< $(ASAN)/libbeamlet.a $(LIBS) -o $@
$(REL)/test_worker: test/integration/test_worker.c test/lib/test_cnode.h $(REL)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O2 -g $< $(REL)/libbeamlet.a $(LIBS) -o $@
$(ASAN)/unit/%: test/unit/%.c $(ASAN)/libbeamlet.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_GCC) -Ic_src -O1 -g $(SAN) $< $(ASAN)/libbeamlet.a $(LIBS) -lcmocka -o $@
# the wire codecs instrumented; the rest of the release library as it is (the control codec
# interns pids in a node: runtime/intern.c)
build/fuzz/%: test/fuzz/%.c $(LIB_SRC) $(HDRS) $(REL)/libbeamlet.a
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< \
	    c_src/dist/term.c c_src/dist/frame.c c_src/dist/control.c c_src/dist/sendq.c \
	    c_src/dist/disthdr.c c_src/dist/atomcache.c c_src/runtime/intern.c \
	    $(REL)/libbeamlet.a $(LIBS) -o $@

# the repl fuzzer: the layer's source instrumented, the rest of the release library as it is
build/fuzz/fuzz_repl: test/fuzz/fuzz_repl.c c_src/services/repl.c $(REL)/libbeamlet.a $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< \
	    c_src/services/repl.c $(REL)/libbeamlet.a $(LIBS) -o $@
# the cluster configuration's copy decoder and the key table's rules, instrumented; the rest of
# the release library as it is
build/fuzz/fuzz_cconf: test/fuzz/fuzz_cconf.c c_src/services/cconf_codec.c c_src/cli/config.c $(REL)/libbeamlet.a $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< \
	    c_src/services/cconf_codec.c c_src/cli/config.c $(REL)/libbeamlet.a $(LIBS) -o $@
# the task record decoder: tasks_rec.c instrumented, the rest of the release library as it is
# pg's OTP-protocol decoders (a scope fed BEAM's pg messages), instrumented with the replication
# layer it sits on; the rest of the node from the release archive
build/fuzz/fuzz_pg: test/fuzz/fuzz_pg.c c_src/services/pg.c c_src/services/repl.c $(REL)/libbeamlet.a $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< \
	    c_src/services/pg.c c_src/services/repl.c $(REL)/libbeamlet.a $(LIBS) -o $@
build/fuzz/fuzz_task: test/fuzz/fuzz_task.c c_src/tasks/tasks_rec.c $(REL)/libbeamlet.a $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< \
	    c_src/tasks/tasks_rec.c $(REL)/libbeamlet.a $(LIBS) -o $@
# the rex request decoder, apply(M, F, A) resolution and the built-in exports (process_info,
# error, whereis, ...), instrumented; the rest of the release library as it is
build/fuzz/fuzz_rex: test/fuzz/fuzz_rex.c c_src/otp/rex.c c_src/otp/apply.c c_src/otp/pinfo.c \
	    c_src/otp/bif.c $(REL)/libbeamlet.a $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< \
	    c_src/otp/rex.c c_src/otp/apply.c c_src/otp/pinfo.c c_src/otp/bif.c \
	    $(REL)/libbeamlet.a $(LIBS) -o $@
# the gateway's Prometheus text merge (what members send for /metrics?scope=cluster)
build/fuzz/fuzz_promtext: test/fuzz/fuzz_promtext.c c_src/gateway/promtext.c $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< c_src/gateway/promtext.c -o $@

# the trace fuzzer: traceparent, call tags and seq_trace tokens instrumented (trace.c, gen.c,
# seqtrace.c), the rest of the release library as it is
build/fuzz/fuzz_trace: test/fuzz/fuzz_trace.c c_src/runtime/trace.c c_src/runtime/seqtrace.c c_src/otp/gen.c $(REL)/libbeamlet.a $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< \
	    c_src/runtime/trace.c c_src/runtime/seqtrace.c c_src/otp/gen.c $(REL)/libbeamlet.a \
	    -L$(ERL_EI)/lib -lei -lev -ljansson -lpthread -lm -ldl -o $@

# the gateway's API key sync decoder (what other gateways send)
build/fuzz/fuzz_keysync: test/fuzz/fuzz_keysync.c c_src/gateway/keycodec.c c_src/dist/term.c $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< \
	    c_src/gateway/keycodec.c c_src/dist/term.c -L$(ERL_EI)/lib -lei -lpthread -o $@

# the gossip fuzzer needs the gossip codec and the logger, not the dist sources
build/fuzz/fuzz_gossip: test/fuzz/fuzz_gossip.c c_src/cluster/gossip.c c_src/runtime/crypto.c c_src/runtime/dlib.c c_src/runtime/log.c c_src/runtime/trace.c $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< \
	    c_src/cluster/gossip.c c_src/runtime/crypto.c c_src/runtime/dlib.c c_src/runtime/log.c \
	    c_src/runtime/trace.c \
	    -L$(ERL_EI)/lib -lei -lev -ljansson -lcrypto -ldl -lpthread -o $@

# the handshake fuzzer needs the state machine (and ei, for its MD5)
build/fuzz/fuzz_handshake: test/fuzz/fuzz_handshake.c c_src/dist/hsm.c $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< \
	    c_src/dist/hsm.c -L$(ERL_EI)/lib -lei -lpthread -o $@

# the node allow-list (parse and match): allow.c alone
build/fuzz/fuzz_allow: test/fuzz/fuzz_allow.c c_src/dist/allow.c $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< c_src/dist/allow.c -o $@

# the /proc parsers of the health service: procfs.c alone
build/fuzz/fuzz_procfs: test/fuzz/fuzz_procfs.c c_src/health/procfs.c $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< c_src/health/procfs.c -o $@

# the health service's config parsers (alert rules, checks): rules.c and checks_parse.c alone
build/fuzz/fuzz_health_config: test/fuzz/fuzz_health_config.c c_src/health/rules.c c_src/health/checks_parse.c $(HDRS)
	@mkdir -p $(@D)
	clang $(BASE_CFLAGS) -Ic_src -O1 -g -fsanitize=fuzzer,address,undefined $< c_src/health/rules.c \
	    c_src/health/checks_parse.c -ljansson -o $@

# the local demo: EPMD, a coordinator, two agents, an erl node with the shim, a status table
run: deps-run
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -C erlang_shim >/dev/null
	@rel/tools/demo.sh

# one node, as in the README's tour
run-node: deps-run
	@$(MAKE) --no-print-directory all
	@pgrep -x epmd >/dev/null || { echo "beamlet: starting epmd"; epmd -daemon; }
	@priv/beamlet node --sname beamlet $(ARGS)

test-build: $(REL)/beamlet $(ASAN)/beamlet $(ASAN)/test_worker $(ASAN)/pg_worker $(ASAN)/registry_node $(ASAN)/global_node $(ASAN)/pubsub_node $(ASAN)/trace_node $(UNIT_BIN) $(FUZZ_BIN) priv/beamlet priv/libbeamlet.a $(EXAMPLES)

test: deps
	@$(MAKE) --no-print-directory test-build
	@test/run_all.sh

test-scale: deps
	@$(MAKE) --no-print-directory priv/beamlet
	@BEAMLET_BIN=$(CURDIR)/priv/beamlet test/scale/run.sh $${BL_SCALE_NODES:-100}

$(REL)/bench_node: test/bench/bench_node.c test/lib/test_cnode.h $(REL)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O2 -g $< $(REL)/libbeamlet.a $(LIBS) -o $@
$(REL)/pubsub_bench_node: test/bench/pubsub_bench_node.c test/lib/test_cnode.h $(REL)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O2 -g $< $(REL)/libbeamlet.a $(LIBS) -o $@
$(REL)/store_bench: test/bench/store_bench.c $(REL)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -Ic_src -O2 -g $< $(REL)/libbeamlet.a $(LIBS) -o $@
$(REL)/bench_hs: test/bench/hs_bench.c $(REL)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -Ic_src -O2 -g $< $(REL)/libbeamlet.a $(LIBS) -o $@
$(REL)/pidmem_bench: test/bench/pidmem_bench.c $(REL)/libbeamlet.a
	$(CC) $(CFLAGS_GCC) -O2 -g $< $(REL)/libbeamlet.a $(LIBS) -o $@
$(REL)/bench_epmd_wait: test/bench/epmd_wait.c
	$(CC) $(CFLAGS_GCC) -O2 -g $< -o $@

bench: deps
	@$(MAKE) --no-print-directory all $(REL)/bench_node $(REL)/bench_epmd_wait $(REL)/pubsub_bench_node $(REL)/bench_hs $(REL)/store_bench $(REL)/pidmem_bench
	@test/bench/run.sh
	@$(REL)/pidmem_bench 10000
	@test/bench/cluster_bench.sh
	@test/bench/hs_bench.sh
	@test/bench/pubsub_bench.sh
	@test/bench/repl_bench.sh
	@test/bench/health_bench.sh
	@test/bench/gateway_bench.sh
	@test/bench/tasks_bench.sh

fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do echo "== $$f"; mkdir -p build/corpus/$$(basename $$f); \
	    $$f -max_total_time=$${FUZZ_SECONDS:-300} build/corpus/$$(basename $$f) test/fuzz/corpus || exit 1; done

# bear's preload mode does not work on every kernel (gVisor); its wrapper mode does
compdb:
	bear --force-wrapper -- $(MAKE) -B all test-build

format:
	clang-format -i $$(find c_src include test examples -name '*.[ch]')

clean:
	rm -rf build priv/beamlet priv/libbeamlet.a

# ---- shipping: release tarball, Debian package, demo (docs/deploy.md) ----
# The shipped binary and library are built apart from the dev ones, with Debian's hardening
# flags (dpkg-buildflags: fortify, stack protector, relro/now, PIE; file-prefix-map, so no build
# path is baked in) and a fresh git revision every time; the binary is stripped.
VERSION := $(shell sed -n 's/^\#define BL_VERSION "\(.*\)"/\1/p' include/beamlet/beamlet.h)
ARCH := $(shell uname -m)
DIST := build/dist
HARDEN = DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get
DIST_CFLAGS = $(CFLAGS_GCC) $(shell $(HARDEN) CPPFLAGS) $(shell $(HARDEN) CFLAGS)
DIST_LDFLAGS = $(shell $(HARDEN) LDFLAGS)
DIST_OBJ := $(patsubst c_src/%.c,$(DIST)/obj/%.o,$(LIB_SRC))
$(DIST)/obj/%.o: c_src/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(DIST_CFLAGS) -c $< -o $@
$(DIST)/libbeamlet.a: $(DIST_OBJ)
	ar rcs $@ $^
.PHONY: dist-bin release release-test deb deb-test demo
dist-bin: $(DIST)/libbeamlet.a
	$(CC) $(DIST_CFLAGS) $(VERSION_DEFS) $(CLI_SRC) $(DIST)/libbeamlet.a $(DIST_LDFLAGS) $(LIBS) -o $(DIST)/beamlet
	strip --strip-unneeded --remove-section=.comment --remove-section=.note $(DIST)/beamlet
	@$(MAKE) --no-print-directory -C erlang_shim >/dev/null
release: deps-run
	@$(MAKE) --no-print-directory dist-bin
	@rel/release/mkrelease.sh "$(VERSION)" "$(ARCH)"
release-test:
	@test/release/run.sh

# the dashboard's vendored front-end libraries (c_src/gateway/assets/vendor/VERSIONS), fetched
# again from npm: the built files exactly as published
HTM_VERSION := 3.1.1
UPLOT_VERSION := 1.6.32
PREACT_LICENSE_VERSION := 10.19.3
.PHONY: dashboard-vendor
dashboard-vendor:
	@tmp=$$(mktemp -d) && cd $$tmp && \
	npm pack --silent htm@$(HTM_VERSION) uplot@$(UPLOT_VERSION) preact@$(PREACT_LICENSE_VERSION) >/dev/null && \
	for f in *.tgz; do mkdir -p $${f%.tgz} && tar xzf $$f -C $${f%.tgz} --strip-components=1; done && \
	V=$(CURDIR)/c_src/gateway/assets/vendor && \
	cp htm-$(HTM_VERSION)/preact/standalone.module.js $$V/htm-preact-standalone.module.js && \
	cp htm-$(HTM_VERSION)/LICENSE $$V/LICENSE.htm && \
	cp uplot-$(UPLOT_VERSION)/dist/uPlot.iife.min.js uplot-$(UPLOT_VERSION)/dist/uPlot.min.css $$V/ && \
	cp uplot-$(UPLOT_VERSION)/LICENSE $$V/LICENSE.uPlot && \
	cp preact-$(PREACT_LICENSE_VERSION)/LICENSE $$V/LICENSE.preact && \
	rm -rf $$tmp && echo "dashboard-vendor: htm $(HTM_VERSION), uPlot $(UPLOT_VERSION) in $$V"
deb: deps
	@$(MAKE) --no-print-directory dist-bin
	@rel/debian/mkdeb.sh
deb-test:
	@test/release/deb.sh
# the guided tour (make run keeps its quick cluster): ARGS=--fast skips the pauses
demo: deps-run
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -C erlang_shim >/dev/null
	@rel/demo/demo.sh $(ARGS)
