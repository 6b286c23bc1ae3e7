# Convenience entry points; CMake does the real work.
JOBS ?= $(shell nproc)
BUILD ?= build
BUILD_SAN ?= build-san
PORT ?= 8002

.PHONY: all deps build test test-fast test-san test-cuda run demo fuzz bench clean

all: build

deps:
	bash scripts/install-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Every test, then the whole suite again under ASan+UBSan.
test: deps build test-fast test-san

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-san:
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DSAM2D_SANITIZE=ON -DSAM2D_NATIVE=ON -DSAM2D_CUDA=OFF >/dev/null
	cmake --build $(BUILD_SAN) -j $(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -LE slow

# The CUDA back end's tests (skipped without a usable GPU; see bench/gpu/device_check.sh).
test-cuda: build
	cd $(BUILD) && ctest --output-on-failure -L cuda

# Set up and run: installs dependencies, builds, starts the service.
run: deps build
	./scripts/run.sh

demo: deps build
	SAM2_CHECKPOINT=models/sam2.1_hiera_micro_shapes.pt SAM2_CONFIG=models/sam2.1_hiera_micro_shapes.yaml ./scripts/run.sh

fuzz:
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSAM2D_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzzers

# CPU benchmarks against Meta's reference figures (bench/README.md)
bench: build
	bench/run_cpu.sh

clean:
	rm -rf $(BUILD) $(BUILD_SAN) build-fuzz
