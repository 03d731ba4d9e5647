// The kernel cost model's tile counts on small prompts, counted by hand from the kernel's tile
// walk (kernels/attention/cuda/key_tiles.cuh), and its costs.
#include "tests/accuracy/kernel_cost_model.h"

#include <gtest/gtest.h>

namespace sparsefill::accuracy {
namespace {

using kernels::HeadKeySet;

TEST(KernelCostModelTest, DenseAndAShapeTiles) {
  // 256 tokens = 4 row blocks: 1 + 2 + 3 + 4 dense tiles.
  EXPECT_EQ(CountKernelTiles(HeadKeySet::Dense(), 256).dense, 10);
  EXPECT_DOUBLE_EQ(RelativeKernelCost(HeadKeySet::Dense(), 256), KernelCostModel{}.dense);
  // A-shape (64, 128): sinks [0, min(64, r0 + 64 - 128)) in blocks 2 and 3 (one tile each);
  // local [max(0, r0 - 127), r0 + 64): 64, 128, 191, 191 keys = 1 + 2 + 3 + 3 tiles.
  const TileCounts a = CountKernelTiles(HeadKeySet::AShape(64, 128), 256);
  EXPECT_EQ(a.range, 11);
  EXPECT_EQ(a.dense + a.diagonal + a.isolated_diagonal + a.gather + a.block, 0);
  // A prompt inside one block: the local range only.
  EXPECT_EQ(CountKernelTiles(HeadKeySet::AShape(64, 128), 40).range, 1);
}

TEST(KernelCostModelTest, VerticalSlashWindowsAndGathers) {
  HeadKeySet vs;
  vs.kind = HeadKeySet::Kind::kVerticalSlash;
  vs.verticals = {0, 5, 130};
  for (int64_t s = 0; s < 64; ++s) vs.slashes.push_back(s);  // one band [0, 63]
  vs.slashes.push_back(200);                                 // one isolated diagonal
  const TileCounts t = CountKernelTiles(vs, 256);
  // Band key ranges [r0 - 63, r0 + 64): 64 keys in block 0 (one window), 127 after (two).
  // Offset 200 reaches block 3 only (keys [0, 56)): one window spanning offsets 129..255, of
  // which only 200 is a slash: isolated.
  EXPECT_EQ(t.diagonal, 1 + 2 + 2 + 2);
  EXPECT_EQ(t.isolated_diagonal, 1);
  // Verticals visible per block: {0, 5}, {0, 5}, {0, 5, 130}, all: one gathered tile each.
  EXPECT_EQ(t.gather, 4);
  const KernelCostModel m;
  EXPECT_DOUBLE_EQ(ModeledTileCost(t), 7 * m.diagonal + m.isolated_diagonal + 4 * m.gather);
  EXPECT_DOUBLE_EQ(RelativeKernelCost(vs, 256), ModeledTileCost(t) / 10);

  // 65 verticals a block sees take two gathered tiles; the isolated diagonal alone (no band)
  // still costs its window.
  HeadKeySet wide;
  wide.kind = HeadKeySet::Kind::kVerticalSlash;
  for (int64_t c = 0; c < 65; ++c) wide.verticals.push_back(c);
  wide.slashes = {0, 200};
  const TileCounts w = CountKernelTiles(wide, 256);
  EXPECT_EQ(w.gather, 1 + 2 + 2 + 2);  // block 0 sees 64 columns
  // Offset 0 alone spans one window per block, isolated (one offset of 127); 200 one more.
  EXPECT_EQ(w.isolated_diagonal, 4 + 1);
  EXPECT_EQ(w.diagonal, 0);
}

TEST(KernelCostModelTest, BlockSparseAndGathersCostMoreThanRanges) {
  HeadKeySet bs;
  bs.kind = HeadKeySet::Kind::kBlockSparse;
  bs.key_blocks = {{0}, {0, 1}, {0, 2}, {0, 1, 3}};
  EXPECT_EQ(CountKernelTiles(bs, 256).block, 8);
  // The same pairs (keys 0-63 and each row's own key) as 64 gathered columns and a diagonal cost
  // more than as A-shape sink and local ranges: the model prefers ranges.
  HeadKeySet cols;
  cols.kind = HeadKeySet::Kind::kVerticalSlash;
  for (int64_t c = 0; c < 64; ++c) cols.verticals.push_back(c);
  cols.slashes = {0};
  EXPECT_GT(RelativeKernelCost(cols, 4096), RelativeKernelCost(HeadKeySet::AShape(64, 1), 4096));
}

}  // namespace
}  // namespace sparsefill::accuracy
