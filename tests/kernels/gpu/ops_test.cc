// The CUDA per-token ops (kernels/ops/cuda/ops.h) against their CPU references, run on a GPU box;
// each GPU test skips with a message where there is no GPU.
//
// Inputs are fresh random bf16 values (never zeros); the references compute in float32 on exactly
// those values. Outputs are poisoned with 0xff bytes first (bf16 NaN), and followed by poisoned
// guard elements that must survive: an element not written, or written past the end, fails.
// Tolerance, as FlashAttention's tests set it: relative error (L2) within 2x the error of
// rounding the reference output to bf16, plus a tiny atol; and no element more than one bf16
// step (2^-7 |ref|) plus atol away. Ops that are a single rounding of an exact float32 result
// (gathers, adds, conversions) must match bit for bit, and fused ops their unfused composition.
// The last test prints achieved bandwidth at rows = 32768, hidden = 4096 (no assertion).
#include "kernels/ops/cuda/ops.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "kernels/ops/cuda/philox.cuh"
#include "kernels/ops/embedding_ref.h"
#include "kernels/ops/numeric.h"
#include "kernels/ops/residual_ref.h"
#include "kernels/ops/rmsnorm_ref.h"
#include "kernels/ops/rope_ref.h"
#include "kernels/ops/swiglu_ref.h"
#include "tests/kernels/gpu/gpu_test_util.h"
#include "tests/kernels/test_util.h"

namespace sparsefill::kernels {
namespace {

using bf16 = __nv_bfloat16;
using testing::DeviceBuffer;
using testing::RandomVector;
using testing::RelativeError;
using testing::RoundToBf16;

// Poisoned elements after every output, which no kernel may touch.
constexpr size_t kGuard = 40;
// 0xffff: a bf16 NaN, so an unwritten element fails the finite check.
constexpr uint16_t kPoisonBits = 0xffff;
// Absolute slack for float32 rounding differences (order of operations, FMA contraction, the
// last ulp of expf/cosf), far below a bf16 step at the magnitudes used here (~0.01 to 10).
constexpr double kAtol = 1e-5;

// A different seed for every draw, the same sequence on every run.
uint32_t NextSeed() {
  static uint32_t seed = 20240611;
  return seed++;
}

// Normal values rounded to bf16.
std::vector<float> RandomBf16(size_t n, float scale = 1.0f) {
  return RoundToBf16(RandomVector(n, NextSeed(), scale));
}

uint16_t Bits(bf16 v) {
  const __nv_bfloat16_raw raw = v;
  return raw.x;
}

bf16 FromBits(uint16_t bits) {
  __nv_bfloat16_raw raw;
  raw.x = bits;
  return bf16(raw);
}

// A bf16 device array of n elements followed by kGuard poisoned guard elements.
class Bf16Buffer {
 public:
  explicit Bf16Buffer(size_t n) : n_(n), buf_(n + kGuard) {}

  bf16* get() const { return buf_.get(); }
  size_t size() const { return n_; }

  // Every element, the guard included, to kPoisonBits.
  cudaError_t Poison() { return buf_.Fill(0xff); }
  // values (bf16-representable) into [0, n), the poison into the guard.
  cudaError_t Upload(const std::vector<float>& values) {
    std::vector<bf16> host = testing::ToBf16(values);
    host.resize(n_ + kGuard, FromBits(kPoisonBits));
    return buf_.Upload(host);
  }
  std::vector<float> Download() const {
    std::vector<bf16> all = buf_.Download();
    all.resize(n_);
    return testing::ToFloat(all);
  }
  std::vector<uint16_t> DownloadBits() const {
    const std::vector<bf16> all = buf_.Download();
    std::vector<uint16_t> bits(n_);
    for (size_t i = 0; i < n_; ++i) bits[i] = Bits(all[i]);
    return bits;
  }
  bool GuardIntact() const {
    const std::vector<bf16> all = buf_.Download();
    for (size_t i = n_; i < all.size(); ++i) {
      if (Bits(all[i]) != kPoisonBits) return false;
    }
    return true;
  }

 private:
  size_t n_;
  DeviceBuffer<bf16> buf_;
};

// Waits for the device and fails the test with the error of any asynchronous failure.
#define SF_SYNC() SF_CUDA_ASSERT(cudaDeviceSynchronize())

// The tolerance rule of this file (see the top).
void ExpectCloseToReference(const std::vector<float>& got, const std::vector<float>& ref) {
  ASSERT_EQ(got.size(), ref.size());
  size_t not_finite = 0, far = 0, first_far = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ++not_finite;
      continue;
    }
    const double diff = std::fabs(static_cast<double>(got[i]) - ref[i]);
    if (diff > std::ldexp(std::fabs(static_cast<double>(ref[i])), -7) + kAtol) {
      if (far++ == 0) first_far = i;
    }
  }
  ASSERT_EQ(not_finite, 0u) << "unwritten (poison) or non-finite outputs";
  EXPECT_EQ(far, 0u) << "elements more than one bf16 step off; first at " << first_far << ": got "
                     << got[first_far] << ", reference " << ref[first_far];
  const double rounding_error = RelativeError(RoundToBf16(ref), ref);
  const double error = RelativeError(got, ref);
  EXPECT_LE(error, 2 * rounding_error + kAtol)
      << "relative error " << error << " against bf16 rounding of the reference " << rounding_error;
}

// got == the bf16 values of want, bit for bit (want is bf16-representable).
void ExpectSameBits(const std::vector<uint16_t>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  size_t differ = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != FloatToBf16(want[i])) {
      if (differ++ == 0) first = i;
    }
  }
  EXPECT_EQ(differ, 0u) << "first difference at " << first << ": got bits 0x" << std::hex
                        << got[first] << ", want 0x" << FloatToBf16(want[first]);
}

void ExpectSameBits(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want) {
  ASSERT_EQ(got.size(), want.size());
  size_t differ = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      if (differ++ == 0) first = i;
    }
  }
  EXPECT_EQ(differ, 0u) << "first difference at " << first << ": 0x" << std::hex << got[first]
                        << " vs 0x" << want[first];
}

// Widths: 64 and 4096 and 5120 (llama shapes), 100 and 40 (not multiples of 8 or of a warp's
// vectors: scalar or partial paths).
const int64_t kHiddens[] = {64, 100, 4096, 5120};
const int64_t kRows[] = {1, 3, 1000};

// ---------------------------------------------------------------------------------------------
// Embedding

