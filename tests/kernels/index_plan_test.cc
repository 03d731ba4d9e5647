// PlanSparseIndex on the CPU (no GPU needed, no CUDA calls): descriptor offsets and budgets, the
// workspace layout, the kernel-variant choices, and errors for bad input.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/attention/cuda/index_builder.h"

namespace sparsefill::kernels::cuda {
namespace {

HeadPatternSpec Vs(int64_t vertical, int64_t slash) { return {HeadKind::kVerticalSlash, vertical, slash}; }
HeadPatternSpec Bs(int64_t top_k) { return {HeadKind::kBlockSparse, top_k, 0}; }
HeadPatternSpec AShape(int64_t n_init, int64_t n_local) { return {HeadKind::kAShape, n_init, n_local}; }
HeadPatternSpec Dense() { return {HeadKind::kDense, 0, 0}; }

AttentionDims Dims(int64_t tokens, int q_heads, int kv_heads, int head_dim) {
  AttentionDims d;
  d.tokens = tokens;
  d.q_heads = q_heads;
  d.kv_heads = kv_heads;
  d.head_dim = head_dim;
  return d;
}

// Byte ranges [begin, end) that must not overlap and must lie inside the workspace.
struct Range {
  size_t begin, end;
  const char* name;
};

void ExpectDisjointAligned(const SparseIndexPlan& plan, std::vector<Range> ranges) {
  for (const Range& r : ranges) {
    EXPECT_EQ(r.begin % 256, 0u) << r.name;
    EXPECT_LE(r.begin, r.end) << r.name;
    EXPECT_LE(r.end, plan.workspace_bytes) << r.name;
  }
  for (size_t i = 0; i < ranges.size(); ++i) {
    for (size_t j = i + 1; j < ranges.size(); ++j) {
      const Range& a = ranges[i];
      const Range& b = ranges[j];
      if (a.begin == a.end || b.begin == b.end) continue;
      EXPECT_TRUE(a.end <= b.begin || b.end <= a.begin) << a.name << " overlaps " << b.name;
    }
  }
}

TEST(IndexPlan, DescriptorsAndOffsetsForMixedHeads) {
  // 8 query heads over 2 KV heads (GQA 4), 1000 tokens = 16 blocks (the last one partial).
  const std::vector<HeadPatternSpec> heads = {
      Vs(100, 200), Bs(5),     AShape(4, 64), Dense(),
      Vs(2000, 10), Bs(1),     Vs(1, 1),      Bs(100)};
  SparseIndexPlan plan;
  ASSERT_EQ(PlanSparseIndex(Dims(1000, 8, 2, 128), heads, VerticalSlashOptions{}, &plan), cudaSuccess);
  ASSERT_EQ(plan.descriptors.size(), 8u);
  const auto& d = plan.descriptors;
  // Vertical-slash: budgets raised to the minimums (30, 50) and cut to the prompt (1000).
  EXPECT_EQ(d[0].kind, HeadKind::kVerticalSlash);
  EXPECT_EQ(d[0].vertical_begin, 0);
  EXPECT_EQ(d[0].vertical_count, 100);
  EXPECT_EQ(d[0].band_begin, 0);
  EXPECT_EQ(d[0].band_count, 200);
  EXPECT_EQ(d[4].vertical_begin, 100);
  EXPECT_EQ(d[4].vertical_count, 1000);
  EXPECT_EQ(d[4].band_begin, 200);
  EXPECT_EQ(d[4].band_count, 50);
  EXPECT_EQ(d[6].vertical_begin, 1100);
  EXPECT_EQ(d[6].vertical_count, 30);
  EXPECT_EQ(d[6].band_begin, 250);
  EXPECT_EQ(d[6].band_count, 50);
  // Block-sparse: width min(max(top_k, 2), blocks); tables back to back.
  EXPECT_EQ(d[1].kind, HeadKind::kBlockSparse);
  EXPECT_EQ(d[1].block_begin, 0);
  EXPECT_EQ(d[1].blocks_per_row, 5);
  EXPECT_EQ(d[5].block_begin, 16 * 5);
  EXPECT_EQ(d[5].blocks_per_row, 2);  // top_k 1 still keeps block 0 and the diagonal block
  EXPECT_EQ(d[7].block_begin, 16 * 5 + 16 * 2);
  EXPECT_EQ(d[7].blocks_per_row, 16);  // more than the prompt has: every causal block
  // A-shape and dense: descriptor only.
  EXPECT_EQ(d[2].kind, HeadKind::kAShape);
  EXPECT_EQ(d[2].n_init, 4);
  EXPECT_EQ(d[2].n_local, 64);
  EXPECT_EQ(d[3].kind, HeadKind::kDense);

  // The upload image starts with the descriptors, byte for byte.
  ASSERT_GE(plan.upload.size(), 8 * sizeof(HeadDescriptor));
  EXPECT_EQ(std::memcmp(plan.upload.data(), d.data(), 8 * sizeof(HeadDescriptor)), 0);

  // Kernel shapes: VS heads 0 (group 0) and 4, 6 (group 1) -> two units of 2 slots.
  const IndexBuildLayout& L = plan.layout;
  EXPECT_EQ(L.vs_heads, 3);
  EXPECT_EQ(L.vs_slots, 2);
  EXPECT_EQ(L.vs_units, 2);
  EXPECT_EQ(L.last_queries, 64);
  EXPECT_EQ(L.key_tiles, 16);
  EXPECT_EQ(L.chunks, (L.key_tiles + L.tiles_per_chunk - 1) / L.tiles_per_chunk);
  EXPECT_GE(L.score_stride, 1000);
  EXPECT_EQ(L.score_stride % 64, 0);
  EXPECT_EQ(L.select_problems, 6);
  EXPECT_EQ(L.bs_heads, 3);
  EXPECT_EQ(L.bs_kv_heads, 2);
  EXPECT_EQ(L.query_blocks, 16);
  EXPECT_EQ(L.bs_rows_per_cta, 64);

  // Every sub-buffer aligned, inside the workspace, and disjoint from the others.
  const size_t verticals = (100 + 1000 + 30) * 4, bands = (200 + 50 + 50) * 8,
               key_blocks = 16 * (5 + 2 + 16) * 4;
  ExpectDisjointAligned(
      plan, {{plan.descriptors_offset, plan.descriptors_offset + plan.upload.size(), "tables"},
             {plan.verticals_offset, plan.verticals_offset + verticals, "verticals"},
             {plan.bands_offset, plan.bands_offset + bands, "bands"},
             {plan.key_blocks_offset, plan.key_blocks_offset + key_blocks, "key_blocks"},
             {L.row_partials, L.row_norm, "row_partials"},
             {L.row_norm, L.scores, "row_norm"},
             {L.scores, L.scores + 6 * L.score_stride * 4, "scores"},
             {L.candidates, L.zeroed, "candidates"},
             {L.zeroed, L.zeroed + L.zeroed_bytes, "zeroed"},
             {L.pooled_q, L.pooled_q + 3 * 16 * 2 * 128 * 2, "pooled_q"},
             {L.pooled_k, L.pooled_k + 2 * 16 * 2 * 128 * 2, "pooled_k"}});
  EXPECT_GE(plan.scratch_offset, plan.key_blocks_offset + key_blocks);
  // The cleared region holds the bitmasks, histograms, counters and states.
  EXPECT_LE(L.zeroed, L.bitmask);
  EXPECT_LT(L.select_state, L.zeroed + L.zeroed_bytes);
  EXPECT_GE(L.bitmask_words * 32, 1000);
}

TEST(IndexPlan, GqaGroupsPickTheSlotCount) {
  // All heads vertical-slash: GQA 8 -> units of 4 heads, two per KV group.
  std::vector<HeadPatternSpec> heads(16, Vs(1000, 6096));
  SparseIndexPlan plan;
  ASSERT_EQ(PlanSparseIndex(Dims(4099, 16, 2, 64), heads, VerticalSlashOptions{}, &plan), cudaSuccess);
  EXPECT_EQ(plan.layout.vs_slots, 4);
  EXPECT_EQ(plan.layout.vs_units, 4);
  // MHA: one head per unit.
  ASSERT_EQ(PlanSparseIndex(Dims(4099, 16, 16, 64), heads, VerticalSlashOptions{}, &plan), cudaSuccess);
  EXPECT_EQ(plan.layout.vs_slots, 1);
  EXPECT_EQ(plan.layout.vs_units, 16);
  // The target shape of the benchmark: 32 heads over 8, 128K tokens.
  std::vector<HeadPatternSpec> big(32, Vs(1000, 6096));
  ASSERT_EQ(PlanSparseIndex(Dims(131072, 32, 8, 128), big, VerticalSlashOptions{}, &plan), cudaSuccess);
  EXPECT_EQ(plan.layout.vs_slots, 4);
  EXPECT_EQ(plan.layout.vs_units, 8);
  EXPECT_EQ(plan.layout.key_tiles, 2048);
  EXPECT_GE(plan.layout.vs_units * plan.layout.chunks, 528);  // enough CTAs to fill 132 SMs
  EXPECT_EQ(plan.layout.select_problems, 64);
}

TEST(IndexPlan, BudgetsLargerThanThePrompt) {
  const std::vector<HeadPatternSpec> heads = {Vs(1000, 6096), Bs(100)};
  SparseIndexPlan plan;
  ASSERT_EQ(PlanSparseIndex(Dims(10, 2, 1, 64), heads, VerticalSlashOptions{}, &plan), cudaSuccess);
  EXPECT_EQ(plan.descriptors[0].vertical_count, 10);
  EXPECT_EQ(plan.descriptors[0].band_count, 10);
  EXPECT_EQ(plan.descriptors[1].blocks_per_row, 1);
  EXPECT_EQ(plan.layout.last_queries, 10);
  // One token.
  ASSERT_EQ(PlanSparseIndex(Dims(1, 2, 1, 128), heads, VerticalSlashOptions{}, &plan), cudaSuccess);
  EXPECT_EQ(plan.descriptors[0].vertical_count, 1);
  EXPECT_EQ(plan.descriptors[0].band_count, 1);
  EXPECT_EQ(plan.layout.last_queries, 1);
  EXPECT_EQ(plan.layout.key_tiles, 1);
}

TEST(IndexPlan, BlockSparseVariantFollowsTopK) {
  SparseIndexPlan plan;
  // top_k 500 over 2048 blocks: rows keep 498 scored blocks -> the narrow (16-row) variant.
  ASSERT_EQ(PlanSparseIndex(Dims(131072, 1, 1, 128), {Bs(500)}, VerticalSlashOptions{}, &plan),
            cudaSuccess);
  EXPECT_EQ(plan.layout.bs_rows_per_cta, 16);
  // top_k 1000 over 2048 blocks: no variant holds 998 candidates per row.
  EXPECT_EQ(PlanSparseIndex(Dims(131072, 1, 1, 128), {Bs(1000)}, VerticalSlashOptions{}, &plan),
            cudaErrorInvalidValue);
  // ... but over 1000 blocks every row keeps all its blocks: nothing to select.
  ASSERT_EQ(PlanSparseIndex(Dims(64000, 1, 1, 128), {Bs(1000)}, VerticalSlashOptions{}, &plan),
            cudaSuccess);
  EXPECT_EQ(plan.layout.bs_rows_per_cta, 64);
}

TEST(IndexPlan, RejectsBadInput) {
  SparseIndexPlan plan;
  const VerticalSlashOptions o;
  const auto dims = Dims(100, 2, 1, 128);
  // Wrong head count, unsupported dims.
  EXPECT_EQ(PlanSparseIndex(dims, {Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(Dims(100, 2, 1, 96), {Dense(), Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(Dims(0, 2, 1, 128), {Dense(), Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(Dims(-5, 2, 1, 128), {Dense(), Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(Dims(int64_t{1} << 31, 2, 1, 128), {Dense(), Dense()}, o, &plan),
            cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(Dims(100, 3, 2, 128), {Dense(), Dense(), Dense()}, o, &plan),
            cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(Dims(100, 2, 0, 128), {Dense(), Dense()}, o, &plan), cudaErrorInvalidValue);
  // Budgets <= 0.
  EXPECT_EQ(PlanSparseIndex(dims, {Vs(0, 10), Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(dims, {Vs(10, 0), Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(dims, {Vs(-3, 10), Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(dims, {Bs(0), Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(dims, {AShape(4, 0), Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(dims, {AShape(-1, 8), Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(dims, {Vs(int64_t{1} << 32, 10), Dense()}, o, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSparseIndex(dims, {HeadPatternSpec{static_cast<HeadKind>(7), 1, 1}, Dense()}, o, &plan),
            cudaErrorInvalidValue);
  // Options out of range.
  VerticalSlashOptions bad = o;
  bad.last_queries = 65;
  EXPECT_EQ(PlanSparseIndex(dims, {Vs(10, 10), Dense()}, bad, &plan), cudaErrorInvalidValue);
  bad.last_queries = 0;
  EXPECT_EQ(PlanSparseIndex(dims, {Vs(10, 10), Dense()}, bad, &plan), cudaErrorInvalidValue);
  bad = o;
  bad.forced_slash = -1;
  EXPECT_EQ(PlanSparseIndex(dims, {Vs(10, 10), Dense()}, bad, &plan), cudaErrorInvalidValue);
  // No plan to fill.
  EXPECT_EQ(PlanSparseIndex(dims, {Dense(), Dense()}, o, nullptr), cudaErrorInvalidValue);
  // A valid call after the failures still works, and dense-only layers need no scratch.
  ASSERT_EQ(PlanSparseIndex(dims, {Dense(), AShape(0, 1)}, o, &plan), cudaSuccess);
  EXPECT_EQ(plan.layout.vs_heads, 0);
  EXPECT_EQ(plan.layout.bs_heads, 0);
  EXPECT_EQ(plan.descriptors[1].n_local, 1);
  EXPECT_GT(plan.workspace_bytes, 0u);
  EXPECT_LE(plan.workspace_bytes, 1024u);
}

TEST(IndexPlan, LastQueriesOptionIsCutToThePrompt) {
  VerticalSlashOptions o;
  o.last_queries = 16;
  SparseIndexPlan plan;
  ASSERT_EQ(PlanSparseIndex(Dims(5000, 1, 1, 64), {Vs(100, 100)}, o, &plan), cudaSuccess);
  EXPECT_EQ(plan.layout.last_queries, 16);
  ASSERT_EQ(PlanSparseIndex(Dims(7, 1, 1, 64), {Vs(100, 100)}, o, &plan), cudaSuccess);
  EXPECT_EQ(plan.layout.last_queries, 7);
}

}  // namespace
}  // namespace sparsefill::kernels::cuda
