# Human entry points. The real build is CMake; see README.
JOBS    ?= 2
BUILD   ?= build/release
ASAN    ?= build/asan
BENCHB  ?= build/bench
CMAKE_FLAGS ?=

.PHONY: all deps build run sim test test-unit test-e2e bench clean format

all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DLL_BUILD_TESTS=ON $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# Starts the control plane on its embedded defaults: the sim fleet replays the Helios trace at
# 60x, state in ./landlord-data (SQLite). Prints the URL and, on first start, the admin key.
run: build
	$(BUILD)/landlord serve

# The simulator on the embedded default trace (Helios Earth, May 2020): the policy table.
sim: build
	$(BUILD)/landlord sim --trace helios:data/helios_earth_2020_05

$(ASAN)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DLL_SANITIZE=ON -DLL_BUILD_TESTS=ON $(CMAKE_FLAGS)

# Unit tests under ASan+UBSan, then the whole-system tests against the release binary.
test: deps $(ASAN)/CMakeCache.txt build
	cmake --build $(ASAN) -j$(JOBS)
	cd $(ASAN) && ctest --output-on-failure -L unit -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -LE unit -j$(JOBS)

$(BENCHB)/CMakeCache.txt: | deps
	cmake -S . -B $(BENCHB) -DCMAKE_BUILD_TYPE=Release -DLL_BUILD_TESTS=OFF -DLL_BUILD_BENCH=ON $(CMAKE_FLAGS)

bench: deps $(BENCHB)/CMakeCache.txt
	cmake --build $(BENCHB) -j$(JOBS)
	$(BENCHB)/bench/landlord_bench --benchmark_counters_tabular=true

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf build
