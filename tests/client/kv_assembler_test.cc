// KvAssembler on synthetic chunk streams (no server): the happy paths for every codec with
// chunks split over token and KV-head ranges, and one test per contract violation, each
// asserting the code and the message that names the chunk and the problem.
#include "client/kv_assembler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tests/client/kv_test_util.h"

namespace sparsefill::client {
namespace {

using testing::EncodeKvStream;
using testing::FixCrc;
using ::testing::HasSubstr;
using testing::MakeSyntheticKv;
using testing::Renumber;

constexpr char kRequestId[] = "req-1";

// Odd token count (37, blocks of 10 leave 7) and 3 KV heads split 2 + 1.
const KvShape kShape{/*num_layers=*/3, /*tokens=*/37, /*kv_heads=*/3, /*head_dim=*/8};

struct Collected {
  std::vector<KvLayer> layers;
};

absl::StatusOr<KvAssembler> MakeAssembler(Collected& out, v1::KvCodec codec,
                                          const KvShape& shape = kShape) {
  return KvAssembler::Create(shape, codec, kRequestId, [&out](KvLayer layer) {
    out.layers.push_back(std::move(layer));
    return absl::OkStatus();
  });
}

// Feeds chunks until one fails; returns that status (OK when all were accepted).
absl::Status Feed(KvAssembler& a, const std::vector<v1::KvChunk>& chunks) {
  for (const v1::KvChunk& c : chunks) {
    if (absl::Status s = a.AddChunk(c); !s.ok()) return s;
  }
  return absl::OkStatus();
}

bool BitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// ||a - b|| / ||b||.
double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    ref += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / ref);
}

class KvAssemblerCodecTest : public ::testing::TestWithParam<v1::KvCodec> {};

TEST_P(KvAssemblerCodecTest, ReassemblesChunksSplitOverTokensAndHeads) {
  const v1::KvCodec codec = GetParam();
  const auto source = MakeSyntheticKv(kShape);
  const auto chunks = EncodeKvStream(source, kShape, codec, kRequestId, 10, 2);
  ASSERT_EQ(chunks.size(), 3u * 4 * 2);  // layers x token blocks x head blocks

  Collected out;
  auto a = MakeAssembler(out, codec);
  ASSERT_TRUE(a.ok()) << a.status();
  for (size_t i = 0; i < chunks.size(); ++i) {
    ASSERT_TRUE(a->AddChunk(chunks[i]).ok()) << "chunk " << i;
    // Each layer is handed over exactly when its last chunk arrives, not before.
    EXPECT_EQ(static_cast<int>(out.layers.size()), static_cast<int>((i + 1) / 8));
  }
  ASSERT_TRUE(a->Finish().ok()) << a->Finish();
  EXPECT_EQ(a->chunks_received(), chunks.size());
  uint64_t bytes = 0;
  for (const auto& c : chunks) bytes += c.payload().size();
  EXPECT_EQ(a->payload_bytes_received(), bytes);

  ASSERT_EQ(out.layers.size(), 3u);
  for (int l = 0; l < kShape.num_layers; ++l) {
    const KvLayer& got = out.layers[l];
    EXPECT_EQ(got.layer, l);
    EXPECT_EQ(got.tokens, kShape.tokens);
    EXPECT_EQ(got.kv_heads, kShape.kv_heads);
    EXPECT_EQ(got.head_dim, kShape.head_dim);
    if (codec == v1::KV_CODEC_RAW_FP32) {
      EXPECT_TRUE(BitEqual(got.k, source[l].k)) << "layer " << l;
      EXPECT_TRUE(BitEqual(got.v, source[l].v)) << "layer " << l;
    } else if (codec != v1::KV_CODEC_RAW_BF16 && codec != v1::KV_CODEC_LOSSLESS) {
      // Quantizing codecs: close to the source (the per-element bounds are tested in
      // tests/kernels/kvcodec_codecs_test.cc); a misplaced block would be far off.
      const double ceiling = codec == v1::KV_CODEC_INT4 ? 0.12 : 0.03;
      EXPECT_LT(RelativeError(got.k, source[l].k), ceiling) << "layer " << l;
      EXPECT_LT(RelativeError(got.v, source[l].v), ceiling) << "layer " << l;
    } else {
      std::vector<float> k_rounded = source[l].k, v_rounded = source[l].v;
      for (float& x : k_rounded) x = testing::Bf16Round(x);
      for (float& x : v_rounded) x = testing::Bf16Round(x);
      EXPECT_TRUE(BitEqual(got.k, k_rounded)) << "layer " << l;
      EXPECT_TRUE(BitEqual(got.v, v_rounded)) << "layer " << l;
      EXPECT_FALSE(BitEqual(got.k, source[l].k)) << "bf16 must round these values";
    }
  }
}

