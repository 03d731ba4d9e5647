// The CUDA attention kernels against the CPU references (run on a GPU box; each test skips with
// a message where there is no GPU). Inputs are fresh random bf16 values; the reference computes
// in float32 on exactly those values. Tolerance as FlashAttention's tests set it: the kernel's
// error stays within 2x the error of a naive bf16 computation (probabilities and output rounded
// to bf16) plus a small absolute term.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/attention/attention_ref.h"
#include "kernels/attention/block_sparse_ref.h"
#include "kernels/attention/cuda/attention.h"
#include "kernels/attention/cuda/dense_sm90.h"
#include "kernels/attention/cuda/index_builder.h"
#include "kernels/attention/head_key_set.h"
#include "kernels/ops/numeric.h"
#include "kernels/attention/sparse_index.h"
#include "kernels/attention/vertical_slash_ref.h"
#include "tests/kernels/gpu/gpu_test_util.h"
#include "tests/kernels/test_util.h"

namespace sparsefill::kernels {
namespace {

using testing::DeviceBuffer;
using testing::RandomVector;
using testing::RelativeError;
using testing::RoundToBf16;

struct Problem {
  AttentionShape shape;
  std::vector<float> q, k, v;  // bf16-representable values
};

Problem MakeProblem(int64_t tokens, int q_heads, int kv_heads, int head_dim, uint32_t seed,
                    int64_t window = 0) {
  Problem p;
  p.shape = AttentionShape{tokens, q_heads, kv_heads, head_dim, window};
  p.q = RoundToBf16(RandomVector(tokens * q_heads * head_dim, seed, 1.5f));
  p.k = RoundToBf16(RandomVector(tokens * kv_heads * head_dim, seed + 1, 1.5f));
  p.v = RoundToBf16(RandomVector(tokens * kv_heads * head_dim, seed + 2));
  return p;
}

// Dense attention under `allowed`, with the probabilities rounded to bf16 before P V and the
// output rounded to bf16: the error scale of a straightforward bf16 implementation.
std::vector<float> NaiveBf16Attention(const Problem& p,
                                      const std::function<bool(int, int64_t, int64_t)>& allowed) {
  const auto& s = p.shape;
  std::vector<float> out(s.tokens * s.q_heads * s.head_dim, 0.0f);
  std::vector<float> prob;
  for (int h = 0; h < s.q_heads; ++h) {
    const int g = s.kv_head_of(h);
    for (int64_t t = 0; t < s.tokens; ++t) {
      prob.assign(t + 1, 0.0f);
      float mx = -INFINITY;
      for (int64_t j = 0; j <= t; ++j) {
        if (!allowed(h, t, j)) continue;
        float dot = 0;
        for (int d = 0; d < s.head_dim; ++d) {
          dot += p.q[(t * s.q_heads + h) * s.head_dim + d] * p.k[(j * s.kv_heads + g) * s.head_dim + d];
        }
        prob[j] = dot / std::sqrt(static_cast<float>(s.head_dim));
        mx = std::max(mx, prob[j]);
      }
      if (mx == -INFINITY) continue;
      double sum = 0;
      for (int64_t j = 0; j <= t; ++j) {
        prob[j] = allowed(h, t, j) ? std::exp(prob[j] - mx) : 0.0f;
        sum += prob[j];
      }
      float* o = out.data() + (t * s.q_heads + h) * s.head_dim;
      for (int64_t j = 0; j <= t; ++j) {
        if (prob[j] == 0) continue;
        const float pb = Bf16ToFloat(FloatToBf16(static_cast<float>(prob[j] / sum)));
        const float* vr = p.v.data() + (j * s.kv_heads + g) * s.head_dim;
        for (int d = 0; d < s.head_dim; ++d) o[d] += pb * vr[d];
      }
    }
  }
  return RoundToBf16(out);
}

struct GpuRun {
  std::vector<float> out;
  std::vector<unsigned long long> pairs;
  bool all_written = true;
};

// Runs dense (index == nullptr) or sparse attention on the GPU.
GpuRun RunOnGpu(const Problem& p, const HostSparseIndex* index) {
  GpuRun run;
  const auto& s = p.shape;
  DeviceBuffer<__nv_bfloat16> q(p.q.size()), k(p.k.size()), v(p.v.size()), out(p.q.size());
  EXPECT_EQ(q.Upload(testing::ToBf16(p.q)), cudaSuccess);
  EXPECT_EQ(k.Upload(testing::ToBf16(p.k)), cudaSuccess);
  EXPECT_EQ(v.Upload(testing::ToBf16(p.v)), cudaSuccess);
  EXPECT_EQ(out.Fill(0xff), cudaSuccess);  // NaN everywhere: every element must be written
  DeviceBuffer<unsigned long long> pairs(s.q_heads);
  EXPECT_EQ(pairs.Fill(0), cudaSuccess);
  const cuda::AttentionDims dims{s.tokens, s.q_heads, s.kv_heads, s.head_dim, s.sliding_window};
  cudaError_t err;
  if (index == nullptr) {
    err = cuda::DenseAttention(dims, q.get(), k.get(), v.get(), out.get(), nullptr);
  } else {
    DeviceBuffer<HeadDescriptor> heads(index->heads.size());
    DeviceBuffer<int32_t> verticals(index->verticals.size()), blocks(index->key_blocks.size());
    DeviceBuffer<DiagonalBand> bands(index->bands.size());
    EXPECT_EQ(heads.Upload(index->heads), cudaSuccess);
    if (!index->verticals.empty()) {
      EXPECT_EQ(verticals.Upload(index->verticals), cudaSuccess);
    }
    if (!index->key_blocks.empty()) {
      EXPECT_EQ(blocks.Upload(index->key_blocks), cudaSuccess);
    }
    if (!index->bands.empty()) {
      EXPECT_EQ(bands.Upload(index->bands), cudaSuccess);
    }
    const SparseIndexView view{heads.get(), verticals.get(), bands.get(), blocks.get()};
    err = cuda::SparseAttention(dims, view, q.get(), k.get(), v.get(), out.get(), pairs.get(), nullptr);
    EXPECT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    run.pairs = pairs.Download();
  }
  EXPECT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
  const cudaError_t sync = cudaDeviceSynchronize();
  EXPECT_EQ(sync, cudaSuccess) << cudaGetErrorString(sync);
  run.out = testing::ToFloat(out.Download());
  for (float x : run.out) run.all_written = run.all_written && std::isfinite(x);
  return run;
}

// Checks the kernel's output against the float32 reference under `allowed`; returns the
// kernel's relative error and the naive bf16 computation's.
std::pair<double, double> ExpectClose(const Problem& p, const std::vector<float>& got,
                                      const std::function<bool(int, int64_t, int64_t)>& allowed,
                                      const std::string& what) {
  std::vector<float> ref(p.q.size());
  MaskedAttentionRef(p.q.data(), p.k.data(), p.v.data(), p.shape, allowed, ref.data());
  const double err = RelativeError(got, ref);
  const double naive = RelativeError(NaiveBf16Attention(p, allowed), ref);
  EXPECT_LE(err, 2 * naive + 1e-4) << what << ": error " << err << ", naive bf16 error " << naive;
  return {err, naive};
}

struct Case {
  int64_t tokens;
  int q_heads, kv_heads, head_dim;
};

// Odd, prime, tiny and block-edge lengths; head_dim 64 and 128; GQA ratios 1, 4, 8.
const Case kCases[] = {{1, 4, 4, 64},   {2, 8, 1, 128},  {17, 8, 2, 64},  {63, 4, 1, 128},
                       {100, 8, 2, 32}, {1000, 8, 2, 32},
                       {64, 8, 8, 64},  {65, 8, 1, 128}, {127, 4, 4, 128}, {331, 8, 2, 64},
                       {1021, 8, 1, 128}, {2048, 4, 1, 64}};

std::string Name(const Case& c) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "T%lld H%d/%d D%d", static_cast<long long>(c.tokens), c.q_heads,
                c.kv_heads, c.head_dim);
  return buf;
}

