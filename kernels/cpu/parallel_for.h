// Splits an index range over the host's cores. The CPU references use it for the work that
// dominates a prefill (GEMMs, attention rows); each output element is still computed by exactly
// one thread in a fixed order, so results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <functional>

namespace sparsefill::kernels {

// Number of threads ParallelFor uses: SPARSEFILL_CPU_THREADS if set (>= 1), else the hardware
// concurrency.
int CpuThreadCount();

// Calls fn(begin_i, end_i) on disjoint sub-ranges covering [begin, end), in parallel. Sub-ranges
// hold at least `grain` indices (except the last). Runs inline when one thread would do.
void ParallelFor(int64_t begin, int64_t end, int64_t grain,
                 const std::function<void(int64_t, int64_t)>& fn);

}  // namespace sparsefill::kernels