TEST_P(KvAssemblerCodecTest, OneChunkPerLayerAndOneTokenChunks) {
  const v1::KvCodec codec = GetParam();
  const KvShape shape{2, 5, 2, 4};
  const auto source = MakeSyntheticKv(shape);
  for (int64_t tokens_per_chunk : {int64_t{5}, int64_t{1}}) {
    Collected out;
    auto a = MakeAssembler(out, codec, shape);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(
        Feed(*a, EncodeKvStream(source, shape, codec, kRequestId, tokens_per_chunk, 1)).ok());
    ASSERT_TRUE(a->Finish().ok());
    ASSERT_EQ(out.layers.size(), 2u);
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, KvAssemblerCodecTest,
                         ::testing::Values(v1::KV_CODEC_RAW_FP32, v1::KV_CODEC_RAW_BF16,
                                           v1::KV_CODEC_LOSSLESS, v1::KV_CODEC_FP8_E4M3,
                                           v1::KV_CODEC_INT8, v1::KV_CODEC_INT4),
                         [](const auto& info) { return v1::KvCodec_Name(info.param); });

// The rest run on bf16 chunks: 3 layers x [0,10) [10,20) [20,30) [30,37) x heads [0,2) [2,3);
// chunk i is layer i / 8, token block (i % 8) / 2, head block i % 2.
class KvAssemblerErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chunks_ =
        EncodeKvStream(MakeSyntheticKv(kShape), kShape, v1::KV_CODEC_RAW_BF16, kRequestId, 10, 2);
    auto a = MakeAssembler(out_, v1::KV_CODEC_RAW_BF16);
    ASSERT_TRUE(a.ok());
    assembler_.emplace(*std::move(a));
  }

  absl::Status FeedAll() { return Feed(*assembler_, chunks_); }

  std::vector<v1::KvChunk> chunks_;
  Collected out_;
  std::optional<KvAssembler> assembler_;
};

TEST_F(KvAssemblerErrorTest, CorruptPayloadFailsTheCrcCheck) {
  chunks_[11].mutable_payload()->at(5) ^= 0x01;
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(),
              HasSubstr("chunk 11 (layer 1, tokens [10,20), kv heads [2,3)): CRC32C mismatch"));
  EXPECT_EQ(out_.layers.size(), 1u);  // layer 0 was complete before the bad chunk
}

TEST_F(KvAssemblerErrorTest, SequenceGapReportsAMissingChunk) {
  chunks_.erase(chunks_.begin() + 3);
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 4 (layer 0, tokens [20,30), kv heads [0,2)): "
                                     "sequence out of order: expected 3 (a chunk is missing"));
}

TEST_F(KvAssemblerErrorTest, MissingChunkWithConsistentSequenceFailsCoverage) {
  // A sender that skips a tile but numbers consecutively: caught at last_in_layer.
  chunks_.erase(chunks_.begin() + 2);  // layer 0, tokens [10,20), heads [0,2)
  Renumber(chunks_);
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 6 (layer 0, tokens [30,37), kv heads [2,3)): "
                                     "last_in_layer is set but 20 of 111 (token, kv head) cells "
                                     "are missing (token 10, kv head 0 not covered)"));
}

TEST_F(KvAssemblerErrorTest, DuplicateChunkIsRejected) {
  chunks_.insert(chunks_.begin() + 4, chunks_[3]);
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 3 (layer 0, tokens [10,20), kv heads [2,3)): "
                                     "sequence out of order: expected 4 (a duplicate"));
}

TEST_F(KvAssemblerErrorTest, OverlappingChunkIsRejectedWithTheFirstCollision) {
  // A consecutively numbered chunk that re-sends part of what chunk 0 covered.
  v1::KvChunk overlap = chunks_[1];  // tokens [0,10), heads [2,3)
  overlap.set_kv_head_begin(1);      // now heads [1,3): head 1 overlaps chunk 0
  overlap.mutable_payload()->append(overlap.payload());
  FixCrc(overlap);
  chunks_[1] = overlap;
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 1 (layer 0, tokens [0,10), kv heads [1,3)): "
                                     "overlaps an earlier chunk at token 0, kv head 1"));
}