TEST(CudaOps, EmbeddingLookupIsAnExactGather) {
  SF_SKIP_WITHOUT_GPU();
  constexpr int64_t kVocab = 512;
  for (const int64_t hidden : kHiddens) {
    const std::vector<float> table = RandomBf16(kVocab * hidden);
    Bf16Buffer d_table(table.size());
    SF_CUDA_ASSERT(d_table.Upload(table));
    for (const int64_t tokens : kRows) {
      SCOPED_TRACE("hidden " + std::to_string(hidden) + ", tokens " + std::to_string(tokens));
      std::vector<int32_t> ids(tokens);
      std::mt19937 rng(NextSeed());
      for (auto& id : ids) id = static_cast<int32_t>(rng() % kVocab);
      ids[0] = kVocab - 1;  // the last row of the table
      if (tokens > 1) ids[1] = 0;
      DeviceBuffer<int32_t> d_ids(tokens);
      SF_CUDA_ASSERT(d_ids.Upload(ids));
      Bf16Buffer out(tokens * hidden);
      SF_CUDA_ASSERT(out.Poison());
      SF_CUDA_ASSERT(
          cuda::EmbeddingLookup(d_table.get(), hidden, d_ids.get(), tokens, out.get(), nullptr));
      SF_SYNC();
      std::vector<float> want(tokens * hidden);
      EmbeddingRef(table.data(), ids.data(), tokens, hidden, want.data());
      ExpectSameBits(out.DownloadBits(), want);
      EXPECT_TRUE(out.GuardIntact());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

struct NormShape {
  int64_t rows, hidden;
};

std::vector<NormShape> NormShapes() {
  std::vector<NormShape> shapes;
  for (const int64_t rows : kRows) {
    for (const int64_t hidden : kHiddens) shapes.push_back({rows, hidden});
  }
  // 40: 5 vectors, one partial warp. 16384: the widest register path (8 vectors x 256
  // threads). 16392 and 20000: past it, the two-pass path.
  for (const int64_t hidden : {40, 16384, 16392, 20000}) shapes.push_back({3, hidden});
  shapes.push_back({257, 16384});
  return shapes;
}

// Llama-like norm weights: around 1, never 0.
std::vector<float> NormWeight(int64_t hidden) {
  std::vector<float> w = RandomVector(hidden, NextSeed(), 0.2f);
  for (float& v : w) v += 1.0f;
  return RoundToBf16(w);
}

constexpr float kEps = 1e-5f;

TEST(CudaOps, RmsNormMatchesReference) {
  SF_SKIP_WITHOUT_GPU();
  for (const NormShape& s : NormShapes()) {
    SCOPED_TRACE("rows " + std::to_string(s.rows) + ", hidden " + std::to_string(s.hidden));
    const size_t n = s.rows * s.hidden;
    const std::vector<float> x = RandomBf16(n, 2.0f);
    const std::vector<float> w = NormWeight(s.hidden);
    Bf16Buffer d_x(n), d_w(s.hidden), out(n);
    SF_CUDA_ASSERT(d_x.Upload(x));
    SF_CUDA_ASSERT(d_w.Upload(w));
    SF_CUDA_ASSERT(out.Poison());
    SF_CUDA_ASSERT(cuda::RmsNorm(d_x.get(), d_w.get(), s.rows, s.hidden, kEps, out.get(), nullptr));
    SF_SYNC();
    std::vector<float> ref(n);
    RmsNormRef(x.data(), w.data(), s.rows, s.hidden, kEps, ref.data());
    ExpectCloseToReference(out.Download(), ref);
    EXPECT_TRUE(out.GuardIntact());
    EXPECT_TRUE(d_x.GuardIntact());

    // In place (out = x): the same bits.
    SF_CUDA_ASSERT(cuda::RmsNorm(d_x.get(), d_w.get(), s.rows, s.hidden, kEps, d_x.get(), nullptr));
    SF_SYNC();
    ExpectSameBits(d_x.DownloadBits(), out.DownloadBits());
  }
}

TEST(CudaOps, RmsNormOfARowDoesNotDependOnTheOtherRows) {
  SF_SKIP_WITHOUT_GPU();
  // Chunking a prompt must not change results: row 7 of a 1000-row launch equals a launch of
  // that row alone (different grid, different rows sharing its block).
  for (const int64_t hidden : {64, 4096}) {
    const int64_t rows = 1000;
    const std::vector<float> x = RandomBf16(rows * hidden);
    const std::vector<float> w = NormWeight(hidden);
    Bf16Buffer d_x(rows * hidden), d_w(hidden), all(rows * hidden), one(hidden);
    SF_CUDA_ASSERT(d_x.Upload(x));
    SF_CUDA_ASSERT(d_w.Upload(w));
    SF_CUDA_ASSERT(cuda::RmsNorm(d_x.get(), d_w.get(), rows, hidden, kEps, all.get(), nullptr));
    SF_CUDA_ASSERT(
        cuda::RmsNorm(d_x.get() + 7 * hidden, d_w.get(), 1, hidden, kEps, one.get(), nullptr));
    SF_SYNC();
    const std::vector<uint16_t> all_bits = all.DownloadBits();
    ExpectSameBits(one.DownloadBits(), std::vector<uint16_t>(all_bits.begin() + 7 * hidden,
                                                             all_bits.begin() + 8 * hidden));
  }
}

TEST(CudaOps, AddRmsNormEqualsAddInPlaceThenRmsNorm) {
  SF_SKIP_WITHOUT_GPU();
  for (const NormShape& s : NormShapes()) {
    SCOPED_TRACE("rows " + std::to_string(s.rows) + ", hidden " + std::to_string(s.hidden));
    const size_t n = s.rows * s.hidden;
    const std::vector<float> residual = RandomBf16(n, 2.0f);
    const std::vector<float> x = RandomBf16(n, 0.5f);
    const std::vector<float> w = NormWeight(s.hidden);
    Bf16Buffer d_x(n), d_w(s.hidden), res_fused(n), out_fused(n), res_split(n), out_split(n);
    SF_CUDA_ASSERT(d_x.Upload(x));
    SF_CUDA_ASSERT(d_w.Upload(w));
    SF_CUDA_ASSERT(res_fused.Upload(residual));
    SF_CUDA_ASSERT(res_split.Upload(residual));
    SF_CUDA_ASSERT(out_fused.Poison());
    SF_CUDA_ASSERT(out_split.Poison());
    SF_CUDA_ASSERT(cuda::AddRmsNorm(res_fused.get(), d_x.get(), d_w.get(), s.rows, s.hidden, kEps,
                                    out_fused.get(), nullptr));
    SF_CUDA_ASSERT(cuda::AddInPlace(res_split.get(), d_x.get(), n, nullptr));
    SF_CUDA_ASSERT(cuda::RmsNorm(res_split.get(), d_w.get(), s.rows, s.hidden, kEps,
                                 out_split.get(), nullptr));
    SF_SYNC();

    // The residual: one float32 add, one rounding; the fused output: the unfused one's bits.
    std::vector<float> sum = residual;
    AddInPlaceRef(sum.data(), x.data(), n);
    sum = RoundToBf16(sum);
    ExpectSameBits(res_fused.DownloadBits(), sum);
    ExpectSameBits(out_fused.DownloadBits(), out_split.DownloadBits());
    // And against the float32 reference of the norm of the rounded residual.
    std::vector<float> ref(n);
    RmsNormRef(sum.data(), w.data(), s.rows, s.hidden, kEps, ref.data());
    ExpectCloseToReference(out_fused.Download(), ref);
    EXPECT_TRUE(out_fused.GuardIntact());
    EXPECT_TRUE(res_fused.GuardIntact());

    // out = x (the attention output normalised in its own buffer): the same bits.
    SF_CUDA_ASSERT(res_fused.Upload(residual));
    SF_CUDA_ASSERT(cuda::AddRmsNorm(res_fused.get(), d_x.get(), d_w.get(), s.rows, s.hidden, kEps,
                                    d_x.get(), nullptr));
    SF_SYNC();
    ExpectSameBits(d_x.DownloadBits(), out_fused.DownloadBits());
    ExpectSameBits(res_fused.DownloadBits(), sum);
  }
}

// ---------------------------------------------------------------------------------------------
// RoPE

RopeSpec DefaultRope() { return RopeSpec{}; }

RopeSpec Llama3Rope() {
  RopeSpec spec;
  spec.type = RopeSpec::Type::kLlama3;
  spec.theta = 500000.0f;
  spec.factor = 8.0f;
  spec.low_freq_factor = 1.0f;
  spec.high_freq_factor = 4.0f;
  spec.original_max_position_embeddings = 8192;
  return spec;
}

struct RopeCase {
  const char* spec_name;
  RopeSpec spec;
  int q_heads, kv_heads, head_dim;
  int64_t rows, first_position;
  int64_t pad = 0;  // extra elements per row after V (an odd pad forces the scalar path)
};

std::string Describe(const RopeCase& c) {
  return std::string(c.spec_name) + " q_heads " + std::to_string(c.q_heads) + " kv_heads " +
         std::to_string(c.kv_heads) + " head_dim " + std::to_string(c.head_dim) + " rows " +
         std::to_string(c.rows) + " first_position " + std::to_string(c.first_position) + " pad " +
         std::to_string(c.pad);
}

// Rotates heads [head0, head0 + heads) of every row of a [rows, row_stride] buffer with the
// reference, through a contiguous copy.
void RopeRefStrided(std::vector<float>& buf, int64_t rows, int64_t row_stride, int head0, int heads,
                    int head_dim, const std::vector<float>& inv_freq, int64_t first_position) {
  const int64_t width = static_cast<int64_t>(heads) * head_dim;
  std::vector<float> dense(rows * width);
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(buf.begin() + r * row_stride + head0 * head_dim, width, dense.begin() + r * width);
  }
  ApplyRopeRef(dense.data(), rows, heads, head_dim, inv_freq.data(), first_position);
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(dense.begin() + r * width, width, buf.begin() + r * row_stride + head0 * head_dim);
  }
}

void CheckRope(const RopeCase& c) {
  SCOPED_TRACE(Describe(c));
  const int q_width = c.q_heads * c.head_dim, kv_width = c.kv_heads * c.head_dim;
  const int64_t stride = q_width + 2 * kv_width + c.pad;  // fused [Q | K | V | pad] rows
  const size_t n = c.rows * stride;
  const std::vector<float> qkv = RandomBf16(n, 1.5f);
  const std::vector<float> inv_freq = RopeInverseFrequencies(c.spec, c.head_dim);
  DeviceBuffer<float> d_inv_freq(inv_freq.size());
  SF_CUDA_ASSERT(d_inv_freq.Upload(inv_freq));

  // Q and K with one call each.
  Bf16Buffer d_qkv(n);
  SF_CUDA_ASSERT(d_qkv.Upload(qkv));
  SF_CUDA_ASSERT(cuda::ApplyRope(d_qkv.get(), c.rows, c.q_heads, c.head_dim, stride,
                                 d_inv_freq.get(), c.first_position, nullptr));
  SF_CUDA_ASSERT(cuda::ApplyRope(d_qkv.get() + q_width, c.rows, c.kv_heads, c.head_dim, stride,
                                 d_inv_freq.get(), c.first_position, nullptr));
  SF_SYNC();
  std::vector<float> ref = qkv;
  RopeRefStrided(ref, c.rows, stride, 0, c.q_heads, c.head_dim, inv_freq, c.first_position);
  RopeRefStrided(ref, c.rows, stride, c.q_heads, c.kv_heads, c.head_dim, inv_freq,
                 c.first_position);
  const std::vector<float> got = d_qkv.Download();
  const std::vector<uint16_t> got_bits = d_qkv.DownloadBits();
  // Q and K close to the reference; V and the pad untouched, bit for bit.
  std::vector<float> got_qk, ref_qk;
  std::vector<uint16_t> got_rest;
  std::vector<float> want_rest;
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t i = 0; i < stride; ++i) {
      const size_t k = r * stride + i;
      if (i < q_width + kv_width) {
        got_qk.push_back(got[k]);
        ref_qk.push_back(ref[k]);
      } else {
        got_rest.push_back(got_bits[k]);
        want_rest.push_back(qkv[k]);
      }
    }
  }
  ExpectCloseToReference(got_qk, ref_qk);
  ExpectSameBits(got_rest, want_rest);
  EXPECT_TRUE(d_qkv.GuardIntact());

  // Q and K adjacent: one call over q_heads + kv_heads heads gives the same bits.
  Bf16Buffer d_one(n);
  SF_CUDA_ASSERT(d_one.Upload(qkv));
  SF_CUDA_ASSERT(cuda::ApplyRope(d_one.get(), c.rows, c.q_heads + c.kv_heads, c.head_dim, stride,
                                 d_inv_freq.get(), c.first_position, nullptr));
  SF_SYNC();
  ExpectSameBits(d_one.DownloadBits(), got_bits);
}