TEST(CudaAttention, DenseMatchesReference) {
  SF_SKIP_WITHOUT_GPU();
  for (const Case& c : kCases) {
    const Problem p = MakeProblem(c.tokens, c.q_heads, c.kv_heads, c.head_dim, 10 + c.tokens);
    const GpuRun run = RunOnGpu(p, nullptr);
    EXPECT_TRUE(run.all_written) << Name(c) << ": NaN or unwritten output";
    ExpectClose(p, run.out, [](int, int64_t, int64_t) { return true; }, Name(c));
  }
}

TEST(CudaAttention, DenseSlidingWindow) {
  SF_SKIP_WITHOUT_GPU();
  const Problem p = MakeProblem(300, 4, 2, 64, 3, /*window=*/70);
  const GpuRun run = RunOnGpu(p, nullptr);
  EXPECT_TRUE(run.all_written);
  ExpectClose(p, run.out, [](int, int64_t q, int64_t k) { return q - k < 70; }, "window 70");
}

// The dense wgmma kernel (head_dim 64/128; dense_sm90.h) called directly, at the edges of its
// tiles: 128-row query blocks split into two 64-row consumer halves, 128-key tiles, the TMA's
// zero fill past the prompt; GQA 1, 4 and 8; windows of 1 (the diagonal only), mid-tile, longer
// than a tile and longer than the prompt. The output buffer has 128 poisoned rows past the
// prompt that must stay untouched, and every element inside it must be written (NaN poison).
struct DenseEdgeCase {
  int64_t tokens;
  int q_heads, kv_heads, head_dim;
  int64_t window;
};
const DenseEdgeCase kDenseEdges[] = {
    {1, 8, 8, 128, 0},    {1, 4, 1, 64, 0},     {63, 8, 2, 128, 0},    {64, 4, 4, 64, 0},
    {65, 8, 1, 128, 0},   {127, 8, 8, 64, 0},   {128, 4, 1, 128, 0},   {129, 8, 2, 64, 0},
    {255, 4, 4, 128, 0},  {257, 8, 1, 64, 0},   {1021, 4, 1, 128, 0},  {1021, 8, 8, 64, 0},
    {2048, 8, 1, 128, 0}, {2048, 4, 4, 64, 0},  {257, 4, 4, 128, 1},   {700, 8, 2, 64, 129},
    {1021, 8, 1, 128, 200}, {300, 4, 1, 128, 1000}};

