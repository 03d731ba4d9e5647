// The codec list parser and the chunked round trip of the harness's compressed-KV check.
#include "tests/accuracy/kv_codec_roundtrip.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "kernels/ops/numeric.h"

namespace sparsefill::accuracy {
namespace {

using kernels::KvCodecId;

constexpr int kHeads = 3, kHeadDim = 64;
constexpr int64_t kTokens = 100;  // not a multiple of INT4's group: the last group is partial

LayerKvSet MakeKv(int layers) {
  LayerKvSet kv;
  uint32_t state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / static_cast<float>(1u << 24) - 0.5f;
  };
  for (int l = 0; l < layers; ++l) {
    kv.k.emplace_back(kTokens * kHeads * kHeadDim);
    kv.v.emplace_back(kTokens * kHeads * kHeadDim);
    for (size_t i = 0; i < kv.k[l].size(); ++i) {
      kv.k[l][i] = 4.0f * next() + static_cast<float>(i % kHeadDim) * 0.1f;  // per-channel offset
      kv.v[l][i] = next();
    }
  }
  return kv;
}

CodecChoice Only(const std::string& name) {
  absl::StatusOr<std::vector<CodecChoice>> list = ParseCodecList(name);
  EXPECT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->size(), 1u);
  return list->front();
}