TEST_F(KvAssemblerErrorTest, OutOfOrderSequenceIsRejected) {
  std::swap(chunks_[5], chunks_[6]);
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 6 (layer 0, tokens [30,37), kv heads [0,2)): "
                                     "sequence out of order: expected 5"));
}

TEST_F(KvAssemblerErrorTest, WrongPayloadSizeIsRejected) {
  chunks_[2].mutable_payload()->resize(chunks_[2].payload().size() - 2);
  FixCrc(chunks_[2]);
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  // 2 tensors x 10 tokens x 2 heads x 8 x 2 bytes = 640.
  EXPECT_THAT(s.message(), HasSubstr("chunk 2 (layer 0, tokens [10,20), kv heads [0,2)): "
                                     "payload is 638 bytes, expected 640 (KV_CODEC_RAW_BF16)"));
}

TEST_F(KvAssemblerErrorTest, WrongCodecIsRejected) {
  const auto fp32 =
      EncodeKvStream(MakeSyntheticKv(kShape), kShape, v1::KV_CODEC_RAW_FP32, kRequestId, 10, 2);
  const absl::Status s = assembler_->AddChunk(fp32[0]);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 0 (layer 0, tokens [0,10), kv heads [0,2)): codec "
                                     "KV_CODEC_RAW_FP32, requested KV_CODEC_RAW_BF16"));
}

TEST(KvAssemblerPayloadTest, PayloadOfAnotherCodecIsRejectedByItsHeader) {
  // An INT8 payload in a chunk labelled FP8_E4M3 (same size, valid CRC): only the header tells.
  auto int8 = EncodeKvStream(MakeSyntheticKv(kShape), kShape, v1::KV_CODEC_INT8, kRequestId, 10, 2);
  int8[0].set_codec(v1::KV_CODEC_FP8_E4M3);
  Collected out;
  auto a = MakeAssembler(out, v1::KV_CODEC_FP8_E4M3);
  ASSERT_TRUE(a.ok());
  const absl::Status s = a->AddChunk(int8[0]);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 0 (layer 0, tokens [0,10), kv heads [0,2)): payload "
                                     "header says codec INT8, expected FP8_E4M3 (wrong codec)"));
}

TEST(KvAssemblerPayloadTest, CorruptCompressedPayloadsAreRejectedBeforeAnyCellIsMarked) {
  for (v1::KvCodec codec : {v1::KV_CODEC_LOSSLESS, v1::KV_CODEC_INT4}) {
    auto chunks = EncodeKvStream(MakeSyntheticKv(kShape), kShape, codec, kRequestId, 10, 2);
    // Truncated by one byte, with a CRC that matches (a buggy sender, not the network).
    chunks[1].mutable_payload()->pop_back();
    FixCrc(chunks[1]);
    Collected out;
    auto a = MakeAssembler(out, codec);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(a->AddChunk(chunks[0]).ok());
    const absl::Status s = a->AddChunk(chunks[1]);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << v1::KvCodec_Name(codec);
    EXPECT_THAT(s.message(), HasSubstr("chunk 1 (layer 0, tokens [0,10), kv heads [2,3)): "));
    EXPECT_THAT(s.message(), ::testing::AnyOf(HasSubstr("truncated"), HasSubstr("zstd")));
  }
}

TEST_F(KvAssemblerErrorTest, LayerAheadOfAnIncompleteLayerIsRejected) {
  // Layer 0 complete, then layer 2's chunks where layer 1's belong.
  chunks_.erase(chunks_.begin() + 8, chunks_.begin() + 16);
  Renumber(chunks_);
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 8 (layer 2, tokens [0,10), kv heads [0,2)): layer "
                                     "out of order: layer 1 is not complete"));
}

TEST_F(KvAssemblerErrorTest, CompletedLayerSentAgainIsRejected) {
  v1::KvChunk again = chunks_[0];
  again.set_sequence(8);
  chunks_.insert(chunks_.begin() + 8, again);
  Renumber(chunks_);
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 8 (layer 0, tokens [0,10), kv heads [0,2)): layer "
                                     "out of order: layer 0 is already complete"));
}

TEST_F(KvAssemblerErrorTest, StreamEndingEarlyIsDataLoss) {
  // Ends inside layer 1: two chunks of it arrived.
  chunks_.resize(10);
  ASSERT_TRUE(FeedAll().ok());
  const absl::Status s = assembler_->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("KV stream ended after 1 of 3 layers (layer 1: token 10, "
                                     "kv head 0 not covered)"));
}

