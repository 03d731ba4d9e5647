// Warp-level selection and sorting on small sets held in registers (the per-row top-k of the
// block-sparse estimation). No division, no shared-memory sorting network: the selection is a
// radix select over 8-bit digits with a 256-bin warp histogram, the sort a bitonic network whose
// stages are all compile-time (in-lane compare-exchange or one shuffle per element).
#pragma once

#include <cstdint>

namespace sparsefill::kernels::cuda::index {

// Moves the `keep` largest of the n distinct keys row[0..n) to row[0..keep) (in no particular
// order) and returns the smallest kept key. 0 < keep <= n <= 32 * kPer. One warp; `hist` is the
// warp's own 256 counters in shared memory.
template <int kPer>
__device__ __forceinline__ uint64_t WarpKeepTop(uint64_t* row, int n, int keep, uint32_t* hist,
                                                int lane) {
  uint64_t v[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int e = i * 32 + lane;
    v[i] = e < n ? row[e] : 0;
  }
  // Radix select, most significant byte first: among keys matching `prefix` above bit `shift + 8`,
  // find the byte holding the k-th largest.
  uint64_t prefix = 0;
  int shift = 64, k = keep;
  while (shift > 0) {
    shift -= 8;
    for (int b = lane; b < 256; b += 32) hist[b] = 0;
    __syncwarp();
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const bool valid = i * 32 + lane < n;
      const bool match = shift == 56 || (v[i] >> (shift + 8)) == prefix;
      if (valid && match) atomicAdd(&hist[(v[i] >> shift) & 255], 1u);
    }
    __syncwarp();
    // Lane l owns bins 255 - 8l .. 248 - 8l (descending): an inclusive scan over lanes counts the
    // keys in higher bins.
    uint32_t c[8], local = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      c[j] = hist[255 - 8 * lane - j];
      local += c[j];
    }
    uint32_t inclusive = local;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const uint32_t up = __shfl_up_sync(0xffffffffu, inclusive, off);
      if (lane >= off) inclusive += up;
    }
    const uint32_t above = inclusive - local;
    const bool mine = above < static_cast<uint32_t>(k) && static_cast<uint32_t>(k) <= inclusive;
    uint32_t digit = 0, in_bucket = 0, run = above;
    if (mine) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        if (in_bucket == 0 && run + c[j] >= static_cast<uint32_t>(k)) {
          digit = 255 - 8 * lane - j;
          in_bucket = c[j];
        } else if (in_bucket == 0) {
          run += c[j];
        }
      }
    }
    const int owner = __ffs(__ballot_sync(0xffffffffu, mine)) - 1;
    digit = __shfl_sync(0xffffffffu, digit, owner);
    in_bucket = __shfl_sync(0xffffffffu, in_bucket, owner);
    run = __shfl_sync(0xffffffffu, run, owner);
    k -= static_cast<int>(run);
    prefix = (prefix << 8) | digit;
    __syncwarp();  // everyone read hist before the next round clears it
    if (in_bucket == static_cast<uint32_t>(k)) break;
  }
  // Winners: keys whose bits from `shift` up are >= prefix; exactly `keep` of them.
  int base = 0;
  uint64_t smallest = ~0ull;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const bool win = i * 32 + lane < n && (v[i] >> shift) >= prefix;
    const uint32_t ballot = __ballot_sync(0xffffffffu, win);
    if (win) {
      row[base + __popc(ballot & ((1u << lane) - 1u))] = v[i];
      smallest = v[i] < smallest ? v[i] : smallest;
    }
    base += __popc(ballot);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const uint64_t other = __shfl_xor_sync(0xffffffffu, smallest, off);
    smallest = other < smallest ? other : smallest;
  }
  __syncwarp();
  return smallest;
}

// Sorts the warp's 32 * kPer values ascending; element e = lane * kPer + i lives in v[i].
template <int kPer>
__device__ __forceinline__ void WarpSortAscending(uint32_t (&v)[kPer], int lane) {
  constexpr int kN = 32 * kPer;
#pragma unroll
  for (int k = 2; k <= kN; k <<= 1) {
#pragma unroll
    for (int j = k >> 1; j > 0; j >>= 1) {
      if (j >= kPer) {
        // Partner in lane ^ (j / kPer), same slot.
#pragma unroll
        for (int i = 0; i < kPer; ++i) {
          const int e = lane * kPer + i;
          const uint32_t other = __shfl_xor_sync(0xffffffffu, v[i], j / kPer);
          const bool ascending = (e & k) == 0, lower = (e & j) == 0;
          v[i] = ascending == lower ? min(v[i], other) : max(v[i], other);
        }
      } else {
        // Partner in this lane, slot i ^ j.
#pragma unroll
        for (int i = 0; i < kPer; ++i) {
          if ((i & j) != 0) continue;
          const bool ascending = ((lane * kPer + i) & k) == 0;
          const uint32_t a = v[i], b = v[i + j];
          v[i] = ascending ? min(a, b) : max(a, b);
          v[i + j] = ascending ? max(a, b) : min(a, b);
        }
      }
    }
  }
}

}  // namespace sparsefill::kernels::cuda::index