TEST(CudaOps, ApplyRopeMatchesReference) {
  SF_SKIP_WITHOUT_GPU();
  const int64_t positions[] = {0, 1000000, (int64_t{1} << 22) + 12345};
  for (const auto& [name, spec] :
       {std::pair{"default", DefaultRope()}, std::pair{"llama3", Llama3Rope()}}) {
    for (const int head_dim : {64, 128}) {
      for (const int64_t rows : kRows) {
        for (const int64_t position : positions) {
          CheckRope({name, spec, 8, 2, head_dim, rows, position});
        }
      }
    }
    // llama3-8b's heads at a large position.
    CheckRope({name, spec, 32, 8, 128, 100, 1000000});
    // Scalar path: an odd row stride; and head sizes with half not a multiple of 8.
    CheckRope({name, spec, 8, 2, 128, 37, 1000000, 1});
    CheckRope({name, spec, 4, 2, 36, 37, 3000, 0});
    // head_dim 96: half = 48, still 16-byte chunks.
    CheckRope({name, spec, 4, 2, 96, 37, 70000, 0});
  }
}

TEST(CudaOps, ApplyRopeAnglesAreExactAtMillionsOfPositions) {
  SF_SKIP_WITHOUT_GPU();
  // One head, x = (1, 0) in every pair: the output is (cos, sin) of the angle itself, compared
  // with the float32 angle's cos/sin in double precision; __cosf/__sinf would be far off here.
  const int head_dim = 128, half = head_dim / 2;
  const int64_t rows = 16, first_position = int64_t{1} << 23;
  const std::vector<float> inv_freq = RopeInverseFrequencies(Llama3Rope(), head_dim);
  DeviceBuffer<float> d_inv_freq(inv_freq.size());
  SF_CUDA_ASSERT(d_inv_freq.Upload(inv_freq));
  std::vector<float> x(rows * head_dim, 0.0f);
  for (int64_t r = 0; r < rows; ++r) std::fill_n(x.begin() + r * head_dim, half, 1.0f);
  Bf16Buffer d_x(x.size());
  SF_CUDA_ASSERT(d_x.Upload(x));
  SF_CUDA_ASSERT(cuda::ApplyRope(d_x.get(), rows, 1, head_dim, head_dim, d_inv_freq.get(),
                                 first_position, nullptr));
  SF_SYNC();
  const std::vector<float> got = d_x.Download();
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float position = static_cast<float>(first_position + r);
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(position * inv_freq[i]);
      worst = std::max(worst, std::fabs(got[r * head_dim + i] - std::cos(angle)));
      worst = std::max(worst, std::fabs(got[r * head_dim + half + i] - std::sin(angle)));
    }
  }
  EXPECT_LE(worst, 1.0 / 256 + 1e-6) << "cos/sin of large angles off by more than a bf16 step";
}

