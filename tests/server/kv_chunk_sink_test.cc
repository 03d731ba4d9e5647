// KvChunkSink: token-range tiling (odd and prime sizes, one token per chunk at the limit),
// payload layout (K block then V block, [token][kv_head][head_dim]), payload sizes within
// max_chunk_bytes, CRC32C, bf16 round-to-nearest-even, sequence numbers and last_in_layer.
#include "server/kv_chunk_sink.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/kvcodec/crc32c.h"
#include "kernels/kvcodec/raw_codec.h"

namespace sparsefill::server {
namespace {

using kernels::ScalarType;

// An independent bf16 reference: round to nearest, ties to even, on the float's bits.
uint16_t ReferenceBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN
  const uint32_t lsb = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7fffu + lsb) >> 16);
}

float FloatAt(const std::string& payload, size_t index) {
  float f;
  std::memcpy(&f, payload.data() + 4 * index, 4);
  return f;
}

uint16_t Bf16At(const std::string& payload, size_t index) {
  // Little-endian on the wire, independent of the host.
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data()) + 2 * index;
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

// One layer of synthetic KV: element (t, h, d) of K is distinct and easy to recognise.
struct LayerData {
  int64_t tokens;
  int kv_heads;
  int head_dim;
  std::vector<float> k, v;

  LayerData(int64_t t, int h, int d) : tokens(t), kv_heads(h), head_dim(d) {
    const size_t n = static_cast<size_t>(t) * h * d;
    k.resize(n);
    v.resize(n);
    for (size_t i = 0; i < n; ++i) {
      // Values with low mantissa bits set, so bf16 rounding actually rounds.
      k[i] = static_cast<float>(i) + 0.123456f;
      v[i] = -static_cast<float>(i) * 1.000123f - 0.5f;
    }
  }
  float K(int64_t t, int h, int d) const {
    return k[(static_cast<size_t>(t) * kv_heads + h) * head_dim + d];
  }
  float V(int64_t t, int h, int d) const {
    return v[(static_cast<size_t>(t) * kv_heads + h) * head_dim + d];
  }

  worker::LayerKv View(int layer) const {
    worker::LayerKv kv;
    kv.layer = layer;
    kv.tokens = tokens;
    kv.kv_heads = kv_heads;
    kv.head_dim = head_dim;
    kv.dtype = ScalarType::kFloat32;
    kv.k = k.data();
    kv.v = v.data();
    return kv;
  }
};

struct Collected {
  std::vector<v1::KvChunk> chunks;
  KvChunkSink::Emit Emit() {
    return [this](std::unique_ptr<v1::PrefillResponse> m) {
      EXPECT_TRUE(m->has_kv_chunk());
      chunks.push_back(m->kv_chunk());
      return absl::OkStatus();
    };
  }
};

void ExpectTiles(const std::vector<TokenRange>& ranges, int64_t tokens, int64_t per_chunk) {
  ASSERT_FALSE(ranges.empty());
  EXPECT_EQ(ranges.front().begin, 0);
  EXPECT_EQ(ranges.back().end, tokens);
  for (size_t i = 0; i < ranges.size(); ++i) {
    EXPECT_GE(ranges[i].end - ranges[i].begin, 1);
    EXPECT_LE(ranges[i].end - ranges[i].begin, per_chunk);
    if (i + 1 < ranges.size()) {
      EXPECT_EQ(ranges[i].end, ranges[i + 1].begin);
      EXPECT_EQ(ranges[i].end - ranges[i].begin, per_chunk) << "only the last chunk may be short";
    }
  }
}

TEST(PlanChunkTokenRangesTest, TilesEverySize) {
  EXPECT_EQ(PlanChunkTokenRanges(1000, 512, 65536), (std::vector<TokenRange>{{0, 128},
                                                                             {128, 256},
                                                                             {256, 384},
                                                                             {384, 512},
                                                                             {512, 640},
                                                                             {640, 768},
                                                                             {768, 896},
                                                                             {896, 1000}}));
  for (const int64_t tokens : {1, 2, 3, 7, 127, 128, 129, 997, 1000, 4099}) {
    for (const int64_t bytes_per_token : {1, 3, 512, 1024, 65536, 100000}) {
      const int64_t max_bytes = 65536;
      const int64_t per_chunk = std::max<int64_t>(1, max_bytes / bytes_per_token);
      SCOPED_TRACE(testing::Message() << tokens << " tokens, " << bytes_per_token << " B/token");
      ExpectTiles(PlanChunkTokenRanges(tokens, bytes_per_token, max_bytes), tokens, per_chunk);
    }
  }
  EXPECT_TRUE(PlanChunkTokenRanges(0, 512, 65536).empty());
}

TEST(PlanChunkTokenRangesTest, OneTokenPerChunkWhenATokenIsLargerThanTheLimit) {
  const auto ranges = PlanChunkTokenRanges(5, 100000, 65536);
  ASSERT_EQ(ranges.size(), 5u);
  for (int64_t t = 0; t < 5; ++t) EXPECT_EQ(ranges[t], (TokenRange{t, t + 1}));
}