TEST(KvCodecRoundTripTest, ParsesTheCodecList) {
  absl::StatusOr<std::vector<CodecChoice>> list =
      ParseCodecList("raw_bf16, LOSSLESS,fp8_e4m3,int8,int4,int4:32,raw_fp32");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 7u);
  const KvCodecId want[] = {KvCodecId::kRawBf16, KvCodecId::kLossless, KvCodecId::kFp8E4m3,
                            KvCodecId::kInt8,    KvCodecId::kInt4,     KvCodecId::kInt4,
                            KvCodecId::kRawFp32};
  for (size_t i = 0; i < list->size(); ++i) EXPECT_EQ((*list)[i].codec, want[i]) << i;
  EXPECT_EQ((*list)[1].name, "lossless");
  EXPECT_EQ((*list)[4].options.int4_group_tokens, kernels::kDefaultInt4GroupTokens);
  EXPECT_EQ((*list)[5].options.int4_group_tokens, 32);
  EXPECT_EQ((*list)[5].name, "int4:32");
  EXPECT_TRUE(ParseCodecList("")->empty());

  for (const char* bad : {"zstd", "int8:4", "int4:0", "int4:x", "int4:70000", "int4:8:8"}) {
    absl::StatusOr<std::vector<CodecChoice>> r = ParseCodecList(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(KvCodecRoundTripTest, RawFp32IsExactAndChunksAsBounded) {
  const LayerKvSet kv = MakeKv(2);
  LayerKvSet out;
  // 2 x 3 x 64 x 4 bytes = 1536 bytes a token: a 16 KiB bound gives 10 tokens a chunk.
  absl::StatusOr<RoundTripStats> s =
      RoundTripKv(Only("raw_fp32"), kv, kHeads, kHeadDim, 16384, &out);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->chunks, 2 * 10);
  EXPECT_EQ(s->k_rel_err, 0.0);
  EXPECT_EQ(s->v_rel_err, 0.0);
  EXPECT_EQ(s->bf16_bytes, 2u * 2 * 2 * kTokens * kHeads * kHeadDim);
  EXPECT_GT(s->payload_bytes, 2 * s->bf16_bytes - 1);
  ASSERT_EQ(out.k.size(), 2u);
  EXPECT_EQ(out.k, kv.k);
  EXPECT_EQ(out.v, kv.v);
}

TEST(KvCodecRoundTripTest, Bf16CodecsRoundToBf16AndLosslessMatchesRaw) {
  const LayerKvSet kv = MakeKv(1);
  LayerKvSet raw, lossless;
  absl::StatusOr<RoundTripStats> r =
      RoundTripKv(Only("raw_bf16"), kv, kHeads, kHeadDim, 1 << 20, &raw);
  absl::StatusOr<RoundTripStats> z =
      RoundTripKv(Only("lossless"), kv, kHeads, kHeadDim, 4096, &lossless);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(r->chunks, 1);
  EXPECT_GT(z->chunks, 1);
  for (size_t i = 0; i < kv.k[0].size(); ++i) {
    ASSERT_EQ(raw.k[0][i], kernels::Bf16ToFloat(kernels::FloatToBf16(kv.k[0][i]))) << i;
    ASSERT_EQ(raw.v[0][i], kernels::Bf16ToFloat(kernels::FloatToBf16(kv.v[0][i]))) << i;
  }
  EXPECT_EQ(lossless.k, raw.k);
  EXPECT_EQ(lossless.v, raw.v);
  EXPECT_GT(r->k_rel_err, 0.0);
  EXPECT_LT(r->k_rel_err, 4e-3);  // bf16 keeps 8 significant bits
}

TEST(KvCodecRoundTripTest, QuantizingCodecsErrIntoTheirRangeAndChunkingKeepsTheBytes) {
  const LayerKvSet kv = MakeKv(2);
  // Upper bounds of the relative L2 error on uniform data: 4-bit grid ~1/15 of the range,
  // 8-bit ~1/255, E4M3 3 mantissa bits.
  for (const auto& [name, lo, hi] :
       {std::tuple{"int8", 1e-4, 1e-2}, std::tuple{"fp8_e4m3", 5e-3, 6e-2},
        std::tuple{"int4", 1e-2, 0.15}, std::tuple{"int4:16", 1e-2, 0.15}}) {
    const CodecChoice codec = Only(name);
    LayerKvSet whole, chunked;
    absl::StatusOr<RoundTripStats> a = RoundTripKv(codec, kv, kHeads, kHeadDim, 1 << 20, &whole);
    absl::StatusOr<RoundTripStats> b = RoundTripKv(codec, kv, kHeads, kHeadDim, 8192, &chunked);
    ASSERT_TRUE(a.ok()) << name << ": " << a.status();
    ASSERT_TRUE(b.ok()) << name << ": " << b.status();
    EXPECT_EQ(a->chunks, 2) << name;
    EXPECT_GT(b->chunks, 2) << name;
    EXPECT_LT(a->payload_bytes, a->bf16_bytes) << name;
    for (double e : {a->k_rel_err, a->v_rel_err}) {
      EXPECT_GT(e, lo) << name;
      EXPECT_LT(e, hi) << name;
    }
    for (size_t l = 0; l < 2; ++l) {
      for (size_t i = 0; i < kv.k[l].size(); ++i) {
        ASSERT_TRUE(std::isfinite(chunked.k[l][i]) && std::isfinite(chunked.v[l][i])) << name;
      }
    }
    // Per-token scales (and INT4 chunks cut at whole key groups) do not depend on the chunking.
    if (codec.codec != KvCodecId::kInt4 || codec.options.int4_group_tokens == 16) {
      EXPECT_EQ(chunked.k, whole.k) << name;
      EXPECT_EQ(chunked.v, whole.v) << name;
    }
  }
}

TEST(KvCodecRoundTripTest, RejectsLayersOfPartialTokens) {
  LayerKvSet kv = MakeKv(1);
  kv.k[0].pop_back();
  kv.v[0].pop_back();
  LayerKvSet out;
  EXPECT_EQ(RoundTripKv(Only("int8"), kv, kHeads, kHeadDim, 1 << 20, &out).status().code(),
            absl::StatusCode::kInvalidArgument);
  kv = MakeKv(1);
  kv.v.clear();
  EXPECT_EQ(RoundTripKv(Only("int8"), kv, kHeads, kHeadDim, 1 << 20, &out).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sparsefill::accuracy
