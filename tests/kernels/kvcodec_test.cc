// CRC-32C known answers and the raw KV codecs' round trips.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "kernels/kvcodec/crc32c.h"
#include "kernels/kvcodec/raw_codec.h"
#include "kernels/ops/numeric.h"
#include "tests/kernels/test_util.h"

namespace sparsefill::kernels {
namespace {

TEST(Crc32c, KnownAnswers) {
  const std::string check = "123456789";
  EXPECT_EQ(Crc32c(check.data(), check.size()), 0xE3069283u);  // the standard check value
  const std::vector<uint8_t> zeros(32, 0);
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
  const std::vector<uint8_t> ones(32, 0xff);
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
}

TEST(Crc32c, ExtendEqualsWhole) {
  std::vector<uint8_t> data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  const uint32_t whole = Crc32c(data.data(), data.size());
  for (size_t cut : {0, 1, 7, 8, 9, 500, 999, 1000}) {
    EXPECT_EQ(Crc32cExtend(Crc32c(data.data(), cut), data.data() + cut, data.size() - cut), whole)
        << cut;
  }
  data[123] ^= 1;
  EXPECT_NE(Crc32c(data.data(), data.size()), whole);
}

TEST(RawCodec, Fp32RoundTripIsExactAndBf16IsRounding) {
  const int T = 11, H = 3, D = 8;
  const auto k = testing::RandomVector(T * H * D, 1);
  const auto v = testing::RandomVector(T * H * D, 2);
  // A chunk in the middle of both the token and the head range.
  KvChunkExtent e{3, 9, 1, 3, D};
  for (ScalarType wire : {ScalarType::kFloat32, ScalarType::kBFloat16}) {
    std::vector<uint8_t> payload(RawPayloadBytes(e, wire));
    ASSERT_EQ(payload.size(), 2u * 6 * 2 * D * ScalarSize(wire));
    EncodeRawChunk(k.data(), v.data(), ScalarType::kFloat32, H, e, wire, payload.data());
    std::vector<float> k2(T * H * D, -7.0f), v2(T * H * D, -7.0f);
    ASSERT_TRUE(DecodeRawChunk(payload.data(), payload.size(), wire, H, e, k2.data(), v2.data()));
    for (int t = 0; t < T; ++t) {
      for (int h = 0; h < H; ++h) {
        for (int d = 0; d < D; ++d) {
          const int i = (t * H + h) * D + d;
          const bool inside = t >= 3 && t < 9 && h >= 1;
          const float want_k = !inside                        ? -7.0f
                               : wire == ScalarType::kFloat32 ? k[i]
                                                              : Bf16ToFloat(FloatToBf16(k[i]));
          const float want_v = !inside                        ? -7.0f
                               : wire == ScalarType::kFloat32 ? v[i]
                                                              : Bf16ToFloat(FloatToBf16(v[i]));
          ASSERT_EQ(k2[i], want_k) << t << " " << h << " " << d;
          ASSERT_EQ(v2[i], want_v) << t << " " << h << " " << d;
        }
      }
    }
    EXPECT_FALSE(
        DecodeRawChunk(payload.data(), payload.size() - 1, wire, H, e, k2.data(), v2.data()));
  }
}

TEST(RawCodec, Bf16SourcePassesThroughUnchanged) {
  const int T = 2, H = 1, D = 4;
  std::vector<uint16_t> k(T * H * D), v(T * H * D);
  for (int i = 0; i < T * H * D; ++i) {
    k[i] = static_cast<uint16_t>(0x3f80 + i);
    v[i] = static_cast<uint16_t>(0xbf80 + i);
  }
  KvChunkExtent e{0, T, 0, H, D};
  std::vector<uint8_t> payload(RawPayloadBytes(e, ScalarType::kBFloat16));
  EncodeRawChunk(k.data(), v.data(), ScalarType::kBFloat16, H, e, ScalarType::kBFloat16,
                 payload.data());
  EXPECT_EQ(0, std::memcmp(payload.data(), k.data(), k.size() * 2));  // little-endian host
  EXPECT_EQ(0, std::memcmp(payload.data() + k.size() * 2, v.data(), v.size() * 2));
}

}  // namespace
}  // namespace sparsefill::kernels