TEST(KvChunkSinkTest, Fp32ChunksHoldTheExactLayoutAndSizes) {
  // 997 tokens (prime) x 2 heads x 64: 1 KiB per token in fp32, so 64 KiB chunks hold 64 tokens.
  const LayerData layer(997, 2, 64);
  Collected out;
  KvChunkSink sink({"req-7", v1::KV_CODEC_RAW_FP32, 64 << 10}, out.Emit());
  ASSERT_TRUE(sink.OnLayerKv(layer.View(0)).ok());
  ASSERT_TRUE(sink.OnLayerKv(layer.View(1)).ok());

  const size_t per_layer = (997 + 63) / 64;
  ASSERT_EQ(out.chunks.size(), 2 * per_layer);
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < out.chunks.size(); ++i) {
    const v1::KvChunk& c = out.chunks[i];
    SCOPED_TRACE(testing::Message() << "chunk " << i);
    EXPECT_EQ(c.request_id(), "req-7");
    EXPECT_EQ(c.sequence(), i) << "sequence numbers run over the whole request";
    EXPECT_EQ(c.layer(), i / per_layer);
    EXPECT_EQ(c.codec(), v1::KV_CODEC_RAW_FP32);
    EXPECT_EQ(c.kv_head_begin(), 0u);
    EXPECT_EQ(c.kv_head_end(), 2u);
    EXPECT_EQ(c.head_dim(), 64u);
    EXPECT_EQ(c.last_in_layer(), (i % per_layer) == per_layer - 1);
    const uint64_t n_tokens = c.token_end() - c.token_begin();
    ASSERT_EQ(c.payload().size(), 2 * n_tokens * 2 * 64 * 4);
    EXPECT_LE(c.payload().size(), 64u << 10);
    EXPECT_EQ(c.payload_crc32c(), kernels::Crc32c(c.payload().data(), c.payload().size()));
    total_bytes += c.payload().size();
    // K block then V block, each [token][head][dim].
    const size_t block = n_tokens * 2 * 64;
    for (uint64_t t = c.token_begin(); t < c.token_end(); t += 13) {
      for (int h = 0; h < 2; ++h) {
        for (int d = 0; d < 64; d += 7) {
          const size_t at = ((t - c.token_begin()) * 2 + h) * 64 + d;
          EXPECT_EQ(FloatAt(c.payload(), at), layer.K(static_cast<int64_t>(t), h, d));
          EXPECT_EQ(FloatAt(c.payload(), block + at), layer.V(static_cast<int64_t>(t), h, d));
        }
      }
    }
  }
  EXPECT_EQ(out.chunks[per_layer - 1].token_end(), 997u);
  EXPECT_EQ(sink.chunks_sent(), out.chunks.size());
  EXPECT_EQ(sink.payload_bytes_sent(), total_bytes);
  EXPECT_EQ(sink.source_bytes(), 2u * 2 * 997 * 2 * 64 * 4);
}

TEST(KvChunkSinkTest, CompressedChunksStayWithinTheLimitAndTileTheLayer) {
  const LayerData layer(997, 2, 64);
  for (v1::KvCodec codec :
       {v1::KV_CODEC_LOSSLESS, v1::KV_CODEC_FP8_E4M3, v1::KV_CODEC_INT8, v1::KV_CODEC_INT4}) {
    SCOPED_TRACE(v1::KvCodec_Name(codec));
    Collected out;
    KvChunkSink sink({"", codec, 64 << 10, 16}, out.Emit());
    ASSERT_TRUE(sink.OnLayerKv(layer.View(0)).ok());
    ASSERT_GE(out.chunks.size(), 2u);
    uint64_t next_token = 0, bytes = 0;
    for (const v1::KvChunk& c : out.chunks) {
      EXPECT_EQ(c.codec(), codec);
      EXPECT_EQ(c.token_begin(), next_token);
      next_token = c.token_end();
      EXPECT_LE(c.payload().size(), 64u << 10);
      EXPECT_EQ(c.payload_crc32c(), kernels::Crc32c(c.payload().data(), c.payload().size()));
      if (codec == v1::KV_CODEC_INT4 && !c.last_in_layer()) {
        EXPECT_EQ((c.token_end() - c.token_begin()) % 16, 0u) << "key groups are not split";
      }
      bytes += c.payload().size();
    }
    EXPECT_EQ(next_token, 997u);
    EXPECT_EQ(sink.payload_bytes_sent(), bytes);
  }
}

TEST(KvChunkSinkTest, NonFiniteKvWithAQuantizingCodecIsAnInternalError) {
  LayerData layer(10, 2, 64);
  layer.k[5] = std::numeric_limits<float>::quiet_NaN();
  Collected out;
  KvChunkSink sink({"", v1::KV_CODEC_INT8, 64 << 10}, out.Emit());
  const absl::Status s = sink.OnLayerKv(layer.View(3));
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find("encoding KV of layer 3"), std::string::npos) << s;
  EXPECT_TRUE(out.chunks.empty());
}

