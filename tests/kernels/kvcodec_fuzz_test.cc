// A brief deterministic fuzz of every KV decoder (CI runs it in the normal test build): valid
// payloads mutated at random (bit flips, byte overwrites, truncation, extension, insertion,
// header fields) must decode to an error (DataLoss) or to valid output, never crash, never write
// outside the chunk's region, never write anything on error, and (quantizing codecs) only give
// finite values. Run under ASan/UBSan locally for more: the test does not depend on the build.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/kvcodec/kv_codec.h"
#include "tests/kernels/kv_test_data.h"

namespace sparsefill::kernels {
namespace {

constexpr int kIterations = 3000;  // per codec; about a second in all on one core
constexpr float kGuard = -777.0f;

std::string Mutate(const std::string& valid, std::mt19937& rng) {
  std::string p = valid;
  auto pick = [&rng](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  const int rounds = 1 + static_cast<int>(rng() % 3);
  for (int r = 0; r < rounds; ++r) {
    switch (rng() % 7) {
      case 0:  // flip one bit
        if (!p.empty()) p[pick(p.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // overwrite a byte
        if (!p.empty()) p[pick(p.size())] = static_cast<char>(rng());
        break;
      case 2:  // truncate
        p.resize(pick(p.size() + 1));
        break;
      case 3:  // extend
        p.append(1 + pick(16), static_cast<char>(rng()));
        break;
      case 4:  // insert a byte
        p.insert(pick(p.size() + 1), 1, static_cast<char>(rng()));
        break;
      case 5:  // a header field (codec, version, parameter)
        if (p.size() > 5) p[2 + pick(4)] = static_cast<char>(rng());
        break;
      case 6:  // a run of 0xff (NaN codes, huge scales)
        if (p.size() > 8) {
          const size_t at = 8 + pick(p.size() - 8);
          for (size_t i = at; i < std::min(p.size(), at + 4); ++i) p[i] = static_cast<char>(0xff);
        }
        break;
    }
  }
  return p;
}

class DecoderFuzz : public ::testing::TestWithParam<KvCodecId> {};

TEST_P(DecoderFuzz, MutatedPayloadsFailCleanlyOrDecode) {
  const KvCodecId codec = GetParam();
  const testing::RandomKv kv = testing::MakeOutlierKv(40, 3, 16, 99);
  const KvLayerView view{kv.k.data(), kv.v.data(), ScalarType::kFloat32, kv.kv_heads, kv.tokens};
  const KvChunkExtent e{5, 37, 1, 3, 16};
  KvEncodeOptions options;
  options.int4_group_tokens = 8;
  std::string valid;
  ASSERT_TRUE(EncodeKvChunk(codec, view, e, options, &valid).ok());

  const bool finite_outputs =
      codec == KvCodecId::kFp8E4m3 || codec == KvCodecId::kInt8 || codec == KvCodecId::kInt4;
  std::mt19937 rng(1234 + static_cast<uint32_t>(codec));
  std::vector<float> k(kv.k.size()), v(kv.v.size());
  int ok = 0, errors = 0;
  for (int it = 0; it < kIterations; ++it) {
    const std::string p = Mutate(valid, rng);
    std::fill(k.begin(), k.end(), kGuard);
    std::fill(v.begin(), v.end(), kGuard);
    const absl::Status s = DecodeKvChunk(codec, p, kv.kv_heads, e, k.data(), v.data());
    for (int64_t t = 0; t < kv.tokens; ++t) {
      for (int h = 0; h < kv.kv_heads; ++h) {
        const bool inside = s.ok() && t >= e.token_begin && t < e.token_end && h >= e.head_begin;
        for (int d = 0; d < kv.head_dim; ++d) {
          const size_t i = (static_cast<size_t>(t) * kv.kv_heads + h) * kv.head_dim + d;
          if (!inside) {
            ASSERT_EQ(k[i], kGuard)
                << "iteration " << it << ": wrote K outside (or on error " << s << ")";
            ASSERT_EQ(v[i], kGuard)
                << "iteration " << it << ": wrote V outside (or on error " << s << ")";
          } else if (finite_outputs) {
            ASSERT_TRUE(std::isfinite(k[i]) && std::isfinite(v[i])) << "iteration " << it;
          }
        }
      }
    }
    if (s.ok()) {
      ++ok;
    } else {
      ++errors;
      ASSERT_EQ(s.code(), absl::StatusCode::kDataLoss) << "iteration " << it << ": " << s;
      ASSERT_FALSE(s.message().empty());
    }
  }
  // Both outcomes occur: mutations inside codes decode, structural ones are refused.
  EXPECT_GT(errors, kIterations / 4) << KvCodecName(codec);
  RecordProperty("decoded_ok", ok);
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, DecoderFuzz,
                         ::testing::Values(KvCodecId::kRawBf16, KvCodecId::kRawFp32,
                                           KvCodecId::kLossless, KvCodecId::kFp8E4m3,
                                           KvCodecId::kInt8, KvCodecId::kInt4),
                         [](const auto& info) { return std::string(KvCodecName(info.param)); });

}  // namespace
}  // namespace sparsefill::kernels
