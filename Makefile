# mmws — the front door. Every target that builds runs `deps` first, so
# `make test` and `make demo` are each one command on a fresh Debian 12.

BUILD        ?= build
PREFIX       ?= /usr/local
FUZZ_SECONDS ?= 600
JOBS         ?= $(shell nproc)
export BUILD JOBS FUZZ_SECONDS
MAKEFLAGS += --no-print-directory

.PHONY: all deps build test soak demo bench fuzz fuzz-merge install clean

all: build

deps:
	@scripts/deps.sh

# Optimised library, tools and benchmarks.
build: deps
	@cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release \
	    -DMMWS_BUILD_TESTS=OFF >/dev/null
	@cmake --build $(BUILD)/release -j $(JOBS)

# Every test under ASan+UBSan (gcc), plus a clang -Werror build of everything.
test: deps
	@scripts/test.sh

# The long soak (not part of test): the pool against the simulator under
# ASan with a fault every 3 s for SOAK_SECONDS (600); fails on a gap, a
# crash, or RSS / open fds growing.
soak: deps
	@scripts/soak.sh

# The main job offline: a 5-connection pool against the local exchange
# simulator, live table, summary; exits 0 only if no update id was missed.
# `make demo URL=wss://...` runs the same pool against a real venue.
demo: build
	@scripts/demo.sh $(URL)

bench: build
	@scripts/bench.sh

# Each libFuzzer target for FUZZ_SECONDS (clang); new inputs go to
# $(BUILD)/fuzz-work, the committed corpus under fuzz/corpus is read.
fuzz: deps
	@scripts/fuzz.sh run

# Minimise the work corpus into the committed one (fuzz/corpus/NAME).
fuzz-merge: deps
	@scripts/fuzz.sh merge

install: build
	@cmake --install $(BUILD)/release --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