TEST(KvChunkSinkTest, Bf16IsRoundToNearestEvenOfEveryElement) {
  LayerData layer(131, 3, 32);
  // Edge values: ties (to even, both ways), values that round up into the exponent, infinities.
  const float specials[] = {1.0f + 1.0f / 256,
                            1.0f + 3.0f / 256,
                            1.0f + 1.0f / 512,
                            -3.0117188f,
                            65535.99f,
                            std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::max(),
                            1e-40f,
                            -0.0f};
  for (size_t i = 0; i < std::size(specials); ++i) layer.k[i] = specials[i];
  Collected out;
  KvChunkSink sink({"", v1::KV_CODEC_RAW_BF16, 64 << 10}, out.Emit());
  ASSERT_TRUE(sink.OnLayerKv(layer.View(5)).ok());
  ASSERT_FALSE(out.chunks.empty());
  int64_t next_token = 0;
  for (const v1::KvChunk& c : out.chunks) {
    EXPECT_EQ(c.codec(), v1::KV_CODEC_RAW_BF16);
    EXPECT_EQ(c.layer(), 5u);
    EXPECT_EQ(c.token_begin(), static_cast<uint64_t>(next_token));
    next_token = static_cast<int64_t>(c.token_end());
    const size_t n = (c.token_end() - c.token_begin()) * 3 * 32;
    ASSERT_EQ(c.payload().size(), 2 * n * 2);
    EXPECT_LE(c.payload().size(), 64u << 10);
    for (size_t i = 0; i < n; ++i) {
      const size_t src = c.token_begin() * 3 * 32 + i;
      ASSERT_EQ(Bf16At(c.payload(), i), ReferenceBf16(layer.k[src])) << "K element " << src;
      ASSERT_EQ(Bf16At(c.payload(), n + i), ReferenceBf16(layer.v[src])) << "V element " << src;
    }
  }
  EXPECT_EQ(next_token, 131);
  EXPECT_TRUE(out.chunks.back().last_in_layer());
}

TEST(KvChunkSinkTest, Bf16SourceExpandsExactlyToFp32) {
  std::vector<uint16_t> k(4 * 1 * 8), v(4 * 1 * 8);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<uint16_t>(0x3f80 + i);  // 1.0 and its neighbours
    v[i] = static_cast<uint16_t>(0xc000 + 3 * i);
  }
  worker::LayerKv kv;
  kv.tokens = 4;
  kv.kv_heads = 1;
  kv.head_dim = 8;
  kv.dtype = ScalarType::kBFloat16;
  kv.k = k.data();
  kv.v = v.data();
  Collected out;
  KvChunkSink sink({"", v1::KV_CODEC_RAW_FP32, 1 << 20}, out.Emit());
  ASSERT_TRUE(sink.OnLayerKv(kv).ok());
  ASSERT_EQ(out.chunks.size(), 1u);
  for (size_t i = 0; i < k.size(); ++i) {
    uint32_t bits;
    const float f = FloatAt(out.chunks[0].payload(), i);
    std::memcpy(&bits, &f, 4);
    EXPECT_EQ(bits, static_cast<uint32_t>(k[i]) << 16);
  }
  EXPECT_EQ(sink.source_bytes(), 2u * k.size() * 2);
}

TEST(KvChunkSinkTest, OneTokenPerChunkWhenATokenExceedsTheLimit) {
  // 2 heads x 8192 dims x 4 bytes x (K + V) = 128 KiB per token > 64 KiB.
  const LayerData layer(3, 2, 8192);
  Collected out;
  KvChunkSink sink({"", v1::KV_CODEC_RAW_FP32, 64 << 10}, out.Emit());
  ASSERT_TRUE(sink.OnLayerKv(layer.View(0)).ok());
  ASSERT_EQ(out.chunks.size(), 3u);
  for (uint64_t t = 0; t < 3; ++t) {
    EXPECT_EQ(out.chunks[t].token_begin(), t);
    EXPECT_EQ(out.chunks[t].token_end(), t + 1);
  }
}

TEST(KvChunkSinkTest, EmitFailureStopsTheLayer) {
  const LayerData layer(500, 2, 64);
  int emitted = 0;
  KvChunkSink sink(
      {"", v1::KV_CODEC_RAW_FP32, 64 << 10}, [&](std::unique_ptr<v1::PrefillResponse>) {
        return ++emitted == 2 ? absl::CancelledError("client went away") : absl::OkStatus();
      });
  const absl::Status s = sink.OnLayerKv(layer.View(0));
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(emitted, 2) << "no chunk after the failed one";
  EXPECT_EQ(sink.chunks_sent(), 1u);
}

TEST(KvChunkSinkTest, RejectsUnsupportedExportTypes) {
  std::vector<int8_t> data(64);
  worker::LayerKv kv;
  kv.tokens = 1;
  kv.kv_heads = 1;
  kv.head_dim = 64;
  kv.dtype = ScalarType::kInt8;
  kv.k = data.data();
  kv.v = data.data();
  Collected out;
  KvChunkSink sink({"", v1::KV_CODEC_RAW_BF16, 1 << 20}, out.Emit());
  EXPECT_EQ(sink.OnLayerKv(kv).code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(out.chunks.empty());
}

}  // namespace
}  // namespace sparsefill::server
