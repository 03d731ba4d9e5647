// Paged KV assembly (client/paged_kv_layout.h, KvAssembler::CreatePaged): the paged caches equal
// the per-layer tensors of the same stream re-laid out by an independent loop, for several block
// sizes (1, 16, one that does not divide the token count), identity and non-identity block
// tables, chunks split over token ranges that straddle block boundaries, and every codec; bad
// block sizes and tables are InvalidArgument naming the field.
#include "client/paged_kv_layout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "client/kv_assembler.h"
#include "tests/client/kv_test_util.h"

namespace sparsefill::client {
namespace {

using testing::EncodeKvStream;
using ::testing::HasSubstr;
using testing::MakeSyntheticKv;

constexpr char kRequestId[] = "req-paged";

// 37 tokens (prime), 3 KV heads: chunks of 10 tokens and 2 + 1 heads cross every block size's
// boundaries but 1's.
const KvShape kShape{/*num_layers=*/2, /*tokens=*/37, /*kv_heads=*/3, /*head_dim=*/8};

// The reference: token t's [kv_heads, head_dim] row of `layer` copied to physical block
// table[t / block_size], slot t % block_size of a zeroed [num_blocks, block_size, kv_heads,
// head_dim] cache.
std::vector<float> Relayout(const std::vector<float>& layer, const KvShape& shape, int block_size,
                            const std::vector<int32_t>& table, int64_t num_blocks) {
  const int64_t row = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  std::vector<float> cache(num_blocks * block_size * row, 0.0f);
  for (int64_t t = 0; t < shape.tokens; ++t) {
    const int64_t block = table[t / block_size];
    for (int64_t i = 0; i < row; ++i) {
      cache[(block * block_size + t % block_size) * row + i] = layer[t * row + i];
    }
  }
  return cache;
}

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// (codec, block size, non-identity table)
class PagedAssemblyTest : public ::testing::TestWithParam<std::tuple<v1::KvCodec, int, bool>> {};

TEST_P(PagedAssemblyTest, EqualsPerLayerTensorsReLaidOut) {
  const auto [codec, block_size, shuffled] = GetParam();
  const auto source = MakeSyntheticKv(kShape);
  const auto chunks = EncodeKvStream(source, kShape, codec, kRequestId, 10, 2);

  // Per-layer tensors from the same chunks: the reference input.
  std::vector<KvLayer> linear;
  auto flat = KvAssembler::Create(kShape, codec, kRequestId, [&](KvLayer layer) {
    linear.push_back(std::move(layer));
    return absl::OkStatus();
  });
  ASSERT_TRUE(flat.ok()) << flat.status();

  // Non-identity: logical block i -> physical 2 * (n - 1 - i) + 1 of 2n + 1 blocks (reversed,
  // with unused physical blocks between and around them, which must stay zero).
  const int64_t logical = (kShape.tokens + block_size - 1) / block_size;
  std::vector<int32_t> table;
  int64_t num_blocks = logical;
  if (shuffled) {
    for (int64_t i = 0; i < logical; ++i)
      table.push_back(static_cast<int32_t>(2 * (logical - 1 - i) + 1));
    num_blocks = 2 * logical + 1;
  }
  auto layout = PagedKvLayout::Create(kShape.tokens, kShape.kv_heads, kShape.head_dim, block_size,
                                      table, num_blocks);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->num_blocks(), num_blocks);
  EXPECT_EQ(layout->logical_blocks(), logical);

  std::vector<PagedKvLayer> paged;
  auto a = KvAssembler::CreatePaged(kShape, codec, kRequestId, *layout, [&](PagedKvLayer layer) {
    paged.push_back(std::move(layer));
    return absl::OkStatus();
  });
  ASSERT_TRUE(a.ok()) << a.status();
  for (const v1::KvChunk& c : chunks) {
    ASSERT_TRUE(flat->AddChunk(c).ok());
    ASSERT_TRUE(a->AddChunk(c).ok()) << a->AddChunk(c);
  }
  ASSERT_TRUE(a->Finish().ok()) << a->Finish();
  ASSERT_EQ(paged.size(), static_cast<size_t>(kShape.num_layers));
  ASSERT_EQ(linear.size(), paged.size());

