// The KV codecs of kernels/kvcodec/kv_codec.h: round trips of every codec on the golden model's
// KV and on random KV with outlier channels, each within the error bound its header documents
// (LOSSLESS bit-exact with RAW_BF16), compression ratios, and clear errors for truncated, corrupt
// and wrong-codec payloads (the output is untouched on error).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/kvcodec/kv_codec.h"
#include "kernels/kvcodec/quant_math.h"
#include "kernels/ops/numeric.h"
#include "tests/kernels/kv_test_data.h"
#include "tests/kernels/test_util.h"
#include "worker/safetensors.h"
#include "worker/weight_source.h"

namespace sparsefill::kernels {
namespace {

using ::testing::HasSubstr;

constexpr KvCodecId kAllCodecs[] = {KvCodecId::kRawBf16, KvCodecId::kRawFp32, KvCodecId::kLossless,
                                    KvCodecId::kFp8E4m3, KvCodecId::kInt8,    KvCodecId::kInt4};
constexpr float kGuard = -12345.0f;  // outside the chunk's region: must survive decoding

// The layer as the encoder sees it: float32 values, optionally rounded to bf16 first (a bf16
// source), and the view over them.
struct Layer {
  int64_t tokens;
  int heads, dim;
  std::vector<float> k, v;               // the values the encoder reads (float32)
  std::vector<uint16_t> k_bf16, v_bf16;  // the same as bf16 bits when the source is bf16
  ScalarType dtype;

