#!/usr/bin/env bash
# Builds the GPU test and benchmark binaries on this (GPU-less) machine and gathers them, with
# the shared libraries they need that a GPU box lacks, into .carry/gpu/ for the device tool:
#   tests/gpu_bundle.sh            then run `tests/run_gpu_tests.sh` there with carry [".carry"].
#   BUNDLE_BINS="a b"              only these binaries (the carry limit is 64 MiB with the repo)
#   --with-rpc                     also sparsefill-server and sparsefill (built in build/, with
#                                  gRPC) for tests/gpu_e2e_server.sh
# nvcc builds for sm_90a here; the box supplies the driver and cudart.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEFILL_WERROR=ON \
  -DSPARSEFILL_BUILD_RPC=OFF -DSPARSEFILL_BUILD_CUDA=ON >/dev/null
# Every GPU test binary, plus the benchmark.
gpu_bins=$( (grep -hos 'sparsefill_add_test(\S*' tests/kernels/gpu/CMakeLists.txt tests/worker/gpu/CMakeLists.txt || true) | sed 's/sparsefill_add_test(//' | sort -u)
extra=""
for t in attention_bench prefill_bench kvcodec_bench; do
  grep -rqs "add_executable($t" tests/bench/CMakeLists.txt && extra="$extra $t"
done
cmake --build "$BUILD_DIR" -j "$(nproc)" --target $gpu_bins $extra
rm -rf .carry/gpu && mkdir -p .carry/gpu/bin .carry/gpu/lib
for b in $gpu_bins; do cp "$BUILD_DIR/tests/$b" .carry/gpu/bin/; done
for b in $extra; do cp "$BUILD_DIR/bin/$b" .carry/gpu/bin/; done
if [ "${1:-}" = "--with-rpc" ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEFILL_BUILD_CUDA=ON >/dev/null
  cmake --build build -j "$(nproc)" --target sparsefill-server sparsefill
  cp build/bin/sparsefill-server build/bin/sparsefill .carry/gpu/bin/
fi
if [ -n "${BUNDLE_BINS:-}" ]; then
  for b in .carry/gpu/bin/*; do
    case " $BUNDLE_BINS " in *" $(basename "$b") "*) ;; *) rm -f "$b" ;; esac
  done
fi
# Shared libraries the box does not have (Abseil, for binaries that link the worker): copy the
# non-system, non-CUDA closure.
for b in .carry/gpu/bin/*; do
  ldd "$b" | awk '/=> \// {print $3}' | grep -vE '/(libc|libm|libpthread|libdl|librt|libgcc_s|libstdc\+\+|ld-linux|libz|libssl|libcrypto)[.-]|/libcuda|/libcudart|/libcublas|/libnccl' || true
done | sort -u | while read -r lib; do cp -L "$lib" .carry/gpu/lib/; done
du -sh .carry/gpu
echo "gpu_bundle: $(ls .carry/gpu/bin | wc -l) binaries: $(ls .carry/gpu/bin | tr '\n' ' ')"
