// The CUDA attention kernels against the CPU references (run on a GPU box; each test skips with
// a message where there is no GPU). Inputs are fresh random bf16 values; the reference computes
// in float32 on exactly those values. Tolerance as FlashAttention's tests set it: the kernel's
// error stays within 2x the error of a naive bf16 computation (probabilities and output rounded
// to bf16) plus a small absolute term.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/attention/attention_ref.h"
#include "kernels/attention/block_sparse_ref.h"
#include "kernels/attention/cuda/attention.h"
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

// Checks the kernel's output against the float32 reference under `allowed`.
void ExpectClose(const Problem& p, const std::vector<float>& got,
                 const std::function<bool(int, int64_t, int64_t)>& allowed, const std::string& what) {
  std::vector<float> ref(p.q.size());
  MaskedAttentionRef(p.q.data(), p.k.data(), p.v.data(), p.shape, allowed, ref.data());
  const double err = RelativeError(got, ref);
  const double naive = RelativeError(NaiveBf16Attention(p, allowed), ref);
  EXPECT_LE(err, 2 * naive + 1e-4) << what << ": error " << err << ", naive bf16 error " << naive;
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

TEST(CudaAttention, RejectsBadDims) {
  SF_SKIP_WITHOUT_GPU();
  EXPECT_EQ(cuda::CheckAttentionDims({0, 8, 2, 128, 0}), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::CheckAttentionDims({10, 8, 3, 128, 0}), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::CheckAttentionDims({10, 8, 2, 96, 0}), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::CheckAttentionDims({10, 8, 2, 64, 0}), cudaSuccess);
  EXPECT_EQ(cuda::CheckAttentionDims({10, 8, 2, 32, 0}), cudaSuccess);
}

// Not an assertion: a quick dense timing at 32K so the test log shows where the kernel stands.
TEST(CudaAttention, DenseTimingAt32K) {
  SF_SKIP_WITHOUT_GPU();
  const int64_t T = 32768;
  const int H = 32, G = 8, D = 128;
  DeviceBuffer<__nv_bfloat16> q(T * H * D), k(T * G * D), v(T * G * D), out(T * H * D);
  SF_CUDA_ASSERT(q.Upload(testing::ToBf16(RandomVector(T * H * D, 1))));
  SF_CUDA_ASSERT(k.Upload(testing::ToBf16(RandomVector(T * G * D, 2))));
  SF_CUDA_ASSERT(v.Upload(testing::ToBf16(RandomVector(T * G * D, 3))));
  const cuda::AttentionDims dims{T, H, G, D, 0};
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  SF_CUDA_ASSERT(cuda::DenseAttention(dims, q.get(), k.get(), v.get(), out.get(), nullptr));
  std::vector<float> ms;
  for (int i = 0; i < 5; ++i) {
    cudaEventRecord(start);
    SF_CUDA_ASSERT(cuda::DenseAttention(dims, q.get(), k.get(), v.get(), out.get(), nullptr));
    cudaEventRecord(stop);
    SF_CUDA_ASSERT(cudaEventSynchronize(stop));
    float t = 0;
    cudaEventElapsedTime(&t, start, stop);
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  const double flops = 4.0 * (T * (T + 1) / 2.0) * H * D;
  std::printf("dense attention T=32768 H=32/8 D=128: %.3f ms, %.1f TFLOP/s\n", ms[2],
              flops / (ms[2] * 1e-3) / 1e12);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

}  // namespace
}  // namespace sparsefill::kernels