  KvLayerView View() const {
    if (dtype == ScalarType::kBFloat16) return {k_bf16.data(), v_bf16.data(), dtype, heads, tokens};
    return {k.data(), v.data(), dtype, heads, tokens};
  }
};

Layer MakeLayer(int64_t tokens, int heads, int dim, std::vector<float> k, std::vector<float> v,
                ScalarType dtype) {
  Layer l{tokens, heads, dim, std::move(k), std::move(v), {}, {}, dtype};
  if (dtype == ScalarType::kBFloat16) {
    for (float& x : l.k) l.k_bf16.push_back(FloatToBf16(x)), x = Bf16ToFloat(l.k_bf16.back());
    for (float& x : l.v) l.v_bf16.push_back(FloatToBf16(x)), x = Bf16ToFloat(l.v_bf16.back());
  }
  return l;
}

struct Decoded {
  std::vector<float> k, v;
};

Decoded RoundTrip(KvCodecId codec, const Layer& layer, const KvChunkExtent& e, std::string* payload,
                  const KvEncodeOptions& options = {}) {
  const absl::Status enc = EncodeKvChunk(codec, layer.View(), e, options, payload);
  EXPECT_TRUE(enc.ok()) << KvCodecName(codec) << ": " << enc;
  Decoded out{std::vector<float>(layer.k.size(), kGuard),
              std::vector<float>(layer.v.size(), kGuard)};
  const absl::Status dec =
      DecodeKvChunk(codec, *payload, layer.heads, e, out.k.data(), out.v.data());
  EXPECT_TRUE(dec.ok()) << KvCodecName(codec) << ": " << dec;
  return out;
}

bool Inside(const KvChunkExtent& e, int64_t t, int h) {
  return t >= e.token_begin && t < e.token_end && h >= e.head_begin && h < e.head_end;
}

// Checks every element of the chunk against the codec's documented bound, and that nothing
// outside the chunk was written. Returns the relative (Frobenius) errors of K and V in the chunk.
std::pair<double, double> CheckBounds(KvCodecId codec, const Layer& layer, const KvChunkExtent& e,
                                      const Decoded& got, int group_tokens) {
  const int D = layer.dim, H = layer.heads;
  double err2[2] = {0, 0}, ref2[2] = {0, 0};
  int failures = 0;
  for (int which = 0; which < 2; ++which) {
    const std::vector<float>& x = which == 0 ? layer.k : layer.v;
    const std::vector<float>& y = which == 0 ? got.k : got.v;
    for (int64_t t = 0; t < layer.tokens; ++t) {
      for (int h = 0; h < H; ++h) {
        const int64_t base = (t * H + h) * D;
        if (!Inside(e, t, h)) {
          for (int d = 0; d < D; ++d) {
            if (y[base + d] != kGuard && ++failures < 5) {
              ADD_FAILURE() << "wrote outside the chunk at token " << t << " head " << h;
            }
          }
          continue;
        }
        float amax = 0, rlo = FLT_MAX, rhi = -FLT_MAX;
        for (int d = 0; d < D; ++d) {
          amax = std::max(amax, std::fabs(x[base + d]));
          rlo = std::min(rlo, x[base + d]);
          rhi = std::max(rhi, x[base + d]);
        }
        for (int d = 0; d < D; ++d) {
          const float want = x[base + d], have = y[base + d];
          double bound = 0;
          switch (codec) {
            case KvCodecId::kRawFp32:
              bound = 0;
              break;
            case KvCodecId::kRawBf16:
            case KvCodecId::kLossless:
              // Bit-exact with the bf16 rounding of the input.
              if (FloatToBits(have) != FloatToBits(Bf16ToFloat(FloatToBf16(want))) &&
                  ++failures < 5) {
                ADD_FAILURE() << KvCodecName(codec) << " not bit-exact at " << base + d;
              }
              bound = INFINITY;  // checked bit for bit above
              break;
            case KvCodecId::kFp8E4m3:
              bound = 0.0625 * std::fabs(want) + amax / 448.0 * 0x1p-10;
              break;
            case KvCodecId::kInt8:
              bound = amax / 127.0 / 2;
              break;
            case KvCodecId::kInt4: {
              float lo = rlo, hi = rhi;
              if (which == 0) {  // K: the channel over the token's group
                const int64_t g0 =
                    e.token_begin + (t - e.token_begin) / group_tokens * group_tokens;
                const int64_t g1 = std::min<int64_t>(e.token_end, g0 + group_tokens);
                lo = FLT_MAX, hi = -FLT_MAX;
                for (int64_t s = g0; s < g1; ++s) {
                  lo = std::min(lo, x[(s * H + h) * D + d]);
                  hi = std::max(hi, x[(s * H + h) * D + d]);
                }
              }
              const double scale = (1 + 0x1p-7) * ((hi - lo) + 0x1p-7 * std::fabs(lo)) / 15;
              bound = scale / 2;
              break;
            }
          }
          // Plus float32 rounding of the decode arithmetic.
          bound += 4 * FLT_EPSILON * (std::fabs(want) + amax);
          if (!(std::fabs(static_cast<double>(have) - want) <= bound) && ++failures < 5) {
            ADD_FAILURE() << KvCodecName(codec) << (which == 0 ? " K" : " V") << "[" << t << ","
                          << h << "," << d << "] = " << have << ", want " << want << " +- "
                          << bound;
          }
          err2[which] += (static_cast<double>(have) - want) * (static_cast<double>(have) - want);
          ref2[which] += static_cast<double>(want) * want;
        }
      }
    }
  }
  return {std::sqrt(err2[0] / ref2[0]), std::sqrt(err2[1] / ref2[1])};
}

// The documented relative (Frobenius) error ceilings on KV-like data, as a regression net on top
// of the per-element bounds.
double RelativeErrorCeiling(KvCodecId codec) {
  switch (codec) {
    case KvCodecId::kRawFp32:
      return 0;
    case KvCodecId::kRawBf16:
    case KvCodecId::kLossless:
      return 4e-3;
    case KvCodecId::kFp8E4m3:
      return 4e-2;
    case KvCodecId::kInt8:
      return 2.5e-2;  // per-token scales: an outlier channel sets the whole row's step
    case KvCodecId::kInt4:
      return 0.15;
  }
  return 0;
}

class CodecRoundTrip : public ::testing::TestWithParam<std::tuple<KvCodecId, ScalarType>> {};

TEST_P(CodecRoundTrip, RandomKvWithOutlierChannels) {
  const auto [codec, dtype] = GetParam();
  const testing::RandomKv kv = testing::MakeOutlierKv(300, 4, 128, 7);
  const Layer layer = MakeLayer(kv.tokens, kv.kv_heads, kv.head_dim, kv.k, kv.v, dtype);
  // The whole layer, and a chunk in the middle of both ranges whose token count is not a
  // multiple of the INT4 group.
  for (const KvChunkExtent& e :
       {KvChunkExtent{0, 300, 0, 4, 128}, KvChunkExtent{37, 251, 1, 3, 128}}) {
    std::string payload;
    const Decoded got = RoundTrip(codec, layer, e, &payload);
    const auto [k_err, v_err] = CheckBounds(codec, layer, e, got, kDefaultInt4GroupTokens);
    EXPECT_LE(k_err, RelativeErrorCeiling(codec)) << KvCodecName(codec);
    EXPECT_LE(v_err, RelativeErrorCeiling(codec)) << KvCodecName(codec);
    EXPECT_LE(payload.size(), MaxKvPayloadBytes(codec, e));
    const double bf16_bytes = 2.0 * 2 * e.elements_per_tensor();
    RecordProperty(std::string(KvCodecName(codec)) + "_ratio",
                   std::to_string(bf16_bytes / payload.size()));
    if (codec == KvCodecId::kLossless) {
      EXPECT_GT(bf16_bytes / payload.size(), 1.1);
    }
    if (codec == KvCodecId::kFp8E4m3 || codec == KvCodecId::kInt8) {
      EXPECT_GT(bf16_bytes / payload.size(), 1.9);
    }
    if (codec == KvCodecId::kInt4) {
      EXPECT_GT(bf16_bytes / payload.size(), 3.5);
    }
  }
}

TEST_P(CodecRoundTrip, GoldenModelKv) {
  const auto [codec, dtype] = GetParam();
  auto golden = worker::SafetensorsFile::Open(std::string(SPARSEFILL_TEST_DATA_DIR) +
                                              "/tiny-llama3/golden.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status();
  for (int l = 0; l < 3; ++l) {
    const worker::TensorView* kt = (*golden)->Find("layer." + std::to_string(l) + ".k");
    const worker::TensorView* vt = (*golden)->Find("layer." + std::to_string(l) + ".v");
    ASSERT_TRUE(kt != nullptr && vt != nullptr);
    ASSERT_EQ(kt->shape.size(), 3u);
    const int64_t T = kt->shape[0];
    const int H = static_cast<int>(kt->shape[1]), D = static_cast<int>(kt->shape[2]);
    const Layer layer =
        MakeLayer(T, H, D, worker::ToFloat32(*kt).value(), worker::ToFloat32(*vt).value(), dtype);
    // Chunks of 256 tokens with the last one short, as the server cuts a layer; INT4 with a
    // group of 32 here (the header carries it).
    KvEncodeOptions options;
    options.int4_group_tokens = 32;
    size_t bytes = 0;
    for (int64_t t0 = 0; t0 < T; t0 += 256) {
      const KvChunkExtent e{t0, std::min<int64_t>(T, t0 + 256), 0, H, D};
      std::string payload;
      const Decoded got = RoundTrip(codec, layer, e, &payload, options);
      const auto [k_err, v_err] = CheckBounds(codec, layer, e, got, options.int4_group_tokens);
      EXPECT_LE(k_err, RelativeErrorCeiling(codec)) << KvCodecName(codec) << " layer " << l;
      EXPECT_LE(v_err, RelativeErrorCeiling(codec)) << KvCodecName(codec) << " layer " << l;
      bytes += payload.size();
    }
    if (codec == KvCodecId::kLossless) {
      EXPECT_LT(bytes, 2u * 2 * T * H * D) << "layer " << l;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CodecRoundTrip,
                         ::testing::Combine(::testing::ValuesIn(kAllCodecs),
                                            ::testing::Values(ScalarType::kFloat32,
                                                              ScalarType::kBFloat16)),
                         [](const auto& info) {
                           return std::string(KvCodecName(std::get<0>(info.param))) +
                                  (std::get<1>(info.param) == ScalarType::kFloat32 ? "_F32"
                                                                                   : "_BF16");
                         });

TEST(KvCodec, LosslessIsBitExactWithRawBf16IncludingSpecialValues) {
  std::vector<float> k = testing::RandomVector(2 * 3 * 8, 3), v = testing::RandomVector(48, 4);
  k[0] = 0.0f, k[1] = -0.0f, k[2] = INFINITY, k[3] = -INFINITY, k[4] = 1e-40f, k[5] = FLT_MAX;
  v[7] = NAN;
  const Layer layer = MakeLayer(2, 3, 8, k, v, ScalarType::kFloat32);
  const KvChunkExtent e{0, 2, 0, 3, 8};
  std::string raw, lossless;
  const Decoded a = RoundTrip(KvCodecId::kRawBf16, layer, e, &raw);
  const Decoded b = RoundTrip(KvCodecId::kLossless, layer, e, &lossless);
  for (size_t i = 0; i < a.k.size(); ++i) {
    EXPECT_EQ(FloatToBits(a.k[i]), FloatToBits(b.k[i])) << i;
    EXPECT_EQ(FloatToBits(a.v[i]), FloatToBits(b.v[i])) << i;
  }
}

TEST(KvCodec, QuantizersHandleZeroRowsAndConstantGroups) {
  std::vector<float> k(4 * 2 * 8, 0.0f), v(4 * 2 * 8, 3.25f);
  const Layer layer = MakeLayer(4, 2, 8, k, v, ScalarType::kFloat32);
  const KvChunkExtent e{0, 4, 0, 2, 8};
  for (KvCodecId codec : {KvCodecId::kFp8E4m3, KvCodecId::kInt8, KvCodecId::kInt4}) {
    std::string payload;
    const Decoded got = RoundTrip(codec, layer, e, &payload);
    for (float x : got.k) EXPECT_EQ(x, 0.0f) << KvCodecName(codec);
    for (float x : got.v) EXPECT_NEAR(x, 3.25f, 3.25f * 0.07f) << KvCodecName(codec);
  }
}

TEST(KvCodec, E4m3ConversionKnownValues) {
  EXPECT_EQ(kvq::FloatToE4m3(0.0f), 0x00);
  EXPECT_EQ(kvq::FloatToE4m3(1.0f), 0x38);
  EXPECT_EQ(kvq::FloatToE4m3(-2.0f), 0xc0);
  EXPECT_EQ(kvq::FloatToE4m3(448.0f), 0x7e);
  EXPECT_EQ(kvq::FloatToE4m3(1000.0f), 0x7e);   // saturates
  EXPECT_EQ(kvq::FloatToE4m3(0x1p-9f), 0x01);   // smallest subnormal
  EXPECT_EQ(kvq::FloatToE4m3(0x1p-10f), 0x00);  // tie to even (0)
  EXPECT_EQ(kvq::FloatToE4m3(1.0625f), 0x38);   // tie 1.0 / 1.125 -> even (1.0)
  EXPECT_EQ(kvq::FloatToE4m3(1.1875f), 0x3a);   // tie 1.125 / 1.25 -> even (1.25)
  // Every finite code round-trips.
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(kvq::E4m3ToFloat(static_cast<uint8_t>(c))));
      continue;
    }
    const float x = kvq::E4m3ToFloat(static_cast<uint8_t>(c));
    EXPECT_EQ(kvq::FloatToE4m3(x), c == 0x80 ? 0x80 : c) << c;
  }
}

TEST(KvCodec, RoundHalfEvenTiesAndSigns) {
  EXPECT_EQ(kvq::RoundHalfEven(0.5f), 0.0f);
  EXPECT_EQ(kvq::RoundHalfEven(1.5f), 2.0f);
  EXPECT_EQ(kvq::RoundHalfEven(2.5f), 2.0f);
  EXPECT_EQ(kvq::RoundHalfEven(-2.5f), -2.0f);
  EXPECT_EQ(kvq::RoundHalfEven(-3.5f), -4.0f);
  EXPECT_EQ(kvq::RoundHalfEven(0.49999997f), 0.0f);
  EXPECT_EQ(kvq::RoundHalfEven(126.50001f), 127.0f);
  EXPECT_EQ(kvq::RoundHalfEven(-0.2f), 0.0f);
  EXPECT_EQ(kvq::RoundHalfEven(15.4f), 15.0f);
}

TEST(KvCodec, Bf16DirectedRounding) {
  for (float x : {1.0f, -1.0f, 1.00390625f, 3.14159f, -3.14159f, 1e-30f, -1e-30f, 0.0f}) {
    EXPECT_LE(kvq::Bf16BitsToFloat(kvq::FloatToBf16Down(x)), x) << x;
    if (x >= 0) {
      EXPECT_GE(kvq::Bf16BitsToFloat(kvq::FloatToBf16Up(x)), x) << x;
    }
  }
  EXPECT_EQ(kvq::Bf16BitsToFloat(kvq::FloatToBf16Down(-3.14159f)), -3.15625f);
}

TEST(KvCodec, MaxTokensPerChunkStaysWithinTheLimit) {
  for (KvCodecId codec : kAllCodecs) {
    for (int64_t max_bytes : {int64_t{64} << 10, int64_t{1} << 20, int64_t{3} << 20}) {
      const int64_t n = MaxTokensPerChunk(codec, 100000, 8, 128, max_bytes);
      ASSERT_GE(n, 1);
      EXPECT_LE(MaxKvPayloadBytes(codec, {0, n, 0, 8, 128}), static_cast<size_t>(max_bytes))
          << KvCodecName(codec);
      EXPECT_GT(MaxKvPayloadBytes(codec, {0, n + (codec == KvCodecId::kInt4 ? 64 : 1), 0, 8, 128}),
                static_cast<size_t>(max_bytes))
          << KvCodecName(codec);
      if (codec == KvCodecId::kInt4 && n >= kDefaultInt4GroupTokens) {
        EXPECT_EQ(n % kDefaultInt4GroupTokens, 0);
      }
    }
    EXPECT_EQ(MaxTokensPerChunk(codec, 5, 8, 128, 1), 1);  // at least one token
    EXPECT_EQ(MaxTokensPerChunk(codec, 5, 8, 128, int64_t{1} << 30), 5);
  }
}

// ---- Errors ----

class CodecErrors : public ::testing::TestWithParam<KvCodecId> {
 protected:
  void SetUp() override {
    const testing::RandomKv kv = testing::MakeOutlierKv(20, 2, 16, 11);
    layer_ = MakeLayer(20, 2, 16, kv.k, kv.v, ScalarType::kFloat32);
    ASSERT_TRUE(EncodeKvChunk(GetParam(), layer_.View(), extent_, {}, &payload_).ok());
  }
  // Decodes `payload` as `codec` into guard-filled buffers; checks they stay untouched on error.
  absl::Status Decode(const std::string& payload, KvCodecId codec) {
    std::vector<float> k(layer_.k.size(), kGuard), v(layer_.v.size(), kGuard);
    absl::Status s = DecodeKvChunk(codec, payload, 2, extent_, k.data(), v.data());
    if (!s.ok()) {
      EXPECT_TRUE(std::all_of(k.begin(), k.end(), [](float x) { return x == kGuard; }) &&
                  std::all_of(v.begin(), v.end(), [](float x) { return x == kGuard; }))
          << "output written before the error: " << s;
    }
    return s;
  }
  Layer layer_;
  const KvChunkExtent extent_{3, 17, 0, 2, 16};
  std::string payload_;
};

TEST_P(CodecErrors, TruncatedOrExtendedPayloadsAreDataLoss) {
  ASSERT_TRUE(Decode(payload_, GetParam()).ok());
  for (size_t keep : {size_t{0}, size_t{5}, size_t{8}, payload_.size() / 2, payload_.size() - 1}) {
    const absl::Status s = Decode(payload_.substr(0, keep), GetParam());
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << keep << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(KvCodecName(GetParam()))) << s;
  }
  const absl::Status s = Decode(payload_ + "x", GetParam());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(s.message(), ::testing::AnyOf(HasSubstr("trailing"), HasSubstr("expected")));
}

TEST_P(CodecErrors, WrongCodecIsNamed) {
  for (KvCodecId other : kAllCodecs) {
    if (other == GetParam()) continue;
    const absl::Status s = Decode(payload_, other);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss)
        << KvCodecName(GetParam()) << " as " << KvCodecName(other) << ": " << s;
    const bool both_compressed = other != KvCodecId::kRawBf16 && other != KvCodecId::kRawFp32 &&
                                 GetParam() != KvCodecId::kRawBf16 &&
                                 GetParam() != KvCodecId::kRawFp32;
    if (both_compressed) {
      EXPECT_THAT(s.message(),
                  HasSubstr(std::string("payload header says codec ") + KvCodecName(GetParam())));
      EXPECT_THAT(s.message(), HasSubstr("wrong codec"));
    }
  }
}