TEST_F(KvAssemblerErrorTest, StreamEndingAtALayerBoundaryIsDataLoss) {
  chunks_.resize(16);
  ASSERT_TRUE(FeedAll().ok());
  const absl::Status s = assembler_->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(),
              HasSubstr("KV stream ended after 2 of 3 layers (layer 2: no chunks received)"));
}

TEST_F(KvAssemblerErrorTest, ChunkAfterTheLastLayerIsRejected) {
  ASSERT_TRUE(FeedAll().ok());
  v1::KvChunk extra = chunks_[0];
  extra.set_sequence(chunks_.size());
  const absl::Status s = assembler_->AddChunk(extra);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("arrived after all 3 layers were complete"));
}

TEST_F(KvAssemblerErrorTest, OtherRequestsChunkIsRejected) {
  chunks_[0].set_request_id("req-2");
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 0 (layer 0, tokens [0,10), kv heads [0,2)): request "
                                     "id 'req-2', expected 'req-1'"));
}

TEST_F(KvAssemblerErrorTest, RangesOutsideTheShapeAreRejected) {
  {
    v1::KvChunk c = chunks_[0];
    c.set_token_end(38);
    EXPECT_THAT(assembler_->AddChunk(c).message(),
                HasSubstr("token range is empty or outside the prompt [0,37)"));
  }
  for (auto edit : {+[](v1::KvChunk& c) { c.set_kv_head_end(4); },
                    +[](v1::KvChunk& c) { c.set_kv_head_end(c.kv_head_begin()); },
                    +[](v1::KvChunk& c) { c.set_token_begin(c.token_end()); },
                    +[](v1::KvChunk& c) { c.set_head_dim(16); }}) {
    SetUp();  // a fresh assembler: errors are sticky
    v1::KvChunk c = chunks_[0];
    edit(c);
    const absl::Status s = assembler_->AddChunk(c);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_THAT(s.message(), ::testing::AnyOf(HasSubstr("kv head range is empty or outside the "
                                                        "model's [0,3)"),
                                              HasSubstr("token range is empty"),
                                              HasSubstr("head_dim 16, the model's is 8")));
  }
}

TEST_F(KvAssemblerErrorTest, CompleteLayerWithoutLastInLayerIsRejected) {
  chunks_[7].set_last_in_layer(false);
  const absl::Status s = FeedAll();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("chunk 7 (layer 0, tokens [30,37), kv heads [2,3)): "
                                     "completes the layer but last_in_layer is not set"));
}

TEST_F(KvAssemblerErrorTest, ErrorsAreSticky) {
  chunks_[0].mutable_payload()->at(0) ^= 0x10;
  const absl::Status first = assembler_->AddChunk(chunks_[0]);
  ASSERT_EQ(first.code(), absl::StatusCode::kDataLoss);
  FixCrc(chunks_[0]);  // even a now-valid chunk is refused after a failure
  EXPECT_EQ(assembler_->AddChunk(chunks_[0]), first);
  EXPECT_EQ(assembler_->Finish(), first);
}

TEST(KvAssemblerTest, LayerCallbackErrorStopsTheAssembler) {
  const auto chunks =
      EncodeKvStream(MakeSyntheticKv(kShape), kShape, v1::KV_CODEC_RAW_FP32, "", 37, 3);
  auto a = KvAssembler::Create(kShape, v1::KV_CODEC_RAW_FP32, "", [](KvLayer layer) {
    return layer.layer == 1 ? absl::ResourceExhaustedError("cache full") : absl::OkStatus();
  });
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->AddChunk(chunks[0]).ok());
  EXPECT_EQ(a->AddChunk(chunks[1]), absl::ResourceExhaustedError("cache full"));
  EXPECT_EQ(a->AddChunk(chunks[2]).code(), absl::StatusCode::kResourceExhausted);
}

TEST(KvAssemblerTest, RejectsUnusableShapeAndCodec) {
  auto no_op = [](KvLayer) { return absl::OkStatus(); };
  EXPECT_EQ(KvAssembler::Create({3, 0, 2, 8}, v1::KV_CODEC_RAW_BF16, "", no_op).status().code(),
            absl::StatusCode::kInvalidArgument);
  const auto bad_codec = KvAssembler::Create(kShape, v1::KV_CODEC_UNSPECIFIED, "", no_op);
  EXPECT_EQ(bad_codec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_codec.status().message(), HasSubstr("KV_CODEC_UNSPECIFIED is not one"));
}

}  // namespace
}  // namespace sparsefill::client