TEST(CudaAttention, DenseWgmmaKernelEdges) {
  SF_SKIP_WITHOUT_GPU();
  for (const DenseEdgeCase& c : kDenseEdges) {
    const Case as_case{c.tokens, c.q_heads, c.kv_heads, c.head_dim};
    const std::string name = Name(as_case) + " window " + std::to_string(c.window);
    const Problem p = MakeProblem(c.tokens, c.q_heads, c.kv_heads, c.head_dim,
                                  700 + c.tokens + c.window, c.window);
    const int64_t row = static_cast<int64_t>(c.q_heads) * c.head_dim;
    const int64_t guard_rows = 128;
    DeviceBuffer<__nv_bfloat16> q(p.q.size()), k(p.k.size()), v(p.v.size()),
        out((c.tokens + guard_rows) * row);
    SF_CUDA_ASSERT(q.Upload(testing::ToBf16(p.q)));
    SF_CUDA_ASSERT(k.Upload(testing::ToBf16(p.k)));
    SF_CUDA_ASSERT(v.Upload(testing::ToBf16(p.v)));
    SF_CUDA_ASSERT(out.Fill(0xff));  // NaN everywhere
    const cuda::AttentionDims dims{c.tokens, c.q_heads, c.kv_heads, c.head_dim, c.window};
    ASSERT_TRUE(cuda::DenseSm90Covers(dims, q.get(), k.get(), v.get(), out.get())) << name;
    SF_CUDA_ASSERT(cuda::DenseAttentionSm90(dims, q.get(), k.get(), v.get(), out.get(), nullptr));
    SF_CUDA_ASSERT(cudaDeviceSynchronize());
    const std::vector<__nv_bfloat16> raw = out.Download();
    std::vector<float> got(p.q.size());
    int64_t unwritten = 0, overwritten_guard = 0;
    for (int64_t i = 0; i < static_cast<int64_t>(raw.size()); ++i) {
      uint16_t bits;
      std::memcpy(&bits, &raw[i], sizeof bits);
      if (i < static_cast<int64_t>(got.size())) {
        got[i] = Bf16ToFloat(bits);
        unwritten += !std::isfinite(got[i]);
      } else {
        overwritten_guard += bits != 0xffff;
      }
    }
    EXPECT_EQ(unwritten, 0) << name << ": NaN or unwritten output";
    EXPECT_EQ(overwritten_guard, 0) << name << ": wrote past the last token";
    const int64_t window = c.window;
    const auto [err, naive] = ExpectClose(
        p, got, [window](int, int64_t qi, int64_t ki) { return window == 0 || qi - ki < window; },
        name);
    std::printf("wgmma dense %-32s rel err %.3e (naive bf16 %.3e)\n", name.c_str(), err, naive);
  }
}

