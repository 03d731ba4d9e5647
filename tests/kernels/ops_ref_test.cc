// CPU reference ops against straightforward double-precision formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "kernels/ops/embedding_ref.h"
#include "kernels/ops/linear_ref.h"
#include "kernels/ops/numeric.h"
#include "kernels/ops/rmsnorm_ref.h"
#include "kernels/ops/rope_ref.h"
#include "kernels/ops/swiglu_ref.h"
#include "tests/kernels/test_util.h"

namespace sparsefill::kernels {
namespace {

using testing::RandomVector;
using testing::RelativeError;

TEST(LinearRef, MatchesDoubleGemmOnOddShapes) {
  for (auto [rows, in, out] : {std::tuple{1, 1, 1}, {7, 13, 5}, {33, 130, 67}, {5, 257, 3}}) {
    const auto x = RandomVector(rows * in, 1 + rows);
    const auto w = RandomVector(out * in, 2 + out);
    std::vector<float> y(rows * out);
    LinearRef(x.data(), w.data(), rows, in, out, y.data());
    std::vector<float> ref(rows * out);
    for (int r = 0; r < rows; ++r) {
      for (int o = 0; o < out; ++o) {
        double s = 0;
        for (int i = 0; i < in; ++i) s += static_cast<double>(x[r * in + i]) * w[o * in + i];
        ref[r * out + o] = static_cast<float>(s);
      }
    }
    EXPECT_LT(RelativeError(y, ref), 1e-6) << rows << "x" << in << "x" << out;
  }
}

TEST(LinearRef, RowChunkingIsBitIdentical) {
  // The forward pass runs linear layers in token chunks: any split must give the same bits.
  const int rows = 37, in = 71, out = 29;
  const auto x = RandomVector(rows * in, 3);
  const auto w = RandomVector(out * in, 4);
  std::vector<float> whole(rows * out), pieces(rows * out);
  LinearRef(x.data(), w.data(), rows, in, out, whole.data());
  for (int b = 0; b < rows; b += 5) {
    const int e = std::min(rows, b + 5);
    LinearRef(x.data() + b * in, w.data(), e - b, in, out, pieces.data() + b * out);
  }
  EXPECT_EQ(0, std::memcmp(whole.data(), pieces.data(), whole.size() * sizeof(float)));
}

TEST(RmsNormRef, MatchesFormula) {
  const int rows = 5, hidden = 97;
  const auto x = RandomVector(rows * hidden, 5, 3.0f);
  const auto w = RandomVector(hidden, 6);
  std::vector<float> out(rows * hidden);
  RmsNormRef(x.data(), w.data(), rows, hidden, 1e-5f, out.data());
  for (int r = 0; r < rows; ++r) {
    double ms = 0;
    for (int i = 0; i < hidden; ++i)
      ms += static_cast<double>(x[r * hidden + i]) * x[r * hidden + i];
    const double inv = 1.0 / std::sqrt(ms / hidden + 1e-5);
    for (int i = 0; i < hidden; ++i) {
      EXPECT_NEAR(out[r * hidden + i], w[i] * x[r * hidden + i] * inv, 1e-5);
    }
  }
}

TEST(SwiGluRef, MatchesFormulaAndAliases) {
  auto gate = RandomVector(1001, 7, 4.0f);
  const auto up = RandomVector(1001, 8);
  std::vector<float> expected(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    expected[i] =
        static_cast<float>(gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))) * up[i]);
  }
  SwiGluRef(gate.data(), up.data(), static_cast<int64_t>(gate.size()), gate.data());  // in place
  EXPECT_LT(RelativeError(gate, expected), 1e-6);
}

TEST(EmbeddingRef, GathersRows) {
  const auto table = RandomVector(10 * 4, 9);
  const int32_t ids[] = {3, 0, 9, 3};
  std::vector<float> out(4 * 4);
  EmbeddingRef(table.data(), ids, 4, 4, out.data());
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[t * 4 + i], table[ids[t] * 4 + i]);
  }
}

