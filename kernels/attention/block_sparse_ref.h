// Block-sparse pattern estimation (MInference): mean-pool queries and keys over blocks of 64
// tokens, score query blocks against key blocks, keep the top-k key blocks per query block.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention/attention_shape.h"
#include "kernels/attention/head_key_set.h"

namespace sparsefill::kernels {

struct BlockSparseParams {
  int64_t top_k = 100;  // key blocks per query block, the first and the diagonal block included
  int block_size = 64;
};

// Pooled scores for query head q_head: [query_blocks * query_blocks], row-major, entry
// (bq, bk) = mean(q in bq) . mean(k in bk) / sqrt(head_dim) for bk <= bq, -inf above the
// diagonal. The last block pools only the tokens it has.
std::vector<double> PooledBlockScoresRef(const float* q, const float* k,
                                         const AttentionShape& shape, int q_head, int block_size);

// Selects, for every query block, the top_k causal key blocks by pooled score, always keeping
// block 0 and the diagonal block; ties go to the lower block.
HeadKeySet EstimateBlockSparseRef(const float* q, const float* k, const AttentionShape& shape,
                                  int q_head, const BlockSparseParams& params);

}  // namespace sparsefill::kernels