// With q = 0 every visible key gets the same score: the output is the running mean of V over
// the visible keys. Checks O += P V, the row sums and the window bookkeeping apart from
// S = Q K^T (a diagnostic companion of the test above; the inputs are otherwise random).
TEST(CudaAttention, DenseWgmmaKernelUniformScores) {
  SF_SKIP_WITHOUT_GPU();
  for (const DenseEdgeCase& c : {DenseEdgeCase{300, 4, 1, 128, 0}, DenseEdgeCase{300, 4, 2, 64, 0},
                                 DenseEdgeCase{300, 4, 1, 128, 100}}) {
    const Case as_case{c.tokens, c.q_heads, c.kv_heads, c.head_dim};
    const std::string name = Name(as_case) + " window " + std::to_string(c.window) + " q=0";
    Problem p = MakeProblem(c.tokens, c.q_heads, c.kv_heads, c.head_dim, 31 + c.head_dim, c.window);
    std::fill(p.q.begin(), p.q.end(), 0.0f);
    DeviceBuffer<__nv_bfloat16> q(p.q.size()), k(p.k.size()), v(p.v.size()), out(p.q.size());
    SF_CUDA_ASSERT(q.Upload(testing::ToBf16(p.q)));
    SF_CUDA_ASSERT(k.Upload(testing::ToBf16(p.k)));
    SF_CUDA_ASSERT(v.Upload(testing::ToBf16(p.v)));
    SF_CUDA_ASSERT(out.Fill(0xff));
    const cuda::AttentionDims dims{c.tokens, c.q_heads, c.kv_heads, c.head_dim, c.window};
    SF_CUDA_ASSERT(cuda::DenseAttentionSm90(dims, q.get(), k.get(), v.get(), out.get(), nullptr));
    SF_CUDA_ASSERT(cudaDeviceSynchronize());
    const std::vector<float> got = testing::ToFloat(out.Download());
    for (float x : got) ASSERT_TRUE(std::isfinite(x)) << name;
    const int64_t window = c.window;
    const auto [err, naive] = ExpectClose(
        p, got, [window](int, int64_t qi, int64_t ki) { return window == 0 || qi - ki < window; },
        name);
    std::printf("wgmma dense %-32s rel err %.3e (naive bf16 %.3e)\n", name.c_str(), err, naive);
  }
}

// Per-head key sets of every kind, estimated on the CPU from the problem's own q and k.
std::vector<HeadKeySet> MixedSets(const Problem& p, int variant) {
  std::vector<HeadKeySet> sets;
  for (int h = 0; h < p.shape.q_heads; ++h) {
    switch ((h + variant) % 5) {
      case 0:
        sets.push_back(HeadKeySet::Dense());
        break;
      case 1:
        sets.push_back(HeadKeySet::AShape(5, 70));
        break;
      case 2: {
        VerticalSlashParams vs;
        vs.vertical = 40;
        vs.slash = 70;
        vs.forced_slash = 20;  // leaves room for scattered diagonals (several bands)
        sets.push_back(EstimateVerticalSlashRef(p.q.data(), p.k.data(), p.shape, h, vs));
        break;
      }
      case 3: {
        VerticalSlashParams vs;
        vs.vertical = 100;
        vs.slash = 60;
        sets.push_back(EstimateVerticalSlashRef(p.q.data(), p.k.data(), p.shape, h, vs));
        break;
      }
      default: {
        BlockSparseParams bs;
        bs.top_k = 3;
        sets.push_back(EstimateBlockSparseRef(p.q.data(), p.k.data(), p.shape, h, bs));
        break;
      }
    }
  }
  return sets;
}

