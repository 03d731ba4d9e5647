// Exact top-k over long score rows (vertical-slash columns and diagonals: up to millions of
// scores, k up to thousands), all problems of a layer per launch.
//
// Keys. Item i of a row with score x >= 0 gets the 64-bit key (bits(x) << 32) | (2^32 - 1 - i):
// non-negative floats order like their bit patterns, and among equal scores the lower index has
// the larger key. Keys are distinct, so "the k largest keys" is exactly the reference's "top k by
// score, ties to the lower index" (TopIndicesWithForcedPrefix); the forced prefix [0, forced) is
// left out of the selection and added at the end.
//
// Radix select, most significant digit first (11-bit digits below the always-zero bit 63; at most
// 6 digit passes + 1 emission pass, launched unconditionally; a settled problem's CTAs exit at
// once). Pass p visits the
// candidates (keys whose decided prefix equals the state's prefix), histograms their next digit
// in shared memory and adds it to a global histogram; the last CTA of the problem to finish
// (atomic arrival counter) scans it and picks the digit d holding the k_rem-th largest key.
// Keys above the prefix are winners: they set their bit in the problem's bitmask whenever a pass
// meets them (idempotent). When the bucket of d holds exactly k_rem keys, the next pass emits the
// whole bucket and the problem is done.
// Candidates are read from the score row (all tokens) until a pass knows they fit a candidate
// buffer; it then compacts them (warp-aggregated appends) and later passes read only the buffer.
//
// Output. SelectFinalizeKernel turns each bitmask (plus the forced prefix) into ascending indices
// (verticals) or into runs of consecutive offsets (bands) with a block-wide scan over popcounts:
// sorted by construction, no sort needed.
#pragma once

#include <cstdint>

#include "kernels/attention/cuda/index_launch.cuh"
#include "kernels/attention/cuda/index_tables.cuh"

namespace sparsefill::kernels::cuda::index {

// 512 threads x 4 bins covers the 2048-bin scan in one step per thread.
inline constexpr int kSelectThreads = 512;
// One CTA per problem turns its bitmask into the output: 1024 threads, each a contiguous run of
// words (32 words per thread at 1M tokens).
inline constexpr int kFinalizeThreads = 1024;
static_assert(kSelectBins == 4 * kSelectThreads, "each scanning thread owns 4 bins");

// Exclusive prefix sum over the block (thread order); *total receives the sum of all values.
// `scratch` holds kThreads / 32 values. Contains __syncthreads: call from every thread.
template <int kThreads, class T>
__device__ __forceinline__ T BlockExclusiveScan(T value, T* scratch, T* total) {
  static_assert(kThreads % 32 == 0 && kThreads / 32 <= 32, "one warp scans the warp totals");
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  T inclusive = value;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const T up = __shfl_up_sync(0xffffffffu, inclusive, off);
    if (lane >= off) inclusive += up;
  }
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    T w = lane < kThreads / 32 ? scratch[lane] : T(0);
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const T up = __shfl_up_sync(0xffffffffu, w, off);
      if (lane >= off) w += up;
    }
    if (lane < kThreads / 32) scratch[lane] = w;  // inclusive scan of the warp totals
  }
  __syncthreads();
  const T warp_base = warp == 0 ? T(0) : scratch[warp - 1];
  *total = scratch[kThreads / 32 - 1];
  __syncthreads();  // scratch may be reused by the caller
  return warp_base + inclusive - value;
}

__device__ __forceinline__ uint64_t SelectKey(float score, int64_t index) {
  uint32_t bits = __float_as_uint(score);
  if (bits >> 31) bits = 0;  // sums of probabilities are >= 0; a stray -0 ranks as +0
  return (static_cast<uint64_t>(bits) << 32) | (0xffffffffu - static_cast<uint32_t>(index));
}

__device__ __forceinline__ int64_t KeyIndex(uint64_t key) {
  return static_cast<int64_t>(0xffffffffu - static_cast<uint32_t>(key));
}