// ---------------------------------------------------------------------------------------------
// SwiGLU

TEST(CudaOps, SwiGluMatchesReference) {
  SF_SKIP_WITHOUT_GPU();
  // 4096 * 1000 + 5: a vector body and a scalar tail. offset 1: unaligned, all scalar.
  for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{1000}, int64_t{4096 * 1000 + 5}}) {
    for (const int64_t offset : {0, 1}) {
      SCOPED_TRACE("n " + std::to_string(n) + ", offset " + std::to_string(offset));
      const std::vector<float> gate = RandomBf16(n, 3.0f), up = RandomBf16(n);
      Bf16Buffer d_gate(n + offset), d_up(n + offset), out(n + offset);
      std::vector<float> padded(offset, 1.0f);
      padded.insert(padded.end(), gate.begin(), gate.end());
      SF_CUDA_ASSERT(d_gate.Upload(padded));
      padded.resize(offset);
      padded.insert(padded.end(), up.begin(), up.end());
      SF_CUDA_ASSERT(d_up.Upload(padded));
      SF_CUDA_ASSERT(out.Poison());
      SF_CUDA_ASSERT(
          cuda::SwiGlu(d_gate.get() + offset, d_up.get() + offset, n, out.get() + offset, nullptr));
      SF_SYNC();
      std::vector<float> ref(n);
      SwiGluRef(gate.data(), up.data(), n, ref.data());
      std::vector<float> got = out.Download();
      const std::vector<uint16_t> got_bits = out.DownloadBits();
      for (int64_t i = 0; i < offset; ++i) EXPECT_EQ(got_bits[i], kPoisonBits);
      got.erase(got.begin(), got.begin() + offset);
      ExpectCloseToReference(got, ref);
      EXPECT_TRUE(out.GuardIntact());

      // out = gate, in place: the same bits (after the untouched padding of 1.0).
      SF_CUDA_ASSERT(cuda::SwiGlu(d_gate.get() + offset, d_up.get() + offset, n,
                                  d_gate.get() + offset, nullptr));
      SF_SYNC();
      std::vector<uint16_t> want = got_bits;
      for (int64_t i = 0; i < offset; ++i) want[i] = FloatToBf16(1.0f);
      ExpectSameBits(d_gate.DownloadBits(), want);
    }
  }
}