TEST(CudaAttention, SparsePatternsMatchDenseUnderTheirMask) {
  SF_SKIP_WITHOUT_GPU();
  for (const Case& c : kCases) {
    if (c.tokens > 1100) continue;  // the masked reference is quadratic on the CPU
    for (int variant = 0; variant < 2; ++variant) {
      const Problem p = MakeProblem(c.tokens, c.q_heads, c.kv_heads, c.head_dim, 50 + c.tokens + variant);
      const std::vector<HeadKeySet> sets = MixedSets(p, variant);
      const HostSparseIndex index = BuildHostSparseIndex(sets, c.tokens);
      const GpuRun run = RunOnGpu(p, &index);
      EXPECT_TRUE(run.all_written) << Name(c) << ": NaN or unwritten output";
      ExpectClose(p, run.out, [&](int h, int64_t q, int64_t k) { return sets[h].Contains(q, k); },
                  Name(c) + " variant " + std::to_string(variant));
      ASSERT_EQ(run.pairs.size(), sets.size());
      for (size_t h = 0; h < sets.size(); ++h) {
        EXPECT_EQ(run.pairs[h], static_cast<unsigned long long>(sets[h].CountPairs(c.tokens)))
            << Name(c) << " head " << h << " kind " << static_cast<int>(sets[h].kind);
      }
    }
  }
}

TEST(CudaAttention, SparseWithSlidingWindow) {
  SF_SKIP_WITHOUT_GPU();
  const Problem p = MakeProblem(400, 5, 1, 64, 77, /*window=*/90);
  const std::vector<HeadKeySet> sets = MixedSets(p, 0);
  const HostSparseIndex index = BuildHostSparseIndex(sets, 400);
  const GpuRun run = RunOnGpu(p, &index);
  EXPECT_TRUE(run.all_written);
  ExpectClose(p, run.out,
              [&](int h, int64_t q, int64_t k) { return q - k < 90 && sets[h].Contains(q, k); },
              "window 90");
}

// The whole path on the GPU: estimation and index building, then attention; the index read back
// must describe the pairs the kernel computed (checked against the float reference under it).
TEST(CudaAttention, GpuEstimatedIndexFeedsTheKernel) {
  SF_SKIP_WITHOUT_GPU();
  for (const Case& c : {Case{331, 8, 2, 64}, Case{1021, 8, 1, 128}}) {
    const Problem p = MakeProblem(c.tokens, c.q_heads, c.kv_heads, c.head_dim, 900 + c.tokens);
    std::vector<cuda::HeadPatternSpec> specs;
    for (int h = 0; h < c.q_heads; ++h) {
      switch (h % 4) {
        case 0: specs.push_back({HeadKind::kVerticalSlash, 60, 80}); break;
        case 1: specs.push_back({HeadKind::kBlockSparse, 3, 0}); break;
        case 2: specs.push_back({HeadKind::kAShape, 4, 64}); break;
        default: specs.push_back({HeadKind::kDense, 0, 0}); break;
      }
    }
    const cuda::AttentionDims dims{c.tokens, c.q_heads, c.kv_heads, c.head_dim, 0};
    cuda::SparseIndexPlan plan;
    ASSERT_EQ(cuda::PlanSparseIndex(dims, specs, cuda::VerticalSlashOptions{}, &plan), cudaSuccess);
    DeviceBuffer<uint8_t> workspace(plan.workspace_bytes);
    DeviceBuffer<__nv_bfloat16> q(p.q.size()), k(p.k.size()), v(p.v.size()), out(p.q.size());
    SF_CUDA_ASSERT(q.Upload(testing::ToBf16(p.q)));
    SF_CUDA_ASSERT(k.Upload(testing::ToBf16(p.k)));
    SF_CUDA_ASSERT(v.Upload(testing::ToBf16(p.v)));
    SF_CUDA_ASSERT(out.Fill(0xff));
    SparseIndexView view;
    SF_CUDA_ASSERT(cuda::BuildSparseIndex(plan, q.get(), k.get(), workspace.get(), nullptr, &view));
    SF_CUDA_ASSERT(cuda::SparseAttention(dims, view, q.get(), k.get(), v.get(), out.get(), nullptr, nullptr));
    SF_CUDA_ASSERT(cudaDeviceSynchronize());
    // Read the index back: the view points into the workspace, so rebase it on a host copy.
    const std::vector<uint8_t> host_ws = workspace.Download();
    auto rebase = [&](const void* device_ptr) {
      return host_ws.data() + (static_cast<const uint8_t*>(device_ptr) - workspace.get());
    };
    SparseIndexView host_view;
    host_view.heads = reinterpret_cast<const HeadDescriptor*>(rebase(view.heads));
    host_view.verticals = reinterpret_cast<const int32_t*>(rebase(view.verticals));
    host_view.bands = reinterpret_cast<const DiagonalBand*>(rebase(view.bands));
    host_view.key_blocks = reinterpret_cast<const int32_t*>(rebase(view.key_blocks));
    const auto got = testing::ToFloat(out.Download());
    for (float x : got) ASSERT_TRUE(std::isfinite(x)) << Name(c);
    ExpectClose(p, got,
                [&](int h, int64_t qi, int64_t ki) {
                  return SparseIndexContains(host_view, h, c.tokens, qi, ki);
                },
                Name(c) + " GPU-estimated index");
  }
}