__global__ void __launch_bounds__(kSelectThreads) RadixSelectPassKernel(const SelectParams p,
                                                                        const int pass) {
  __shared__ uint32_t hist[kSelectBins];
  __shared__ uint32_t scan_scratch[kSelectThreads / 32];
  __shared__ uint32_t warp_count[kSelectThreads / 32], warp_first[kSelectThreads / 32];
  __shared__ int is_last;
  const int prob = blockIdx.y;
  const SelectProblem pr = p.problems[prob];
  const int64_t tokens = p.tokens;
  SelectState st;
  if (pass == 0) {
    // Pass 0 starts from the problem table: nothing decided, every non-forced item a candidate.
    const int k = pr.count - pr.forced;
    if (k <= 0) return;  // nothing to select: the finalize kernel adds the forced prefix
    st.prefix = 0;
    st.k_rem = k;
    st.phase = 1;
    st.boundary = 63;  // bit 63 (the score's sign) is always 0: the first digit starts below it
    st.src = -1;
    st.src_count = static_cast<int32_t>(tokens - pr.forced);
    st.write_next = st.src_count <= p.capacity;
  } else {
    st = p.states[prob];
    if (st.phase == 0) return;
  }
  const bool emit_all = st.phase == 2;  // the prefix is the threshold: emit everything >= it
  const int width = min(kSelectDigitBits, st.boundary);
  const int shift = st.boundary - width;
  const bool write = st.write_next && !emit_all;
  const int dst = st.src == 0 ? 1 : 0;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int i = tid; i < kSelectBins; i += kSelectThreads) hist[i] = 0;
  __syncthreads();

  const float* row = p.scores + static_cast<int64_t>(pr.score_row) * p.score_stride;
  const uint64_t* src = st.src < 0 ? nullptr : p.candidates + (2 * static_cast<int64_t>(prob) + st.src) * p.capacity;
  uint64_t* out = p.candidates + (2 * static_cast<int64_t>(prob) + dst) * p.capacity;
  uint32_t* out_count = p.written + pass * p.num_problems + prob;
  uint32_t* bits = p.bitmask + static_cast<int64_t>(prob) * p.bitmask_words;
  // Items in groups of 4 consecutive ones per thread: score indices forced .. tokens-1 (the row is
  // 16-byte aligned; group g covers indices 4g .. 4g+3), or candidate keys 0 .. src_count-1 (the
  // buffers hold a multiple of 4 keys).
  const int64_t group_begin = src == nullptr ? pr.forced / 4 : 0;
  const int64_t group_end = src == nullptr ? (tokens + 3) / 4 : (static_cast<int64_t>(st.src_count) + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kSelectThreads;
  // CTA-uniform loop: the candidate appends synchronise the CTA.
  for (int64_t base = group_begin + static_cast<int64_t>(blockIdx.x) * kSelectThreads; base < group_end;
       base += stride) {
    const int64_t group = base + tid;
    uint64_t key[4] = {0, 0, 0, 0};
    bool present[4] = {false, false, false, false};
    if (group < group_end) {
      if (src == nullptr) {
        const float4 f = __ldg(reinterpret_cast<const float4*>(row) + group);
        const float score[4] = {f.x, f.y, f.z, f.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int64_t index = 4 * group + i;
          present[i] = index >= pr.forced && index < tokens;
          key[i] = SelectKey(score[i], index);
        }
      } else {
        const ulonglong2 k01 = reinterpret_cast<const ulonglong2*>(src)[2 * group];
        const ulonglong2 k23 = reinterpret_cast<const ulonglong2*>(src)[2 * group + 1];
        key[0] = k01.x, key[1] = k01.y, key[2] = k23.x, key[3] = k23.y;
#pragma unroll
        for (int i = 0; i < 4; ++i) present[i] = 4 * group + i < st.src_count;
      }
    }
    // Classify: winners (decided part above the prefix, or at it when emitting all), candidates
    // (decided part equal to the prefix).
    bool candidate[4];
    uint32_t win_bits = 0;  // score-row mode: the group's 4 indices share one bitmask word
    int n_candidates = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint64_t hi = st.boundary >= 64 ? 0 : key[i] >> st.boundary;
      const bool winner = present[i] && (hi > st.prefix || (emit_all && hi == st.prefix));
      candidate[i] = present[i] && !emit_all && hi == st.prefix;
      n_candidates += candidate[i];
      if (winner) {
        const int64_t index = KeyIndex(key[i]);
        if (src == nullptr) {
          win_bits |= 1u << (index & 31);
        } else {
          atomicOr(bits + (index >> 5), 1u << (index & 31));
        }
      }
    }
    if (win_bits != 0) atomicOr(bits + ((4 * group) >> 5), win_bits);
    // Histogram of the next digit; runs of equal digits (neighbouring scores) add once.
    uint32_t run_digit = 0xffffffffu, run_count = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if (!candidate[i]) continue;
      const uint32_t digit = static_cast<uint32_t>(key[i] >> shift) & (kSelectBins - 1);
      if (digit != run_digit) {
        if (run_count != 0) atomicAdd(&hist[run_digit], run_count);
        run_digit = digit;
        run_count = 0;
      }
      ++run_count;
    }
    if (run_count != 0) atomicAdd(&hist[run_digit], run_count);
    if (write) {
      // CTA-aggregated append: one global atomic per 2048 items (per-warp atomics on the one
      // counter of a problem serialise in L2).
      uint32_t inclusive = static_cast<uint32_t>(n_candidates);
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
        const uint32_t up = __shfl_up_sync(0xffffffffu, inclusive, off);
        if (lane >= off) inclusive += up;
      }
      if (lane == 31) warp_count[warp] = inclusive;
      __syncthreads();
      if (tid == 0) {
        uint32_t total = 0;
        for (int w = 0; w < kSelectThreads / 32; ++w) {
          warp_first[w] = total;
          total += warp_count[w];
        }
        const uint32_t first = total != 0 ? atomicAdd(out_count, total) : 0u;
        for (int w = 0; w < kSelectThreads / 32; ++w) warp_first[w] += first;
      }
      __syncthreads();
      uint32_t at = warp_first[warp] + inclusive - n_candidates;