  const std::vector<int32_t>& used_table = layout->block_table();
  for (int l = 0; l < kShape.num_layers; ++l) {
    EXPECT_EQ(paged[l].layer, l);
    EXPECT_TRUE(
        BitEqual(paged[l].k, Relayout(linear[l].k, kShape, block_size, used_table, num_blocks)))
        << "layer " << l << " K";
    EXPECT_TRUE(
        BitEqual(paged[l].v, Relayout(linear[l].v, kShape, block_size, used_table, num_blocks)))
        << "layer " << l << " V";
  }
  if (shuffled) {
    // The reference itself must depend on the table: block 0's first slot is token 0's row.
    const int64_t row = static_cast<int64_t>(kShape.kv_heads) * kShape.head_dim;
    const int64_t at = int64_t{used_table[0]} * block_size * row;
    EXPECT_EQ(paged[0].k[at], linear[0].k[0]);
    EXPECT_EQ(paged[0].k[0], 0.0f);  // physical block 0 is unused
  }
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, PagedAssemblyTest,
                         ::testing::Combine(::testing::Values(v1::KV_CODEC_RAW_FP32,
                                                              v1::KV_CODEC_INT4,
                                                              v1::KV_CODEC_LOSSLESS),
                                            ::testing::Values(1, 16, 7), ::testing::Bool()));

// Direct use of DecodeKvChunkToPages: one chunk lands at its tokens' slots, nothing else is
// written.
TEST(PagedKvLayoutTest, DecodeOneChunkWritesOnlyItsSlots) {
  const KvShape shape{1, 20, 2, 4};
  const auto source = MakeSyntheticKv(shape);
  kernels::KvChunkExtent e{/*token_begin=*/5, /*token_end=*/13, /*head_begin=*/1,
                           /*head_end=*/2, /*head_dim=*/4};
  const v1::KvChunk chunk = testing::MakeChunk(source[0], 0, shape.kv_heads, e,
                                               v1::KV_CODEC_RAW_FP32, 0, kRequestId, false);
  auto layout =
      PagedKvLayout::Create(shape.tokens, shape.kv_heads, shape.head_dim, 4, {3, 0, 4, 1, 2});
  ASSERT_TRUE(layout.ok()) << layout.status();
  std::vector<float> k(layout->cache_elements(), 0.0f), v(layout->cache_elements(), 0.0f);
  std::vector<float> scratch;
  ASSERT_TRUE(DecodeKvChunkToPages(kernels::KvCodecId::kRawFp32, chunk.payload(), e, *layout,
                                   &scratch, k.data(), v.data())
                  .ok());
  int64_t written = 0;
  for (int64_t t = 0; t < shape.tokens; ++t) {
    for (int h = 0; h < shape.kv_heads; ++h) {
      for (int d = 0; d < shape.head_dim; ++d) {
        const int64_t at = layout->TokenOffset(t) + h * shape.head_dim + d;
        const bool inside = t >= e.token_begin && t < e.token_end && h == 1;
        const float want =
            inside ? source[0].k[(t * shape.kv_heads + h) * shape.head_dim + d] : 0.0f;
        EXPECT_EQ(k[at], want) << "token " << t << " head " << h << " dim " << d;
        written += k[at] != 0.0f;
      }
    }
  }
  EXPECT_EQ(written, (e.token_end - e.token_begin) * shape.head_dim);
  // Token 5 is logical block 1 -> physical 0, slot 1; token 12 is logical block 3 -> physical 1.
  EXPECT_EQ(layout->TokenOffset(5), 1 * shape.kv_heads * shape.head_dim);
  EXPECT_EQ(layout->TokenOffset(12), 4 * shape.kv_heads * shape.head_dim);
}

TEST(PagedKvLayoutTest, BadBlockSizeIsInvalidArgument) {
  for (int bs : {0, -16}) {
    auto layout = PagedKvLayout::Create(37, 3, 8, bs);
    ASSERT_FALSE(layout.ok());
    EXPECT_EQ(layout.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(layout.status().message(), HasSubstr("block_size"));
  }
}

TEST(PagedKvLayoutTest, TooSmallTableIsInvalidArgument) {
  // 37 tokens in blocks of 16 need 3 blocks.
  auto layout = PagedKvLayout::Create(37, 3, 8, 16, {4, 2});
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(layout.status().message(), HasSubstr("block_table has 2 entries"));
  EXPECT_THAT(layout.status().message(), HasSubstr("need 3"));
}

TEST(PagedKvLayoutTest, BadTableEntriesAndBlockCountsAreInvalidArgument) {
  struct Case {
    std::vector<int32_t> table;
    int64_t num_blocks;
    const char* message;
  };
  const Case cases[] = {
      {{0, 5, 1}, 4, "block_table[1] = 5 is outside [0, num_blocks 4)"},
      {{0, -1, 1}, 0, "block_table[1] = -1"},
      {{2, 1, 2}, 0, "block_table[2] = 2 maps a second logical block"},
      {{}, 2, "num_blocks 2 is too small"},
      {{}, -1, "num_blocks -1"},
  };
  for (const Case& c : cases) {
    auto layout = PagedKvLayout::Create(37, 3, 8, 16, c.table, c.num_blocks);
    ASSERT_FALSE(layout.ok()) << c.message;
    EXPECT_EQ(layout.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(layout.status().message(), HasSubstr(c.message));
  }
}

TEST(PagedKvLayoutTest, LayoutForAnotherShapeIsRejectedByTheAssembler) {
  auto layout = PagedKvLayout::Create(kShape.tokens + 1, kShape.kv_heads, kShape.head_dim, 16);
  ASSERT_TRUE(layout.ok());
  auto a = KvAssembler::CreatePaged(kShape, v1::KV_CODEC_RAW_FP32, kRequestId, *layout, nullptr);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(a.status().message(), HasSubstr("paged layout is for 38 tokens"));
}

}  // namespace
}  // namespace sparsefill::client