TEST(CudaOps, SwiGluFusedEqualsSwiGluOnTheHalves) {
  SF_SKIP_WITHOUT_GPU();
  for (const int64_t rows : kRows) {
    for (const int64_t inter : kHiddens) {
      SCOPED_TRACE("rows " + std::to_string(rows) + ", inter " + std::to_string(inter));
      const std::vector<float> gate_up = RandomBf16(rows * 2 * inter, 3.0f);
      std::vector<float> gate(rows * inter), up(rows * inter);
      for (int64_t r = 0; r < rows; ++r) {
        std::copy_n(gate_up.begin() + r * 2 * inter, inter, gate.begin() + r * inter);
        std::copy_n(gate_up.begin() + r * 2 * inter + inter, inter, up.begin() + r * inter);
      }
      Bf16Buffer d_gate_up(gate_up.size()), d_gate(gate.size()), d_up(up.size());
      Bf16Buffer fused(rows * inter), split(rows * inter);
      SF_CUDA_ASSERT(d_gate_up.Upload(gate_up));
      SF_CUDA_ASSERT(d_gate.Upload(gate));
      SF_CUDA_ASSERT(d_up.Upload(up));
      SF_CUDA_ASSERT(fused.Poison());
      SF_CUDA_ASSERT(split.Poison());
      SF_CUDA_ASSERT(cuda::SwiGluFused(d_gate_up.get(), rows, inter, fused.get(), nullptr));
      SF_CUDA_ASSERT(cuda::SwiGlu(d_gate.get(), d_up.get(), rows * inter, split.get(), nullptr));
      SF_SYNC();
      ExpectSameBits(fused.DownloadBits(), split.DownloadBits());
      std::vector<float> ref(rows * inter);
      SwiGluRef(gate.data(), up.data(), rows * inter, ref.data());
      ExpectCloseToReference(fused.Download(), ref);
      EXPECT_TRUE(fused.GuardIntact());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Residual add and conversions

TEST(CudaOps, AddInPlaceIsOneRoundedFloatAdd) {
  SF_SKIP_WITHOUT_GPU();
  for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{1000}, int64_t{4096 * 1000 + 5}}) {
    for (const int64_t offset : {0, 1}) {
      SCOPED_TRACE("n " + std::to_string(n) + ", offset " + std::to_string(offset));
      const std::vector<float> acc = RandomBf16(n + offset, 2.0f), x = RandomBf16(n + offset);
      Bf16Buffer d_acc(n + offset), d_x(n + offset);
      SF_CUDA_ASSERT(d_acc.Upload(acc));
      SF_CUDA_ASSERT(d_x.Upload(x));
      SF_CUDA_ASSERT(cuda::AddInPlace(d_acc.get() + offset, d_x.get() + offset, n, nullptr));
      SF_SYNC();
      std::vector<float> want = acc;
      AddInPlaceRef(want.data() + offset, x.data() + offset, n);
      ExpectSameBits(d_acc.DownloadBits(), RoundToBf16(want));
      EXPECT_TRUE(d_acc.GuardIntact());
    }
  }
}

// Qwen2's q/k/v biases: every row gets the bias row, one rounded float add per element; widths
// that take the 16-byte vector path (multiples of 8) and ones that do not.
TEST(CudaOps, AddRowBiasIsOneRoundedFloatAddPerRow) {
  SF_SKIP_WITHOUT_GPU();
  for (const int64_t rows : {int64_t{1}, int64_t{7}, int64_t{70000}}) {
    for (const int64_t cols : {int64_t{3}, int64_t{64}, int64_t{896}, int64_t{1000}}) {
      if (rows * cols > 8'000'000) continue;
      SCOPED_TRACE("rows " + std::to_string(rows) + ", cols " + std::to_string(cols));
      const std::vector<float> x = RandomBf16(rows * cols, 2.0f), bias = RandomBf16(cols);
      Bf16Buffer d_x(rows * cols), d_bias(cols);
      SF_CUDA_ASSERT(d_x.Upload(x));
      SF_CUDA_ASSERT(d_bias.Upload(bias));
      SF_CUDA_ASSERT(cuda::AddRowBias(d_x.get(), d_bias.get(), rows, cols, nullptr));
      SF_SYNC();
      std::vector<float> want = x;
      for (int64_t r = 0; r < rows; ++r) AddInPlaceRef(want.data() + r * cols, bias.data(), cols);
      ExpectSameBits(d_x.DownloadBits(), RoundToBf16(want));
      EXPECT_TRUE(d_x.GuardIntact());
    }
  }
}

TEST(CudaOps, ConvertFloatToBf16RoundsLikeTheHost) {
  SF_SKIP_WITHOUT_GPU();
  // Random magnitudes over the whole exponent range, ties, specials, subnormals; an odd length
  // (vector body + tail) and an unaligned start.
  std::vector<float> in = RandomVector(1000003, NextSeed(), 1.0f);
  std::mt19937 rng(NextSeed());
  for (float& v : in) v = std::ldexp(v, static_cast<int>(rng() % 200) - 100);
  const float specials[] = {0.0f,    -0.0f,          INFINITY,       -INFINITY,
                            NAN,     3.4e38f,        -3.4e38f,       1e-40f,
                            -1e-45f, 1.0f + 0x1p-8f, 1.0f + 0x3p-8f, 1.0f + 0x1p-8f + 0x1p-20f};
  std::copy(std::begin(specials), std::end(specials), in.begin() + 5);
  for (const int64_t offset : {0, 1}) {
    SCOPED_TRACE("offset " + std::to_string(offset));
    const int64_t n = static_cast<int64_t>(in.size()) - offset;
    DeviceBuffer<float> d_in(in.size());
    SF_CUDA_ASSERT(d_in.Upload(in));
    Bf16Buffer out(in.size());
    SF_CUDA_ASSERT(out.Poison());
    SF_CUDA_ASSERT(cuda::ConvertFloatToBf16(d_in.get() + offset, n, out.get() + offset, nullptr));
    SF_SYNC();
    const std::vector<uint16_t> got = out.DownloadBits();
    size_t differ = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float v = in[i + offset];
      const uint16_t g = got[i + offset];
      const bool ok = std::isnan(v) ? std::isnan(Bf16ToFloat(g)) : g == FloatToBf16(v);
      if (!ok && differ++ < 5)
        ADD_FAILURE() << "element " << i << ": " << v << " -> 0x" << std::hex << g;
    }
    EXPECT_EQ(differ, 0u);
    EXPECT_TRUE(out.GuardIntact());
  }
}

TEST(CudaOps, ConvertHalfAndBf16AreExactOverEveryBitPattern) {
  SF_SKIP_WITHOUT_GPU();
  constexpr int64_t kPatterns = 1 << 16;
  std::vector<uint16_t> patterns(kPatterns);
  for (int64_t i = 0; i < kPatterns; ++i) patterns[i] = static_cast<uint16_t>(i);

  // float16 -> bf16: the one rounding of the exact float value.
  DeviceBuffer<uint16_t> d_half(kPatterns);
  SF_CUDA_ASSERT(d_half.Upload(patterns));
  Bf16Buffer from_half(kPatterns);
  SF_CUDA_ASSERT(from_half.Poison());
  SF_CUDA_ASSERT(cuda::ConvertHalfToBf16(reinterpret_cast<const __half*>(d_half.get()), kPatterns,
                                         from_half.get(), nullptr));
  // bf16 -> float: exact.
  DeviceBuffer<bf16> d_bf16(kPatterns);
  std::vector<bf16> bf16_patterns(kPatterns);
  for (int64_t i = 0; i < kPatterns; ++i) bf16_patterns[i] = FromBits(patterns[i]);
  SF_CUDA_ASSERT(d_bf16.Upload(bf16_patterns));
  DeviceBuffer<float> to_float(kPatterns);
  SF_CUDA_ASSERT(to_float.Fill(0xff));
  SF_CUDA_ASSERT(cuda::ConvertBf16ToFloat(d_bf16.get(), kPatterns, to_float.get(), nullptr));
  SF_SYNC();

  const std::vector<uint16_t> got_bf16 = from_half.DownloadBits();
  const std::vector<float> got_float = to_float.Download();
  size_t differ = 0;
  for (int64_t i = 0; i < kPatterns; ++i) {
    const float h = Fp16ToFloat(patterns[i]);
    const bool ok_half =
        std::isnan(h) ? std::isnan(Bf16ToFloat(got_bf16[i])) : got_bf16[i] == FloatToBf16(h);
    const float b = Bf16ToFloat(patterns[i]);
    const bool ok_float =
        std::isnan(b) ? std::isnan(got_float[i]) : FloatToBits(got_float[i]) == FloatToBits(b);
    if ((!ok_half || !ok_float) && differ++ < 5) {
      ADD_FAILURE() << "pattern 0x" << std::hex << patterns[i] << ": half->bf16 0x" << got_bf16[i]
                    << ", bf16->float " << got_float[i];
    }
  }
  EXPECT_EQ(differ, 0u);
  EXPECT_TRUE(from_half.GuardIntact());
}

