// Parameters and launchers of the index-building kernels, one group per kernel file:
//   index_vs_score.cu   vertical-slash scoring (row statistics, row norms, column/diagonal sums)
//   index_topk.cu       radix top-k selection and the sorted/banded output
//   index_bs.cu         block-sparse pooling and per-row top-k
// index_builder.cu plans the workspace and calls these in order on one stream. Every launcher only
// enqueues work and returns cudaGetLastError() (or the error of the attribute call before it).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/attention/cuda/index_tables.cuh"
#include "kernels/attention/sparse_index.h"

namespace sparsefill::kernels::cuda::index {

// ---- vertical-slash scoring (index_vs_score.cu) -----------------------------------------------

struct VsScoreParams {
  const __nv_bfloat16* q;  // [tokens, q_heads, head_dim]
  const __nv_bfloat16* k;  // [tokens, kv_heads, head_dim]
  const VsUnit* units;     // [units]
  // Pass 1 output: per unit, chunk and row, (max, sum) of the softmax row restricted to the
  // chunk's keys, in log2 units: max of x = s * scale_log2, sum of 2^(x - max).
  float2* row_partials;  // [units, chunks, slots * 64]
  // Row normaliser lambda = max + log2(sum) over all keys (p = 2^(x - lambda)); +inf for rows
  // that are not scored (empty slots, rows beyond last_queries).
  float* row_norm;  // [units, slots * 64]
  // Score rows: 2v = column sums of head v, 2v + 1 = diagonal sums (index = offset q - k).
  float* scores;  // [2 * vs_heads, score_stride]
  int64_t score_stride;
  int32_t tokens;
  int32_t last_queries;  // L = min(last_queries option, tokens): rows are queries T-L .. T-1
  int32_t q_heads;
  int32_t kv_heads;
  int32_t key_tiles;        // ceil(tokens / 64)
  int32_t tiles_per_chunk;  // key tiles per CTA
  int32_t chunks;           // ceil(key_tiles / tiles_per_chunk)
  float scale_log2;         // log2(e) / sqrt(head_dim)
};

// Row statistics, row norms and the column/diagonal sums, for every unit: three launches.
cudaError_t LaunchVsScoring(const VsScoreParams& params, int head_dim, int slots, int units,
                            cudaStream_t stream);

// ---- top-k selection (index_topk.cu) ----------------------------------------------------------

struct SelectParams {
  const SelectProblem* problems;  // [num_problems]
  const float* scores;            // [rows, score_stride]
  int64_t score_stride;
  uint64_t* candidates;  // [num_problems, 2, capacity]: ping-pong candidate keys
  int64_t capacity;
  uint32_t* bitmask;  // [num_problems, bitmask_words]: winners (forced ones added at the end)
  int64_t bitmask_words;
  uint32_t* histograms;  // [kSelectPasses, num_problems, kSelectBins]
  uint32_t* arrivals;    // [kSelectPasses, num_problems]: CTAs finished per pass
  uint32_t* written;     // [kSelectPasses, num_problems]: candidate keys written per pass
  SelectState* states;   // [num_problems]
  int32_t tokens;        // items per problem
  int32_t num_problems;
};

// kSelectPasses radix passes (later ones exit at once when a problem is settled), then the
// finalize kernel: verticals (sorted) or bands (run-length encoded offsets) and the counts in the
// descriptors.
cudaError_t LaunchSelect(const SelectParams& params, int ctas_per_problem,
                         HeadDescriptor* descriptors, int32_t* verticals, DiagonalBand* bands,
                         cudaStream_t stream);

// ---- block-sparse (index_bs.cu) ---------------------------------------------------------------

struct BsParams {
  const __nv_bfloat16* q;  // [tokens, q_heads, head_dim]
  const __nv_bfloat16* k;  // [tokens, kv_heads, head_dim]
  const PoolEntry* pool;   // [pool_entries]
  int32_t pool_entries;
  const BsHead* heads;  // [bs_heads]
  int32_t bs_heads;
  // Mean of each 64-token block (the last one over the tokens it has), split into bf16 hi and lo
  // parts (hi = bf16(mean), lo = bf16(mean - hi)) so that the tensor-core score
  // hi_q.hi_k + hi_q.lo_k + lo_q.hi_k keeps ~16 mantissa bits of each operand.
  __nv_bfloat16* pooled_q;  // [bs_heads, query_blocks, 2 * head_dim]: hi | lo
  __nv_bfloat16* pooled_k;  // [bs_kv_heads, query_blocks, 2 * head_dim]
  int32_t* key_blocks;      // the index's key_blocks[] (each head at its block_begin)
  int32_t tokens;
  int32_t q_heads;
  int32_t kv_heads;
  int32_t query_blocks;
};

// Pooling, then pooled scores with the per-row top-k; rows_per_cta 64 or 16 (see BsSelectConfig).
cudaError_t LaunchBlockSparse(const BsParams& params, int head_dim, int rows_per_cta,
                              cudaStream_t stream);

}  // namespace sparsefill::kernels::cuda::index