// The wgmma sparse kernel against the mma.sync one on the same index, at a length the CPU
// reference is too slow for: many scattered slashes (several per 64-key window, so diagonal
// tiles carry several bands), verticals inside and outside the bands, block-sparse and A-shape
// heads. Both must compute exactly the same pairs and agree to bf16 rounding.
TEST(CudaAttention, SparseWgmmaMatchesMmaSyncOnScatteredSlashes) {
  SF_SKIP_WITHOUT_GPU();
  const int64_t T = 5003;  // prime: a partial last block
  for (const int D : {64, 128}) {
    const int H = 8, G = 2;
    const Problem p = MakeProblem(T, H, G, D, 4242 + D);
    std::mt19937 rng(99 + D);
    std::vector<HeadKeySet> sets;
    for (int h = 0; h < H; ++h) {
      if (h % 4 == 2) {
        sets.push_back(HeadKeySet::AShape(64, 500 + 37 * h));
        continue;
      }
      if (h % 4 == 3) {
        BlockSparseParams bs;
        bs.top_k = 7;
        sets.push_back(EstimateBlockSparseRef(p.q.data(), p.k.data(), p.shape, h, bs));
        continue;
      }
      HeadKeySet vs;
      vs.kind = HeadKeySet::Kind::kVerticalSlash;
      for (int64_t s = 0; s < 40; ++s) vs.slashes.push_back(s);  // a wide band, then scattered
      for (int64_t s = 40; s < T; s += 1 + rng() % 23) vs.slashes.push_back(s);
      for (int64_t c = 0; c < T; c += 1 + rng() % 29) vs.verticals.push_back(c);
      sets.push_back(vs);
    }
    const HostSparseIndex index = BuildHostSparseIndex(sets, T);
    DeviceBuffer<__nv_bfloat16> q(p.q.size()), k(p.k.size()), v(p.v.size());
    DeviceBuffer<__nv_bfloat16> out_sm90(p.q.size()), out_sm80(p.q.size());
    SF_CUDA_ASSERT(q.Upload(testing::ToBf16(p.q)));
    SF_CUDA_ASSERT(k.Upload(testing::ToBf16(p.k)));
    SF_CUDA_ASSERT(v.Upload(testing::ToBf16(p.v)));
    SF_CUDA_ASSERT(out_sm90.Fill(0xff));
    SF_CUDA_ASSERT(out_sm80.Fill(0xff));
    DeviceBuffer<HeadDescriptor> heads(index.heads.size());
    DeviceBuffer<int32_t> verticals(index.verticals.size()), blocks(index.key_blocks.size());
    DeviceBuffer<DiagonalBand> bands(index.bands.size());
    SF_CUDA_ASSERT(heads.Upload(index.heads));
    SF_CUDA_ASSERT(verticals.Upload(index.verticals));
    SF_CUDA_ASSERT(blocks.Upload(index.key_blocks));
    SF_CUDA_ASSERT(bands.Upload(index.bands));
    const SparseIndexView view{heads.get(), verticals.get(), bands.get(), blocks.get()};
    DeviceBuffer<unsigned long long> pairs_sm90(H), pairs_sm80(H), tiles_sm90(H), tiles_sm80(H);
    SF_CUDA_ASSERT(pairs_sm90.Fill(0));
    SF_CUDA_ASSERT(pairs_sm80.Fill(0));
    SF_CUDA_ASSERT(tiles_sm90.Fill(0));
    SF_CUDA_ASSERT(tiles_sm80.Fill(0));
    const cuda::AttentionDims dims{T, H, G, D, 0};
    SF_CUDA_ASSERT(cuda::SparseAttention(dims, view, q.get(), k.get(), v.get(), out_sm90.get(),
                                         pairs_sm90.get(), nullptr, tiles_sm90.get()));
    SF_CUDA_ASSERT(cuda::SparseAttentionSm80(dims, view, q.get(), k.get(), v.get(),
                                             out_sm80.get(), pairs_sm80.get(), nullptr,
                                             tiles_sm80.get()));
    SF_CUDA_ASSERT(cudaDeviceSynchronize());
    const std::vector<float> a = testing::ToFloat(out_sm90.Download());
    const std::vector<float> b = testing::ToFloat(out_sm80.Download());
    for (float x : a) ASSERT_TRUE(std::isfinite(x)) << "D" << D << ": NaN or unwritten output";
    const double err = RelativeError(a, b);
    std::printf("sparse wgmma vs mma.sync T=%lld D=%d: rel diff %.3e\n", static_cast<long long>(T),
                D, err);
    EXPECT_LE(err, 4e-3) << "D" << D;
    const auto pa = pairs_sm90.Download();
    const auto pb = pairs_sm80.Download();
    const auto ta = tiles_sm90.Download();
    const auto tb = tiles_sm80.Download();
    for (int h = 0; h < H; ++h) {
      EXPECT_EQ(pa[h], static_cast<unsigned long long>(sets[h].CountPairs(T))) << "head " << h;
      EXPECT_EQ(pa[h], pb[h]) << "head " << h;
      // Both kernels walk the same 64 x 64 tiles (key_tiles.cuh): the tile area they report is
      // the same, whole tiles, and covers the pairs computed.
      EXPECT_EQ(ta[h], tb[h]) << "head " << h;
      EXPECT_EQ(ta[h] % (64 * 64), 0u) << "head " << h;
      EXPECT_GE(ta[h], pa[h]) << "head " << h;
    }
  }
}