#pragma unroll
      for (int i = 0; i < 4; ++i)
        if (candidate[i]) out[at++] = key[i];
    }
  }
  __syncthreads();

  // Publish the CTA's histogram, then the last CTA of this problem decides the digit.
  uint32_t* ghist = p.histograms + (static_cast<int64_t>(pass) * p.num_problems + prob) * kSelectBins;
  if (!emit_all) {
    for (int i = tid; i < kSelectBins; i += kSelectThreads)
      if (hist[i] != 0) atomicAdd(ghist + i, hist[i]);
  }
  __threadfence();
  __syncthreads();
  if (tid == 0) is_last = atomicAdd(p.arrivals + pass * p.num_problems + prob, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  if (emit_all) {
    if (tid == 0) p.states[prob].phase = 0;
    return;
  }
  // Thread t owns bins 2047 - 4t .. 2044 - 4t (descending), so the exclusive scan in thread order
  // counts the candidates in higher bins.
  uint32_t v[4], local = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    v[j] = __ldcg(ghist + (kSelectBins - 1 - 4 * tid - j));
    local += v[j];
  }
  uint32_t total;
  const uint32_t above = BlockExclusiveScan<kSelectThreads>(local, scan_scratch, &total);
  const uint32_t k_rem = static_cast<uint32_t>(st.k_rem);
  if (above < k_rem && k_rem <= above + local) {
    // This thread's bins hold the k_rem-th largest candidate.
    uint32_t run = above;
    int j = 0;
    for (; j < 3 && run + v[j] < k_rem; ++j) run += v[j];
    const uint32_t digit = kSelectBins - 1 - 4 * tid - j;
    const uint32_t in_bucket = v[j];
    SelectState next;
    next.k_rem = static_cast<int32_t>(k_rem - run);
    next.prefix = (st.boundary >= 64 ? 0 : (st.prefix << width)) | digit;
    next.boundary = shift;
    next.phase = (in_bucket == static_cast<uint32_t>(next.k_rem) || shift == 0) ? 2 : 1;
    next.src = st.write_next ? dst : st.src;
    next.src_count = st.write_next ? static_cast<int32_t>(__ldcg(out_count)) : st.src_count;
    next.write_next = in_bucket <= p.capacity;
    p.states[prob] = next;
  }
}