TEST(RopeRef, DefaultFrequenciesMatchFormula) {
  RopeSpec spec;
  spec.theta = 10000.0f;
  const auto f = RopeInverseFrequencies(spec, 64);
  ASSERT_EQ(f.size(), 32u);
  for (int i = 0; i < 32; ++i)
    EXPECT_NEAR(f[i], std::pow(10000.0, -2.0 * i / 64), 1e-7 * std::max(1.0, 1.0 / f[i]));
}

TEST(RopeRef, Llama3ScalingKeepsHighSlowsLowInterpolatesMiddle) {
  RopeSpec spec;
  spec.type = RopeSpec::Type::kLlama3;
  spec.theta = 500000.0f;
  spec.factor = 8.0f;
  spec.low_freq_factor = 1.0f;
  spec.high_freq_factor = 4.0f;
  spec.original_max_position_embeddings = 8192;
  RopeSpec plain = spec;
  plain.type = RopeSpec::Type::kDefault;
  const auto scaled = RopeInverseFrequencies(spec, 128);
  const auto base = RopeInverseFrequencies(plain, 128);
  int high = 0, low = 0, mid = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    const double wavelen = 2 * std::numbers::pi / base[i];
    if (wavelen < 8192.0 / 4) {
      EXPECT_EQ(scaled[i], base[i]) << i;
      ++high;
    } else if (wavelen > 8192.0) {
      EXPECT_NEAR(scaled[i], base[i] / 8.0, 1e-12 + 1e-6 * base[i]) << i;
      ++low;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      EXPECT_NEAR(scaled[i], (1 - smooth) * base[i] / 8 + smooth * base[i], 1e-6 * base[i]) << i;
      ++mid;
    }
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);
}

TEST(RopeRef, RotationPreservesNormsAndDependsOnRelativePosition) {
  RopeSpec spec;
  const int D = 32, heads = 2;
  const auto inv = RopeInverseFrequencies(spec, D);
  const auto q0 = RandomVector(heads * D, 10), k0 = RandomVector(heads * D, 11);
  auto rotated_dot = [&](int64_t pq, int64_t pk) {
    auto q = q0, k = k0;
    ApplyRopeRef(q.data(), 1, heads, D, inv.data(), pq);
    ApplyRopeRef(k.data(), 1, heads, D, inv.data(), pk);
    double dot = 0, nq = 0, nq0 = 0;
    for (int i = 0; i < D; ++i) {
      dot += q[i] * k[i];
      nq += q[i] * q[i];
      nq0 += q0[i] * q0[i];
    }
    EXPECT_NEAR(nq, nq0, 1e-4 * nq0);
    return dot;
  };
  EXPECT_NEAR(rotated_dot(5, 2), rotated_dot(105, 102), 1e-3);
  EXPECT_NEAR(rotated_dot(0, 0), rotated_dot(77, 77), 1e-3);
  // Position 0 is the identity.
  auto q = q0;
  ApplyRopeRef(q.data(), 1, heads, D, inv.data(), 0);
  EXPECT_EQ(q, q0);
}

TEST(Numeric, Bf16RoundsToNearestEvenAndKeepsNaN) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even (down to 1.0).
  EXPECT_EQ(FloatToBf16(1.0f + 0x1.0p-8f), 0x3f80);
  // 1 + 3 * 2^-8 is halfway too: rounds up to the even neighbour.
  EXPECT_EQ(FloatToBf16(1.0f + 3 * 0x1.0p-8f), 0x3f82);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(-2.5f)), -2.5f);
}

TEST(Numeric, Fp16ConvertsExactly) {
  EXPECT_EQ(Fp16ToFloat(0x3c00), 1.0f);
  EXPECT_EQ(Fp16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(Fp16ToFloat(0x0001), 0x1.0p-24f);  // smallest subnormal
  EXPECT_EQ(Fp16ToFloat(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(Fp16ToFloat(0x7c00)));
  EXPECT_TRUE(std::isnan(Fp16ToFloat(0x7e00)));
}

}  // namespace
}  // namespace sparsefill::kernels
