// Host API of the GPU pattern estimation and index building (sm_90a), in the plan/run shape:
// PlanSparseIndex (host only) lays out one layer's index and sizes the workspace;
// BuildSparseIndex launches the estimation for all heads of the layer and fills the index in the
// workspace. Semantics equal the CPU references (../vertical_slash_ref.h, ../block_sparse_ref.h):
// the selections agree except where scores tie within float32 rounding (the GPU ranks fp32
// scores, the references double ones).
//
// What runs per layer (index_*.cu; every launch covers all heads of its kind):
//   tables          UploadTables (descriptors and kernel tables as kernel parameters)
//   vertical-slash  VsRowStats (pass 1, wgmma: softmax max/sum of the last queries, K tiles shared
//                   by the query heads of a KV group) -> VsRowNorm (merge the per-chunk partials)
//                   -> VsScores (pass 2, wgmma: probabilities -> column sums, diagonal sums)
//                   -> RadixSelectPass x kSelectPasses (exact top-k on (score, -index) keys)
//                   -> SelectFinalize (sorted verticals, run-length encoded bands, counts)
//   block-sparse    BlockPool (64-token means of q and k, as bf16 hi/lo pairs)
//                   -> BlockSelect (pooled scores on tensor cores; per row a lower bound of the
//                   k-th score from group maxima, then a streaming top-k)
//   A-shape, dense  descriptor only.
// index_launch.cuh lists the kernels' parameters; index_tables.cuh the tables both sides share.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/attention/cuda/attention.h"
#include "kernels/attention/sparse_index.h"

namespace sparsefill::kernels::cuda {

// One query head's pattern and budget.
struct HeadPatternSpec {
  HeadKind kind = HeadKind::kDense;
  int64_t a = 0;  // kAShape: n_init (>= 0); kVerticalSlash: vertical budget (>= 1);
                  // kBlockSparse: top_k (>= 1)
  int64_t b = 0;  // kAShape: n_local (>= 1); kVerticalSlash: slash budget (>= 1)
};

// Vertical-slash estimation constants (MInference's; see VerticalSlashParams).
struct VerticalSlashOptions {
  int64_t last_queries = 64;  // 1..64: the estimation kernels hold one 64-row slab per head
  int64_t min_vertical = 30;
  int64_t min_slash = 50;
  int64_t forced_vertical = 30;
  int64_t forced_slash = 100;
};

// Sizes and scratch offsets the launches need (filled by PlanSparseIndex; offsets are bytes from
// the workspace start, each 256-byte aligned).
struct IndexBuildLayout {
  // Vertical-slash scoring.
  int vs_heads = 0;           // query heads of kind kVerticalSlash
  int vs_units = 0;           // CTA row slabs: up to vs_slots heads of one KV group each
  int vs_slots = 0;           // 1, 2 or 4 heads per unit (template choice)
  int last_queries = 0;       // min(options.last_queries, tokens)
  int key_tiles = 0;          // ceil(tokens / 64)
  int tiles_per_chunk = 0;    // key tiles one scoring CTA walks
  int chunks = 0;             // ceil(key_tiles / tiles_per_chunk)
  int64_t score_stride = 0;   // floats per score row (tokens rounded up to 64)
  // Top-k selection (2 problems per vertical-slash head: columns, diagonals).
  int select_problems = 0;
  int select_ctas = 0;        // CTAs per problem in each radix pass
  int64_t candidate_capacity = 0;  // keys per candidate buffer (two per problem)
  int64_t bitmask_words = 0;  // 32-bit words per problem bitmask (rounded up to 4)
  // Block-sparse.
  int bs_heads = 0;
  int bs_kv_heads = 0;        // KV heads pooled (those used by a block-sparse head)
  int query_blocks = 0;       // ceil(tokens / 64)
  int bs_rows_per_cta = 0;    // 64 (top_k - 2 <= 192) or 16 (top_k - 2 <= 960)
  // Uploaded tables (inside the upload image, byte offsets from descriptors_offset).
  size_t units_table = 0, problems_table = 0, bs_table = 0, pool_table = 0;
  // Scratch sub-buffers.
  size_t row_partials = 0;  // float2 [vs_units, chunks, vs_slots * 64]
  size_t row_norm = 0;      // float [vs_units, vs_slots * 64]
  size_t scores = 0;        // float [2 * vs_heads, score_stride]
  size_t candidates = 0;    // uint64 [select_problems, 2, candidate_capacity]
  size_t zeroed = 0;        // start of the region cleared by every build (zeroed_bytes long):
  size_t zeroed_bytes = 0;
  size_t bitmask = 0;       //   uint32 [select_problems, bitmask_words]
  size_t histograms = 0;    //   uint32 [kSelectPasses, select_problems, 2048]
  size_t counters = 0;      //   uint32 [2, kSelectPasses, select_problems] arrivals, writes
  size_t select_state = 0;  //   SelectState [select_problems]
  size_t pooled_q = 0;      // bf16 [bs_heads, query_blocks, 2 * head_dim] (hi | lo)
  size_t pooled_k = 0;      // bf16 [bs_kv_heads, query_blocks, 2 * head_dim]
};

// Where everything lives in the workspace, decided on the host.
struct SparseIndexPlan {
  AttentionDims dims;
  VerticalSlashOptions options;
  std::vector<HeadPatternSpec> heads;
  // Descriptors with their array offsets set; the counts of vertical-slash heads are filled by
  // the device (upper bounds here: vertical_count = V exactly, band_count <= S).
  std::vector<HeadDescriptor> descriptors;
  size_t workspace_bytes = 0;
  // Byte offsets into the workspace.
  size_t descriptors_offset = 0, verticals_offset = 0, bands_offset = 0, key_blocks_offset = 0,
         scratch_offset = 0;
  // The bytes BuildSparseIndex copies to descriptors_offset: the descriptors, then the kernels'
  // tables (vertical-slash units, selection problems, block-sparse heads, pooling list).
  std::vector<unsigned char> upload;
  IndexBuildLayout layout;
};

// cudaErrorInvalidValue for unsupported dims (tokens outside [1, 2^31 - 64], head_dim not 64 or
// 128, kv_heads not dividing q_heads), a heads list not of q_heads entries, budgets out of range
// (vertical/slash/top_k <= 0, n_init < 0, n_local <= 0, any > INT32_MAX), options out of range
// (last_queries not in [1, 64], negative minimums), a block-sparse top_k - 2 above 960 on a
// prompt long enough to need selection, or index arrays beyond int32 offsets. Host-only.
cudaError_t PlanSparseIndex(const AttentionDims& dims, const std::vector<HeadPatternSpec>& heads,
                            const VerticalSlashOptions& options, SparseIndexPlan* plan);

// Estimates every head's pattern from q and k and writes the index into `workspace`
// (plan.workspace_bytes, 256-byte aligned). *index receives device pointers into it, valid
// for the SparseAttention launch that follows on the same stream.
// Everything is enqueued on `stream`; nothing synchronises with the host (the tables travel as
// kernel parameters, not through a pageable cudaMemcpyAsync, so the call is also legal inside
// CUDA graph capture). `plan` may be destroyed once the call returns.
cudaError_t BuildSparseIndex(const SparseIndexPlan& plan, const __nv_bfloat16* q,
                             const __nv_bfloat16* k, void* workspace, cudaStream_t stream,
                             SparseIndexView* index);

}  // namespace sparsefill::kernels::cuda