// The compressed codecs only: raw payloads have no header.
class HeaderedCodecErrors : public CodecErrors {};

TEST_P(HeaderedCodecErrors, CorruptHeaderIsDataLoss) {
  for (int byte : {0, 1, 3, 6, 7}) {
    std::string bad = payload_;
    bad[byte] ^= 0x10;
    const absl::Status s = Decode(bad, GetParam());
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << byte << ": " << s;
  }
  std::string bad = payload_;
  bad[4] = 0, bad[5] = 0;  // INT4 group size 0; a parameter where the others have none
  if (GetParam() != KvCodecId::kInt4) bad[4] = 1;
  EXPECT_EQ(Decode(bad, GetParam()).code(), absl::StatusCode::kDataLoss);
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CodecErrors, ::testing::ValuesIn(kAllCodecs),
                         [](const auto& info) { return std::string(KvCodecName(info.param)); });
INSTANTIATE_TEST_SUITE_P(CompressedCodecs, HeaderedCodecErrors,
                         ::testing::Values(KvCodecId::kLossless, KvCodecId::kFp8E4m3,
                                           KvCodecId::kInt8, KvCodecId::kInt4),
                         [](const auto& info) { return std::string(KvCodecName(info.param)); });

TEST(KvCodecErrors, CorruptBodiesAreDataLoss) {
  const testing::RandomKv kv = testing::MakeOutlierKv(20, 2, 16, 5);
  const Layer layer = MakeLayer(20, 2, 16, kv.k, kv.v, ScalarType::kFloat32);
  const KvChunkExtent e{0, 20, 0, 2, 16};
  std::vector<float> k(layer.k.size()), v(layer.v.size());
  auto decode = [&](KvCodecId codec, const std::string& p) {
    return DecodeKvChunk(codec, p, 2, e, k.data(), v.data());
  };
  std::string fp8, int8, int4, lossless;
  ASSERT_TRUE(EncodeKvChunk(KvCodecId::kFp8E4m3, layer.View(), e, {}, &fp8).ok());
  ASSERT_TRUE(EncodeKvChunk(KvCodecId::kInt8, layer.View(), e, {}, &int8).ok());
  ASSERT_TRUE(EncodeKvChunk(KvCodecId::kInt4, layer.View(), e, {}, &int4).ok());
  ASSERT_TRUE(EncodeKvChunk(KvCodecId::kLossless, layer.View(), e, {}, &lossless).ok());

  std::string bad = fp8;
  const float nan = NAN;
  std::memcpy(bad.data() + 8, &nan, 4);  // K scale of row 0
  EXPECT_THAT(decode(KvCodecId::kFp8E4m3, bad).message(), HasSubstr("K scale of row 0"));
  bad = fp8;
  bad[bad.size() - 1] = 0x7f;  // the E4M3 NaN code
  EXPECT_THAT(decode(KvCodecId::kFp8E4m3, bad).message(), HasSubstr("undefined (NaN)"));
  bad = int8;
  const float negative = -1.0f;
  std::memcpy(bad.data() + 8 + 4 * 40, &negative, 4);  // V scale of row 0
  EXPECT_THAT(decode(KvCodecId::kInt8, bad).message(), HasSubstr("V scale of row 0"));
  bad = int4;
  bad[8] = static_cast<char>(0x80), bad[9] = 0x7f;  // K min 0: bf16 0x7f80, +inf
  EXPECT_THAT(decode(KvCodecId::kInt4, bad).message(), HasSubstr("INT4 K group parameters 0"));
  bad = lossless;
  bad[bad.size() / 2] ^= 0x5a;
  bad[bad.size() / 2 + 1] ^= 0xa5;
  const absl::Status s = decode(KvCodecId::kLossless, bad);
  // zstd detects most corruption; the CRC32C in KvChunk catches the rest before decoding.
  if (!s.ok()) {
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  }
  bad = lossless.substr(0, 8) + "not a zstd frame at all";
  EXPECT_THAT(decode(KvCodecId::kLossless, bad).message(), HasSubstr("not a zstd frame"));
}