// ---------------------------------------------------------------------------------------------
// Random fill

TEST(CudaOps, PhiloxMatchesRandom123KnownAnswers) {
  // Host only (no GPU needed): the generator header is the same code on both sides. The three
  // philox4x32 10 lines of Random123's tests/kat_vectors: counter, key, expected.
  struct Kat {
    uint32_t ctr[4], key[2], want[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) {
    const cuda::ops_detail::Philox4x32 got = cuda::ops_detail::Philox4x32_10(
        {{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}}, k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got.v[i], k.want[i]) << "word " << i;
  }
}

TEST(CudaOps, FillRandomNormalIsSeededAndNormal) {
  SF_SKIP_WITHOUT_GPU();
  constexpr int64_t n = (1 << 20) + 3;
  constexpr uint64_t kSeed = 0x5eed0000000001ull;
  constexpr float kMean = 0.25f, kStd = 0.5f;
  Bf16Buffer a(n), b(n), other_seed(n), high_seed(n), prefix(1001), unaligned(1000);
  for (Bf16Buffer* buf : {&a, &b, &other_seed, &high_seed, &prefix, &unaligned}) {
    SF_CUDA_ASSERT(buf->Poison());
  }
  SF_CUDA_ASSERT(cuda::FillRandomNormalBf16(a.get(), n, kSeed, kMean, kStd, nullptr));
  SF_CUDA_ASSERT(cuda::FillRandomNormalBf16(b.get(), n, kSeed, kMean, kStd, nullptr));
  SF_CUDA_ASSERT(cuda::FillRandomNormalBf16(other_seed.get(), n, kSeed + 1, kMean, kStd, nullptr));
  SF_CUDA_ASSERT(
      cuda::FillRandomNormalBf16(high_seed.get(), n, kSeed ^ (1ull << 40), kMean, kStd, nullptr));
  // Other launch shapes: a short fill (one block), and an unaligned start (scalar path only).
  SF_CUDA_ASSERT(cuda::FillRandomNormalBf16(prefix.get(), 1001, kSeed, kMean, kStd, nullptr));
  SF_CUDA_ASSERT(cuda::FillRandomNormalBf16(unaligned.get() + 1, 999, kSeed, kMean, kStd, nullptr));
  SF_SYNC();

  const std::vector<uint16_t> bits = a.DownloadBits();
  ExpectSameBits(b.DownloadBits(), bits);
  ExpectSameBits(prefix.DownloadBits(), std::vector<uint16_t>(bits.begin(), bits.begin() + 1001));
  const std::vector<uint16_t> unaligned_bits = unaligned.DownloadBits();
  EXPECT_EQ(unaligned_bits[0], kPoisonBits);
  ExpectSameBits(std::vector<uint16_t>(unaligned_bits.begin() + 1, unaligned_bits.end()),
                 std::vector<uint16_t>(bits.begin(), bits.begin() + 999));
  for (Bf16Buffer* buf : {&a, &prefix, &unaligned}) EXPECT_TRUE(buf->GuardIntact());

  // Different seeds (low or only high key word): different numbers (two independent bf16
  // normals coincide well under 1% of the time).
  for (const Bf16Buffer* other : {&other_seed, &high_seed}) {
    const std::vector<uint16_t> o = other->DownloadBits();
    int64_t same = 0;
    for (int64_t i = 0; i < n; ++i) same += o[i] == bits[i];
    EXPECT_LT(same, n / 100);
  }

  // Moments of 1M samples: mean within 5 standard errors, std within 1%, the share within one
  // sigma (0.6827) and the kurtosis (3) of a normal.
  const std::vector<float> v = a.Download();
  ASSERT_TRUE(testing::AllFinite(v));
  double sum = 0, sum_sq = 0, sum_4 = 0;
  int64_t within = 0;
  for (const float x : v) sum += x;
  const double mean = sum / n;
  for (const float x : v) {
    const double d = x - mean;
    sum_sq += d * d;
    sum_4 += d * d * d * d;
    within += std::fabs(x - kMean) < kStd;
  }
  const double var = sum_sq / n;
  EXPECT_NEAR(mean, kMean, 5 * kStd / std::sqrt(static_cast<double>(n)));
  EXPECT_NEAR(std::sqrt(var), kStd, 0.01 * kStd);
  EXPECT_NEAR(static_cast<double>(within) / n, 0.6827, 0.005);
  EXPECT_NEAR(sum_4 / n / (var * var), 3.0, 0.05);

  // The documented formula, recomputed on the host for the first elements: within a bf16 step
  // (the host's log/cos round differently from the device's).
  for (int64_t q = 0; q < 64; ++q) {
    const cuda::ops_detail::Philox4x32 w = cuda::ops_detail::PhiloxBlock(kSeed, q);
    for (int pair = 0; pair < 2; ++pair) {
      const double u1 = ((w.v[2 * pair] >> 8) + 1.0) * 0x1p-24;
      const double u2 = (w.v[2 * pair + 1] >> 8) * 0x1p-24;
      const double radius = std::sqrt(-2.0 * std::log(u1));
      const double z[2] = {radius * std::cos(2 * std::numbers::pi * u2),
                           radius * std::sin(2 * std::numbers::pi * u2)};
      for (int j = 0; j < 2; ++j) {
        const double want = kMean + kStd * z[j];
        EXPECT_NEAR(v[4 * q + 2 * pair + j], want, std::ldexp(std::fabs(want), -7) + 1e-6)
            << "element " << 4 * q + 2 * pair + j;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Argument checks (host only: every call here is rejected or empty, so nothing launches)

TEST(CudaOps, InvalidArgumentsAreRejectedBeforeAnyLaunch) {
  // Fake device addresses: never dereferenced, as every call below fails validation or is empty.
  bf16* p = reinterpret_cast<bf16*>(uintptr_t{1} << 40);
  bf16* q = p + (1 << 24);
  bf16* r = q + (1 << 24);
  const float* f = reinterpret_cast<const float*>(r + (1 << 24));
  const int32_t* ids = reinterpret_cast<const int32_t*>(f + (1 << 24));
  constexpr cudaError_t kInvalid = cudaErrorInvalidValue;

  EXPECT_EQ(cuda::EmbeddingLookup(p, 64, ids, -1, q, nullptr), kInvalid);
  EXPECT_EQ(cuda::EmbeddingLookup(p, 0, ids, 4, q, nullptr), kInvalid);
  EXPECT_EQ(cuda::EmbeddingLookup(nullptr, 64, ids, 4, q, nullptr), kInvalid);
  EXPECT_EQ(cuda::EmbeddingLookup(p, 64, nullptr, 4, q, nullptr), kInvalid);
  EXPECT_EQ(cuda::EmbeddingLookup(p, 64, ids, 0, q, nullptr), cudaSuccess);

  EXPECT_EQ(cuda::RmsNorm(p, q, -1, 64, kEps, r, nullptr), kInvalid);
  EXPECT_EQ(cuda::RmsNorm(p, q, 4, 0, kEps, r, nullptr), kInvalid);
  EXPECT_EQ(cuda::RmsNorm(p, q, 4, 64, -1.0f, r, nullptr), kInvalid);
  EXPECT_EQ(cuda::RmsNorm(p, q, 4, 64, NAN, r, nullptr), kInvalid);
  EXPECT_EQ(cuda::RmsNorm(p, nullptr, 4, 64, kEps, r, nullptr), kInvalid);
  EXPECT_EQ(cuda::RmsNorm(p, q, 4, 64, kEps, p + 8, nullptr), kInvalid);  // partial overlap
  EXPECT_EQ(cuda::RmsNorm(p, q, 0, 64, kEps, r, nullptr), cudaSuccess);

  EXPECT_EQ(cuda::AddRmsNorm(p, q, r, 4, 64, kEps, p, nullptr), kInvalid);  // out = residual
  EXPECT_EQ(cuda::AddRmsNorm(p, p, r, 4, 64, kEps, q, nullptr), kInvalid);  // x = residual
  EXPECT_EQ(cuda::AddRmsNorm(nullptr, q, r, 4, 64, kEps, q, nullptr), kInvalid);
  EXPECT_EQ(cuda::AddRmsNorm(p, q, r, 0, 64, kEps, q, nullptr), cudaSuccess);

  EXPECT_EQ(cuda::ApplyRope(p, 4, 8, 63, 8 * 63, f, 0, nullptr), kInvalid);  // odd head_dim
  EXPECT_EQ(cuda::ApplyRope(p, 4, 8, 1024, 8 * 1024, f, 0, nullptr), kInvalid);
  EXPECT_EQ(cuda::ApplyRope(p, 4, 0, 128, 128, f, 0, nullptr), kInvalid);
  EXPECT_EQ(cuda::ApplyRope(p, 4, 8, 128, 8 * 128 - 1, f, 0, nullptr), kInvalid);
  EXPECT_EQ(cuda::ApplyRope(p, 4, 8, 128, 8 * 128, f, -1, nullptr), kInvalid);
  EXPECT_EQ(cuda::ApplyRope(p, 4, 8, 128, 8 * 128, f, INT64_MAX - 2, nullptr), kInvalid);
  EXPECT_EQ(cuda::ApplyRope(p, 4, 8, 128, 8 * 128, nullptr, 0, nullptr), kInvalid);
  EXPECT_EQ(cuda::ApplyRope(p, -1, 8, 128, 8 * 128, f, 0, nullptr), kInvalid);
  EXPECT_EQ(cuda::ApplyRope(p, 0, 8, 128, 8 * 128, f, 0, nullptr), cudaSuccess);

  EXPECT_EQ(cuda::SwiGlu(p, q, -1, r, nullptr), kInvalid);
  EXPECT_EQ(cuda::SwiGlu(p, q, 64, p + 1, nullptr), kInvalid);  // shifted overlap
  EXPECT_EQ(cuda::SwiGlu(p, nullptr, 64, r, nullptr), kInvalid);
  EXPECT_EQ(cuda::SwiGlu(p, q, 0, r, nullptr), cudaSuccess);
  EXPECT_EQ(cuda::SwiGluFused(p, 4, 64, p + 64, nullptr), kInvalid);  // out inside gate_up
  EXPECT_EQ(cuda::SwiGluFused(p, 4, 0, r, nullptr), kInvalid);
  EXPECT_EQ(cuda::SwiGluFused(p, 0, 64, r, nullptr), cudaSuccess);

  EXPECT_EQ(cuda::AddInPlace(p, p + 1, 64, nullptr), kInvalid);
  EXPECT_EQ(cuda::AddInPlace(p, q, -1, nullptr), kInvalid);
  EXPECT_EQ(cuda::AddInPlace(p, q, 0, nullptr), cudaSuccess);
  EXPECT_EQ(cuda::AddRowBias(p, p + 3, 2, 8, nullptr), kInvalid);  // bias inside x
  EXPECT_EQ(cuda::AddRowBias(p, q, -1, 8, nullptr), kInvalid);
  EXPECT_EQ(cuda::AddRowBias(nullptr, q, 2, 8, nullptr), kInvalid);
  EXPECT_EQ(cuda::AddRowBias(p, q, 0, 8, nullptr), cudaSuccess);

  EXPECT_EQ(
      cuda::ConvertFloatToBf16(f, 64, reinterpret_cast<bf16*>(const_cast<float*>(f)), nullptr),
      kInvalid);  // in place
  EXPECT_EQ(cuda::ConvertBf16ToFloat(p, -1, nullptr, nullptr), kInvalid);
  EXPECT_EQ(cuda::ConvertHalfToBf16(nullptr, 4, p, nullptr), kInvalid);
  EXPECT_EQ(cuda::ConvertFloatToBf16(f, 0, p, nullptr), cudaSuccess);

  EXPECT_EQ(cuda::FillRandomNormalBf16(p, 64, 1, 0.0f, -1.0f, nullptr), kInvalid);
  EXPECT_EQ(cuda::FillRandomNormalBf16(p, 64, 1, NAN, 1.0f, nullptr), kInvalid);
  EXPECT_EQ(cuda::FillRandomNormalBf16(nullptr, 64, 1, 0.0f, 1.0f, nullptr), kInvalid);
  EXPECT_EQ(cuda::FillRandomNormalBf16(p, 0, 1, 0.0f, 1.0f, nullptr), cudaSuccess);
}

// ---------------------------------------------------------------------------------------------
// Bandwidth printout (no assertion on speed): rows = 32768, hidden = 4096, llama3-8b's heads.

TEST(CudaOpsPerf, BandwidthAt32kRowsOf4096) {
  SF_SKIP_WITHOUT_GPU();
  constexpr int64_t kTokens = 32768, kHidden = 4096, kHeadDim = 128, kQHeads = 32, kKvHeads = 8;
  constexpr int64_t n = kTokens * kHidden;
  constexpr int64_t kQkvStride = (kQHeads + 2 * kKvHeads) * kHeadDim;
  constexpr int64_t kVocab = 32768;
  constexpr int kWarmup = 3, kReps = 20;
  constexpr double kBf16 = 2.0;

  cudaStream_t stream;
  SF_CUDA_ASSERT(cudaStreamCreate(&stream));
  DeviceBuffer<bf16> x(n), y(n), residual(n), out(n), weight(kHidden), qkv(kTokens * kQkvStride),
      gate_up(2 * n), table(kVocab * kHidden);
  DeviceBuffer<float> x_float(n), inv_freq(kHeadDim / 2);
  DeviceBuffer<int32_t> ids(kTokens);
  // Random (never zero) inputs, generated on the device.
  uint64_t seed = 1;
  for (auto* buf : {&x, &y, &residual, &qkv, &gate_up, &table}) {
    SF_CUDA_ASSERT(
        cuda::FillRandomNormalBf16(buf->get(), buf->count(), seed++, 0.0f, 1.0f, stream));
  }
  SF_CUDA_ASSERT(cuda::FillRandomNormalBf16(weight.get(), kHidden, seed++, 1.0f, 0.1f, stream));
  SF_CUDA_ASSERT(cuda::FillRandomNormalBf16(out.get(), n, seed++, 0.0f, 1.0f, stream));
  SF_CUDA_ASSERT(cuda::ConvertBf16ToFloat(out.get(), n, x_float.get(), stream));
  SF_CUDA_ASSERT(inv_freq.Upload(RopeInverseFrequencies(Llama3Rope(), kHeadDim)));
  std::vector<int32_t> host_ids(kTokens);
  std::mt19937 rng(NextSeed());
  for (auto& id : host_ids) id = static_cast<int32_t>(rng() % kVocab);
  SF_CUDA_ASSERT(ids.Upload(host_ids));
  SF_CUDA_ASSERT(cudaStreamSynchronize(stream));

  struct Row {
    std::string name;
    double bytes;
    std::function<cudaError_t()> run;
  };
  const double plane = kBf16 * n;  // one [32768, 4096] bf16 tensor: 256 MiB
  const std::vector<Row> rows = {
      {"copy (cudaMemcpyAsync D2D)", 2 * plane,
       [&] {
         return cudaMemcpyAsync(out.get(), x.get(), n * sizeof(bf16), cudaMemcpyDeviceToDevice,
                                stream);
       }},
      {"EmbeddingLookup", 2 * plane,
       [&] {
         return cuda::EmbeddingLookup(table.get(), kHidden, ids.get(), kTokens, out.get(), stream);
       }},
      {"RmsNorm", 2 * plane,
       [&] {
         return cuda::RmsNorm(x.get(), weight.get(), kTokens, kHidden, kEps, out.get(), stream);
       }},
      {"AddRmsNorm", 4 * plane,
       [&] {
         return cuda::AddRmsNorm(residual.get(), y.get(), weight.get(), kTokens, kHidden, kEps,
                                 out.get(), stream);
       }},
      {"AddInPlace", 3 * plane,
       [&] { return cuda::AddInPlace(residual.get(), y.get(), n, stream); }},
      {"ApplyRope Q (32 heads, stride 6144)", 2 * plane,
       [&] {
         return cuda::ApplyRope(qkv.get(), kTokens, kQHeads, kHeadDim, kQkvStride, inv_freq.get(),
                                1000000, stream);
       }},
      {"ApplyRope K (8 heads, stride 6144)", 2 * plane / 4,
       [&] {
         return cuda::ApplyRope(qkv.get() + kQHeads * kHeadDim, kTokens, kKvHeads, kHeadDim,
                                kQkvStride, inv_freq.get(), 1000000, stream);
       }},
      {"ApplyRope Q+K (40 heads, one call)", 2 * plane * 5 / 4,
       [&] {
         return cuda::ApplyRope(qkv.get(), kTokens, kQHeads + kKvHeads, kHeadDim, kQkvStride,
                                inv_freq.get(), 1000000, stream);
       }},
      {"SwiGlu (gate, up: inter 4096)", 3 * plane,
       [&] { return cuda::SwiGlu(x.get(), y.get(), n, out.get(), stream); }},
      {"SwiGluFused ([32768, 8192] -> inter 4096)", 3 * plane,
       [&] { return cuda::SwiGluFused(gate_up.get(), kTokens, kHidden, out.get(), stream); }},
      {"ConvertFloatToBf16", 3 * plane,
       [&] { return cuda::ConvertFloatToBf16(x_float.get(), n, out.get(), stream); }},
      {"FillRandomNormalBf16", plane,
       [&] { return cuda::FillRandomNormalBf16(out.get(), n, 7, 0.0f, 0.02f, stream); }},
  };

  cudaEvent_t start, stop;
  SF_CUDA_ASSERT(cudaEventCreate(&start));
  SF_CUDA_ASSERT(cudaEventCreate(&stop));
  cudaDeviceProp prop;
  SF_CUDA_ASSERT(cudaGetDeviceProperties(&prop, 0));
  std::printf("\n%s, rows %lld x hidden %lld (bf16), median of %d runs after %d warm-up runs\n",
              prop.name, static_cast<long long>(kTokens), static_cast<long long>(kHidden), kReps,
              kWarmup);
  std::printf("%-44s %10s %10s %9s %8s\n", "op", "MB", "us", "GB/s", "of copy");
  double copy_gbs = 0;
  for (const Row& row : rows) {
    for (int i = 0; i < kWarmup; ++i) SF_CUDA_ASSERT(row.run());
    std::vector<float> ms(kReps);
    for (int i = 0; i < kReps; ++i) {
      SF_CUDA_ASSERT(cudaEventRecord(start, stream));
      SF_CUDA_ASSERT(row.run());
      SF_CUDA_ASSERT(cudaEventRecord(stop, stream));
      SF_CUDA_ASSERT(cudaEventSynchronize(stop));
      SF_CUDA_ASSERT(cudaEventElapsedTime(&ms[i], start, stop));
    }
    std::sort(ms.begin(), ms.end());
    const double median_s = ms[kReps / 2] * 1e-3;
    const double gbs = row.bytes / median_s * 1e-9;
    if (copy_gbs == 0) copy_gbs = gbs;
    std::printf("%-44s %10.1f %10.1f %9.0f %7.0f%%\n", row.name.c_str(), row.bytes * 1e-6,
                median_s * 1e6, gbs, 100 * gbs / copy_gbs);
  }
  SF_CUDA_ASSERT(cudaStreamSynchronize(stream));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace sparsefill::kernels