// One CTA per problem: bitmask (+ forced prefix) -> sorted verticals or bands, and the count.
__global__ void __launch_bounds__(kFinalizeThreads) SelectFinalizeKernel(
    const SelectParams p, HeadDescriptor* descriptors, int32_t* verticals, DiagonalBand* bands) {
  __shared__ unsigned long long scan_scratch[kFinalizeThreads / 32];
  const SelectProblem pr = p.problems[blockIdx.x];
  const uint32_t* bits = p.bitmask + static_cast<int64_t>(blockIdx.x) * p.bitmask_words;
  const int64_t words = (static_cast<int64_t>(p.tokens) + 31) / 32;
  const int64_t per_thread = (words + kFinalizeThreads - 1) / kFinalizeThreads;
  const int64_t w_begin = min(words, threadIdx.x * per_thread);
  const int64_t w_end = min(words, w_begin + per_thread);
  // Word w of the selection: winners plus the forced prefix [0, forced).
  auto word = [&](int64_t w) -> uint32_t {
    if (w < 0 || w >= words) return 0u;
    uint32_t x = bits[w];
    const int64_t first = w * 32;
    if (first < pr.forced) x |= pr.forced - first >= 32 ? 0xffffffffu : ((1u << (pr.forced - first)) - 1u);
    return x;
  };
  // Run starts (bit set, previous clear) and run ends (bit set, next clear) of word w.
  auto starts = [&](int64_t w, uint32_t x) { return x & ~((x << 1) | (word(w - 1) >> 31)); };
  auto ends = [&](int64_t w, uint32_t x) { return x & ~((x >> 1) | (word(w + 1) << 31)); };
  // Count: selected indices (verticals) or run starts | run ends << 32 (bands).
  unsigned long long count = 0;
  for (int64_t w = w_begin; w < w_end; ++w) {
    const uint32_t x = word(w);
    if (pr.is_diagonal) {
      count += __popc(starts(w, x)) + (static_cast<unsigned long long>(__popc(ends(w, x))) << 32);
    } else {
      count += __popc(x);
    }
  }
  unsigned long long total;
  const unsigned long long base = BlockExclusiveScan<kFinalizeThreads>(count, scan_scratch, &total);
  if (pr.is_diagonal) {
    DiagonalBand* out = bands + pr.out_begin;
    int64_t n_start = static_cast<int64_t>(base & 0xffffffffu), n_end = static_cast<int64_t>(base >> 32);
    for (int64_t w = w_begin; w < w_end; ++w) {
      const uint32_t x = word(w);
      for (uint32_t m = starts(w, x); m != 0; m &= m - 1) out[n_start++].lo = static_cast<int32_t>(w * 32 + __ffs(m) - 1);
      for (uint32_t m = ends(w, x); m != 0; m &= m - 1) out[n_end++].hi = static_cast<int32_t>(w * 32 + __ffs(m) - 1);
    }
    if (threadIdx.x == 0) descriptors[pr.head].band_count = static_cast<int32_t>(total & 0xffffffffu);
  } else {
    int32_t* out = verticals + pr.out_begin;
    int64_t n = static_cast<int64_t>(base);
    for (int64_t w = w_begin; w < w_end; ++w) {
      for (uint32_t m = word(w); m != 0; m &= m - 1) out[n++] = static_cast<int32_t>(w * 32 + __ffs(m) - 1);
    }
    if (threadIdx.x == 0) descriptors[pr.head].vertical_count = static_cast<int32_t>(total);
  }
}

}  // namespace sparsefill::kernels::cuda::index
