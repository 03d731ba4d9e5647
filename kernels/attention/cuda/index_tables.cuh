// The tables PlanSparseIndex writes on the host and the index-building kernels read from the
// workspace, plus the constants both sides must agree on. Plain structs (no device code), so the
// host planner and every index_*.cu kernel file share one definition.
#pragma once

#include <cstdint>

namespace sparsefill::kernels::cuda::index {

// ---- vertical-slash scoring -------------------------------------------------------------------

// Query heads sharing one KV head are scored together: one K tile in shared memory feeds up to
// kVsMaxSlots heads (GQA reuse). 4 is the largest slab whose probabilities fit shared memory next
// to the K ring (4 x 18 KiB; see VsScoreConfig).
inline constexpr int kVsMaxSlots = 4;
// Rows scored per head: the estimation uses at most the last 64 queries (MInference's value), one
// 64-row slab per head.
inline constexpr int kVsRows = 64;
// Keys per scoring tile.
inline constexpr int kVsTileKeys = 64;

// One CTA row slab: up to kVsMaxSlots vertical-slash heads of one KV group.
struct VsUnit {
  int32_t kv_head;
  int32_t q_head[kVsMaxSlots];    // -1: empty slot
  int32_t vs_index[kVsMaxSlots];  // ordinal among the layer's vertical-slash heads; score rows
                                  // 2 * vs_index (columns) and 2 * vs_index + 1 (diagonals)
};

// ---- top-k selection --------------------------------------------------------------------------

// Radix digits over the 64-bit key (score bits << 32 | ~index, bit 63 always 0): 11 bits per
// pass, so the key is decided in at most 6 digit passes (11 * 5 + 8 bits), plus one pass that
// emits the last winners.
inline constexpr int kSelectDigitBits = 11;
inline constexpr int kSelectBins = 1 << kSelectDigitBits;
inline constexpr int kSelectPasses = 7;

// One top-k problem: keep `count` of the `tokens` scores in one score row, the first `forced`
// always, the rest by score (ties to the lower index).
struct SelectProblem {
  int32_t score_row;    // row of the score matrix
  int32_t is_diagonal;  // 0: output sorted indices to verticals[]; 1: bands to bands[]
  int32_t count;        // items kept, forced included
  int32_t forced;       // min(forced option, count)
  int32_t out_begin;    // into verticals[] or bands[]
  int32_t head;         // query head whose descriptor receives the count
};

// Radix-select progress of one problem, in device memory (zeroed before pass 0, which reads the
// problem table instead).
struct SelectState {
  uint64_t prefix;     // key bits above `boundary` decided so far
  int32_t k_rem;       // winners still to find among keys matching the prefix
  int32_t phase;       // 0: nothing left to do; 1: searching; 2: next pass emits and stops
  int32_t boundary;    // bits below this are undecided (64: nothing decided)
  int32_t src;         // where candidates are read: -1 the score row, 0/1 a candidate buffer
  int32_t src_count;   // keys in that buffer
  int32_t write_next;  // the next pass compacts its candidates into a buffer
};

// ---- block-sparse -----------------------------------------------------------------------------

// Row-tile variants of the block-sparse selection (BsSelectConfig): query blocks per CTA and
// candidate keys per row. A variant serves rows keeping up to cap - kBsTileKeys blocks besides the
// forced ones, i.e. top_k <= 194 (wide) or top_k <= 962 (narrow).
inline constexpr int kBsTileKeys = 64;
inline constexpr int kBsWideRows = 64, kBsWideCap = 256;
inline constexpr int kBsNarrowRows = 16, kBsNarrowCap = 1024;

struct BsHead {
  int32_t q_head;
  int32_t q_slot;   // row of the pooled-q table
  int32_t kv_slot;  // row of the pooled-k table
  int32_t top_k;
  int32_t block_begin;     // into key_blocks[]
  int32_t blocks_per_row;  // table width
};

// One head to mean-pool: from q (from_k = 0) or k (from_k = 1).
struct PoolEntry {
  int32_t from_k;
  int32_t head;
  int32_t slot;  // row of the pooled table it fills
};

}  // namespace sparsefill::kernels::cuda::index
