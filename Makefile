# The two commands a new user needs: `make run` and `make test`. Each installs missing system
# packages (scripts/install-deps.sh), configures, builds, then runs.
BUILD ?= build
# The Python package is built for, and tested with, Debian's interpreter (the one
# scripts/install-deps.sh installs numpy, pytest and torch for), even when another python3
# comes first on PATH.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
MESON_ARGS ?=
# `make install` puts the Python package where that interpreter looks (meson's default,
# <prefix>/lib/python3/dist-packages, is not on Debian's sys.path; docs/python.md). Not with a
# --prefix of one's own in MESON_ARGS: the package then stays under it.
PY_SITE = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("platlib"))' 2>/dev/null)
PY_SITE_ARGS = $(if $(findstring --prefix,$(MESON_ARGS))$(if $(PY_SITE),,none),,-Dpython.platlibdir=$(PY_SITE) -Dpython.purelibdir=$(PY_SITE))

.PHONY: all deps build run test security soak minimal asan tsan valgrind valgrind-corpus fuzz bench install clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) -Dpython=$(PYTHON) $(PY_SITE_ARGS) $(MESON_ARGS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The main job: nixlbench with its defaults (it spawns its own target on this host and prints
# the reference's table). NIXLBENCH_ARGS adds flags, e.g. NIXLBENCH_ARGS="--backend UCX".
run: build
	$(BUILD)/tools/nixlbench/nixlbench $(NIXLBENCH_ARGS)

# The last lines: each skipped test with its reason, then "N passed, N failed, N skipped".
test: build
	@rm -f $(BUILD)/meson-logs/testlog.json
	-meson test -C $(BUILD) --print-errorlogs --num-processes 2 $(TEST_ARGS)
	@python3 scripts/test-summary.py $(BUILD)/meson-logs/testlog.json

# The red-team suite alone (tests/security; `make test` runs it with everything else).
security: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 --suite security

# The soak (tests/security/soak.c): 16 agent processes transferring to each other with SHM and
# UCX while processes are killed and restarted and a misbehaving client pokes at them, for
# SOAK_SECONDS (default 600). The last line is the machine-readable summary; SOAK_ARGS adds
# flags (--agents, --seed, --churn-ms, --log, --strict-ucx). docs/RELIABILITY.md.
SOAK_SECONDS ?= 600
soak: build
	NIXL_PLUGIN_DIR=$(CURDIR)/$(BUILD)/tests/plugins NIXL_CONFIG_FILE=$(CURDIR)/tests/data/empty.cfg \
	  $(BUILD)/tests/security/soak --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

# Configure and build (no tests run) with every optional dependency off, as on a host without
# UCX, liburing, libaio, libcurl/json-c or Python headers; checks that the result needs none.
minimal: deps
	@PYTHON=$(PYTHON) scripts/minimal-build.sh build-minimal

# Under AddressSanitizer the UCX kill test (ucx-kill) takes 25 kills of each kind instead of
# 100 READs, 100 WRITEs and 25 of each split: about 60 s instead of 145 on 2 vCPUs. The kill
# paths run alike (random points, every byte checked); `make test` keeps the issue's count.
asan:
	NIXL_TEST_KILL_ROUNDS=$${NIXL_TEST_KILL_ROUNDS:-25} $(MAKE) test BUILD=build-asan \
	  MESON_ARGS="-Db_sanitize=address,undefined -Db_lundef=false"

tsan:
	$(MAKE) test BUILD=build-tsan MESON_ARGS="-Db_sanitize=thread -Db_lundef=false"

# Every parser of outside bytes under libFuzzer (clang), FUZZ_SECONDS each (default 60).
fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# --fair-sched=yes: with valgrind's default (unfair) thread lock a test's busy polling thread
# can starve the others for seconds (a staging ring's server then never answers in time).
valgrind: build
	@rm -f $(BUILD)/meson-logs/testlog-valgrind.json
	-meson test -C $(BUILD) --print-errorlogs --num-processes 1 --suite unit \
	  --wrapper 'valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --fair-sched=yes --quiet'
	@python3 scripts/test-summary.py $(BUILD)/meson-logs/testlog-valgrind.json

# The stored fuzz corpora replayed through every parser under valgrind (about 40 s): it sees
# reads of uninitialised bytes, which AddressSanitizer and UBSan do not (CI runs this).
valgrind-corpus: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 1 --suite corpus \
	  --wrapper 'valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --quiet'

# The standard scenarios: core costs, per-backend transfers, and nixlbench sweeps whose tables
# replace the generated part of docs/BENCHMARKS.md (bench/run.py), then issue #18 item 5's
# targets table (bench/targets.py: a row per target, MET or MISSED, medians of 3). The targets
# alone, in about 3 minutes: `python3 bench/run.py --targets-only` (`--quick`: one short run).
bench: build
	$(BUILD)/bench/core/nixl_bench_core
	$(BUILD)/bench/xfer/nixl_bench_xfer
	python3 bench/run.py --build $(BUILD)

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-minimal