TEST(CudaAttention, RejectsBadDims) {
  SF_SKIP_WITHOUT_GPU();
  EXPECT_EQ(cuda::CheckAttentionDims({0, 8, 2, 128, 0}), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::CheckAttentionDims({10, 8, 3, 128, 0}), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::CheckAttentionDims({10, 8, 2, 96, 0}), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::CheckAttentionDims({10, 8, 2, 64, 0}), cudaSuccess);
  EXPECT_EQ(cuda::CheckAttentionDims({10, 8, 2, 32, 0}), cudaSuccess);
}

// Not an assertion: a quick dense timing at 32K so the test log shows where the kernels stand
// (DenseAttention: the wgmma kernel at head_dim 128; and the mma.sync kernel it replaced).
TEST(CudaAttention, DenseTimingAt32K) {
  SF_SKIP_WITHOUT_GPU();
  const int64_t T = 32768;
  const int H = 32, G = 8, D = 128;
  DeviceBuffer<__nv_bfloat16> q(T * H * D), k(T * G * D), v(T * G * D), out(T * H * D);
  SF_CUDA_ASSERT(q.Upload(testing::ToBf16(RandomVector(T * H * D, 1))));
  SF_CUDA_ASSERT(k.Upload(testing::ToBf16(RandomVector(T * G * D, 2))));
  SF_CUDA_ASSERT(v.Upload(testing::ToBf16(RandomVector(T * G * D, 3))));
  const cuda::AttentionDims dims{T, H, G, D, 0};
  using Kernel = cudaError_t (*)(const cuda::AttentionDims&, const __nv_bfloat16*,
                                 const __nv_bfloat16*, const __nv_bfloat16*, __nv_bfloat16*,
                                 cudaStream_t);
  const std::pair<const char*, Kernel> kernels[] = {{"DenseAttention", &cuda::DenseAttention},
                                                    {"mma.sync kernel", &cuda::DenseAttentionSm80}};
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (const auto& [label, kernel] : kernels) {
    SF_CUDA_ASSERT(kernel(dims, q.get(), k.get(), v.get(), out.get(), nullptr));
    std::vector<float> ms;
    for (int i = 0; i < 5; ++i) {
      cudaEventRecord(start);
      SF_CUDA_ASSERT(kernel(dims, q.get(), k.get(), v.get(), out.get(), nullptr));
      cudaEventRecord(stop);
      SF_CUDA_ASSERT(cudaEventSynchronize(stop));
      float t = 0;
      cudaEventElapsedTime(&t, start, stop);
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    const double flops = 4.0 * (T * (T + 1) / 2.0) * H * D;
    std::printf("dense attention T=32768 H=32/8 D=128, %s: %.3f ms, %.1f TFLOP/s\n", label, ms[2],
                flops / (ms[2] * 1e-3) / 1e12);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

// Not an assertion either: SparseAttention at 32K with its dense heads on the wgmma kernel
// against every head on the mma.sync mainloop, for an index without dense heads (what the
// extra launch costs: its CTAs exit at once) and with every 4th head dense (what it gains).
TEST(CudaAttention, SparseTimingAt32K) {
  SF_SKIP_WITHOUT_GPU();
  const int64_t T = 32768;
  const int H = 32, G = 8, D = 128;
  DeviceBuffer<__nv_bfloat16> q(T * H * D), k(T * G * D), v(T * G * D), out(T * H * D);
  SF_CUDA_ASSERT(q.Upload(testing::ToBf16(RandomVector(T * H * D, 4))));
  SF_CUDA_ASSERT(k.Upload(testing::ToBf16(RandomVector(T * G * D, 5))));
  SF_CUDA_ASSERT(v.Upload(testing::ToBf16(RandomVector(T * G * D, 6))));
  const cuda::AttentionDims dims{T, H, G, D, 0};
  using Kernel = cudaError_t (*)(const cuda::AttentionDims&, const SparseIndexView&,
                                 const __nv_bfloat16*, const __nv_bfloat16*,
                                 const __nv_bfloat16*, __nv_bfloat16*, unsigned long long*,
                                 cudaStream_t, unsigned long long*);
  const std::pair<const char*, Kernel> kernels[] = {
      {"SparseAttention", &cuda::SparseAttention},
      {"all heads mma.sync", &cuda::SparseAttentionSm80}};
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int dense_every : {0, 4}) {
    std::vector<HeadKeySet> sets;
    for (int h = 0; h < H; ++h) {
      sets.push_back(dense_every > 0 && h % dense_every == 0 ? HeadKeySet::Dense()
                                                             : HeadKeySet::AShape(128, 3968));
    }
    const HostSparseIndex index = BuildHostSparseIndex(sets, T);
    DeviceBuffer<HeadDescriptor> heads(index.heads.size());
    SF_CUDA_ASSERT(heads.Upload(index.heads));
    const SparseIndexView view{heads.get(), nullptr, nullptr, nullptr};
    for (const auto& [label, kernel] : kernels) {
      SF_CUDA_ASSERT(
          kernel(dims, view, q.get(), k.get(), v.get(), out.get(), nullptr, nullptr, nullptr));
      std::vector<float> ms;
      for (int i = 0; i < 5; ++i) {
        cudaEventRecord(start);
        SF_CUDA_ASSERT(
          kernel(dims, view, q.get(), k.get(), v.get(), out.get(), nullptr, nullptr, nullptr));
        cudaEventRecord(stop);
        SF_CUDA_ASSERT(cudaEventSynchronize(stop));
        float t = 0;
        cudaEventElapsedTime(&t, start, stop);
        ms.push_back(t);
      }
      std::sort(ms.begin(), ms.end());
      std::printf("sparse attention T=32768 H=32/8 D=128 A-shape(128, 3968), dense every %d: "
                  "%s %.3f ms\n",
                  dense_every, label, ms[2]);
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

}  // namespace
}  // namespace sparsefill::kernels
