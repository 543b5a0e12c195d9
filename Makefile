# Human entry points. The real build is CMake; see README.
JOBS    ?= 2
BUILD   ?= build/release
ASAN    ?= build/asan
BENCHB  ?= build/bench
FUZZB   ?= build/fuzz
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=

.PHONY: all deps build package llama run run-llama sim test test-unit test-e2e bench fuzz clean format

all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DLL_BUILD_TESTS=ON $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# The Debian package (README "Install on a server"): $(BUILD)/landlord_VERSION_ARCH.deb.
package: build
	cd $(BUILD) && cpack

# llama.cpp's `llama-server` and a random-weight model for it, from the llama.cpp source in the
# pinned npm package node-llama-cpp (scripts/llama.sh; under build/llama/, skipped once built;
# cold about 20 minutes on 2 cores, ccache-warm under a minute).
llama:
	JOBS=$(JOBS) scripts/llama.sh all

# Starts the control plane on its embedded defaults: the sim fleet replays the Helios trace at
# 60x, state in ./landlord-data (SQLite). Prints the URL and, on first start, the admin key.
run: build
	$(BUILD)/landlord serve

# `make run` with the model API served by real llama.cpp `llama-server` replicas (two, of the
# random-weight test model) that the sim fleet places, drains and reclaims (docs/gateway.md).
run-llama: build
	JOBS=$(JOBS) scripts/run_llama.sh $(BUILD)

# The simulator on the embedded default trace (Helios Earth, May 2020): the policy table.
sim: build
	$(BUILD)/landlord sim --trace helios:data/helios_earth_2020_05

$(ASAN)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DLL_SANITIZE=ON -DLL_BUILD_TESTS=ON $(CMAKE_FLAGS)

# Unit tests under ASan+UBSan, then the whole-system tests against the release binary, then
# the API fuzz target for FUZZ_SECONDS.
test: deps $(ASAN)/CMakeCache.txt build
	scripts/deps.sh test
	JOBS=$(JOBS) scripts/llama.sh all
	cmake --build $(ASAN) -j$(JOBS)
	cd $(ASAN) && ctest --output-on-failure -L unit -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -LE unit -j$(JOBS)
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

$(FUZZB)/CMakeCache.txt: | deps
	cmake -S . -B $(FUZZB) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DLL_FUZZ=ON \
	  -DLL_BUILD_TESTS=OFF $(CMAKE_FLAGS)

# libFuzzer on the lease API (tests/fuzz); `make fuzz FUZZ_SECONDS=3600` for a long run.
fuzz: deps $(FUZZB)/CMakeCache.txt
	cmake --build $(FUZZB) -j$(JOBS) --target landlord_fuzz_api
	cmake -S . -B $(FUZZB) -DLL_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cd $(FUZZB) && ctest --output-on-failure -L fuzz

$(BENCHB)/CMakeCache.txt: | deps
	cmake -S . -B $(BENCHB) -DCMAKE_BUILD_TYPE=Release -DLL_BUILD_TESTS=OFF -DLL_BUILD_BENCH=ON $(CMAKE_FLAGS)

bench: deps $(BENCHB)/CMakeCache.txt
	scripts/deps.sh bench
	cmake --build $(BENCHB) -j$(JOBS)
	$(BENCHB)/bench/landlord_bench --benchmark_counters_tabular=true
	$(BENCHB)/bench/landlord_api_bench
	LANDLORD_BIN=$(BENCHB)/landlord bench/gateway_bench.sh --json $(BENCHB)/gateway_bench.json
	LANDLORD_BIN=$(BENCHB)/landlord LOADGEN_BIN=$(BENCHB)/bench/landlord_loadgen bench/gateway_rate_bench.sh \
	  --json $(BENCHB)/gateway_rate_bench.json
	node bench/dashboard_bench.mjs --bin $(BENCHB)/landlord --json $(BENCHB)/dashboard_bench.json
	LANDLORD_BIN=$(BENCHB)/landlord bench/store_bench.sh --json $(BENCHB)/store_bench.json
	JOBS=$(JOBS) bash tests/engine/run.sh node bench/engine_bench.mjs --bin $(BENCHB)/landlord --json $(BENCHB)/engine_bench.json
	JOBS=$(JOBS) bash tests/engine/run.sh node bench/affinity_bench.mjs --bin $(BENCHB)/landlord --json $(BENCHB)/affinity_bench.json

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf build