TEST(KvCodecErrors, EncoderRejectsWhatItCannotEncode) {
  std::vector<float> k(2 * 1 * 6, 1.0f), v(12, 1.0f);
  k[3] = INFINITY;
  const Layer layer = MakeLayer(2, 1, 6, k, v, ScalarType::kFloat32);
  std::string payload;
  for (KvCodecId codec : {KvCodecId::kFp8E4m3, KvCodecId::kInt8, KvCodecId::kInt4}) {
    const absl::Status s = EncodeKvChunk(codec, layer.View(), {0, 2, 0, 1, 6}, {}, &payload);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr("K[token 0, head 0, dim 3] is inf"));
  }
  const Layer odd = MakeLayer(2, 1, 5, std::vector<float>(10, 1.0f), std::vector<float>(10, 1.0f),
                              ScalarType::kFloat32);
  EXPECT_THAT(EncodeKvChunk(KvCodecId::kInt4, odd.View(), {0, 2, 0, 1, 5}, {}, &payload).message(),
              HasSubstr("even head_dim"));
  KvEncodeOptions zero_group;
  zero_group.int4_group_tokens = 0;
  EXPECT_THAT(EncodeKvChunk(KvCodecId::kInt4, layer.View(), {0, 2, 0, 1, 6}, zero_group, &payload)
                  .message(),
              HasSubstr("group size must be in [1, 65535]"));
  // Tokens or heads outside the layer.
  EXPECT_EQ(EncodeKvChunk(KvCodecId::kInt8, layer.View(), {0, 3, 0, 1, 6}, {}, &payload).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeKvChunk(KvCodecId::kInt8, layer.View(), {0, 2, 0, 2, 6}, {}, &payload).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(KvCodecFromNumber(0).ok());
  EXPECT_FALSE(KvCodecFromNumber(7).ok());
  EXPECT_EQ(*KvCodecFromNumber(6), KvCodecId::kInt4);
}

}  // namespace
}  // namespace sparsefill::kernels
