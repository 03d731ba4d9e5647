// GPU pattern estimation and index building (cuda/index_builder.h) against the CPU references
// (vertical_slash_ref.h, block_sparse_ref.h) run on the same bf16-rounded inputs.
//
// Agreement rule ("equal except near-ties"). The GPU ranks fp32 scores, the references double
// ones, so items whose scores differ by rounding may swap places at the selection threshold. For
// one selection (a head's verticals, its slashes, or one query block's key blocks) let tau be
// the smallest reference score among the items the reference picked by score (forced items
// aside), and tol = kRelTol * |tau| + kAbsTol * max|score|. Then:
//   - both selections have the expected size, the GPU's is strictly ascending and holds every
//     forced item;
//   - every item the GPU picked and the reference did not has reference score >= tau - tol;
//   - every item the reference picked and the GPU did not has reference score <= tau + tol.
// Planted structure (columns, diagonals, blocks far above the rest) must match exactly.
// Failures print the first offenders with their scores, the threshold and the random seed.
#include "kernels/attention/cuda/index_builder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/attention/attention_shape.h"
#include "kernels/attention/block_sparse_ref.h"
#include "kernels/attention/head_key_set.h"
#include "kernels/attention/vertical_slash_ref.h"
#include "kernels/cpu/parallel_for.h"
#include "tests/kernels/gpu/gpu_test_util.h"

namespace sparsefill::kernels::cuda {
namespace {

using sparsefill::testing::DeviceBuffer;
using sparsefill::testing::RoundToBf16;
using sparsefill::testing::ToBf16;

constexpr double kRelTol = 1e-3;
constexpr double kAbsTol = 1e-6;

// A fresh base seed per process, printed with every failure so a run can be replayed.
uint32_t BaseSeed() {
  static const uint32_t seed = [] {
    const char* env = std::getenv("SPARSEFILL_TEST_SEED");
    return env != nullptr ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10))
                          : static_cast<uint32_t>(std::random_device{}());
  }();
  return seed;
}

HeadPatternSpec Vs(int64_t vertical, int64_t slash) { return {HeadKind::kVerticalSlash, vertical, slash}; }
HeadPatternSpec Bs(int64_t top_k) { return {HeadKind::kBlockSparse, top_k, 0}; }
HeadPatternSpec AShape(int64_t n_init, int64_t n_local) { return {HeadKind::kAShape, n_init, n_local}; }
HeadPatternSpec Dense() { return {HeadKind::kDense, 0, 0}; }

struct Layer {
  AttentionDims dims;
  std::vector<HeadPatternSpec> heads;
  VerticalSlashOptions options;
  std::vector<float> q, k;  // [tokens, heads, head_dim], values exact in bf16

  AttentionShape shape() const {
    return AttentionShape{dims.tokens, dims.q_heads, dims.kv_heads, dims.head_dim};
  }
  std::string Describe() const {
    std::ostringstream s;
    s << "tokens " << dims.tokens << " heads " << dims.q_heads << "/" << dims.kv_heads << " d "
      << dims.head_dim << " seed " << BaseSeed();
    return s.str();
  }
};

Layer MakeLayer(int64_t tokens, int q_heads, int kv_heads, int head_dim,
                std::vector<HeadPatternSpec> heads) {
  Layer l;
  l.dims.tokens = tokens;
  l.dims.q_heads = q_heads;
  l.dims.kv_heads = kv_heads;
  l.dims.head_dim = head_dim;
  l.heads = std::move(heads);
  return l;
}

// Gaussian inputs (never zeros), rounded to bf16.
void FillRandom(Layer* l, uint32_t salt, float scale = 1.5f) {
  std::mt19937 rng(BaseSeed() ^ (salt * 0x9e3779b9u));
  std::normal_distribution<float> dist(0.f, scale);
  l->q.resize(l->dims.tokens * l->dims.q_heads * l->dims.head_dim);
  l->k.resize(l->dims.tokens * l->dims.kv_heads * l->dims.head_dim);
  for (float& x : l->q) x = dist(rng);
  for (float& x : l->k) x = dist(rng);
  l->q = RoundToBf16(l->q);
  l->k = RoundToBf16(l->k);
}

// RoPE-structured inputs: per head a fixed direction plus per-token noise, rotated by position
// (Llama's half-split rotary, theta 10000). Scores then depend on the distance q - k: local
// diagonals dominate, as in real models, with sink-like columns from the fixed directions.
void FillRope(Layer* l, uint32_t salt) {
  std::mt19937 rng(BaseSeed() ^ (salt * 0x85ebca6bu));
  std::normal_distribution<float> dist(0.f, 1.f);
  const int D = l->dims.head_dim;
  auto fill = [&](std::vector<float>* x, int heads) {
    std::vector<float> base(static_cast<size_t>(heads) * D);
    for (float& b : base) b = 2.f * dist(rng);
    x->resize(l->dims.tokens * heads * D);
    for (int64_t t = 0; t < l->dims.tokens; ++t) {
      for (int h = 0; h < heads; ++h) {
        float* v = x->data() + (t * heads + h) * D;
        for (int d = 0; d < D; ++d) v[d] = base[h * D + d] + 0.7f * dist(rng);
        for (int i = 0; i < D / 2; ++i) {
          const double angle = static_cast<double>(t) * std::pow(10000.0, -2.0 * i / D);
          const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
          const float a = v[i], b = v[i + D / 2];
          v[i] = a * c - b * s;
          v[i + D / 2] = a * s + b * c;
        }
      }
    }
    *x = RoundToBf16(*x);
  };
  fill(&l->q, l->dims.q_heads);
  fill(&l->k, l->dims.kv_heads);
}

// ---- running the GPU builder --------------------------------------------------------------------

struct GpuIndex {
  SparseIndexPlan plan;
  std::vector<HeadDescriptor> heads;
  std::vector<int32_t> verticals;
  std::vector<DiagonalBand> bands;
  std::vector<int32_t> key_blocks;
};

template <class T>
std::vector<T> Download(const unsigned char* device, size_t count) {
  std::vector<T> host(count);
  if (count > 0) cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost);
  return host;
}

::testing::AssertionResult RunGpu(const Layer& l, GpuIndex* out) {
  if (PlanSparseIndex(l.dims, l.heads, l.options, &out->plan) != cudaSuccess)
    return ::testing::AssertionFailure() << "PlanSparseIndex failed";
  const SparseIndexPlan& plan = out->plan;
  DeviceBuffer<__nv_bfloat16> q(l.q.size()), k(l.k.size());
  DeviceBuffer<unsigned char> ws(plan.workspace_bytes);
  if (q.get() == nullptr || k.get() == nullptr || ws.get() == nullptr)
    return ::testing::AssertionFailure() << "cudaMalloc failed";
  if (q.Upload(ToBf16(l.q)) != cudaSuccess || k.Upload(ToBf16(l.k)) != cudaSuccess)
    return ::testing::AssertionFailure() << "upload failed";
  // Poison: every output the index exposes must be written by the build (0x7f7f7f7f is no
  // valid index, band or -1 pad).
  if (ws.Fill(0x7f) != cudaSuccess) return ::testing::AssertionFailure() << "memset failed";
  SparseIndexView view;
  const cudaError_t err = BuildSparseIndex(plan, q.get(), k.get(), ws.get(), nullptr, &view);
  if (err != cudaSuccess) return ::testing::AssertionFailure() << "BuildSparseIndex: " << cudaGetErrorString(err);
  const cudaError_t sync = cudaDeviceSynchronize();
  if (sync != cudaSuccess) return ::testing::AssertionFailure() << "kernels: " << cudaGetErrorString(sync);
  size_t n_vert = 0, n_band = 0, n_blocks = 0;
  for (const HeadDescriptor& d : plan.descriptors) {
    n_vert = std::max(n_vert, static_cast<size_t>(d.vertical_begin + d.vertical_count));
    n_band = std::max(n_band, static_cast<size_t>(d.band_begin + d.band_count));
    if (d.kind == HeadKind::kBlockSparse)
      n_blocks = std::max(n_blocks, static_cast<size_t>(d.block_begin) +
                                        static_cast<size_t>(plan.layout.query_blocks) * d.blocks_per_row);
  }
  const unsigned char* base = ws.get();
  if (reinterpret_cast<const unsigned char*>(view.heads) != base + plan.descriptors_offset)
    return ::testing::AssertionFailure() << "view.heads is not the planned offset";
  out->heads = Download<HeadDescriptor>(base + plan.descriptors_offset, plan.descriptors.size());
  out->verticals = Download<int32_t>(base + plan.verticals_offset, n_vert);
  out->bands = Download<DiagonalBand>(base + plan.bands_offset, n_band);
  out->key_blocks = Download<int32_t>(base + plan.key_blocks_offset, n_blocks);
  const cudaError_t copy = cudaDeviceSynchronize();
  if (copy != cudaSuccess) return ::testing::AssertionFailure() << "download: " << cudaGetErrorString(copy);
  return ::testing::AssertionSuccess();
}

// ---- comparing selections -----------------------------------------------------------------------

// Compares the GPU's and the reference's selections of items scored by `score` (the reference's
// double scores), `forced(i)` telling which items are kept regardless. Empty when they agree.
template <class Forced>
std::string CompareSelections(const std::string& what, const std::vector<int64_t>& gpu,
                              const std::vector<int64_t>& ref, const std::vector<double>& score,
                              Forced forced, int* near_ties = nullptr) {
  std::ostringstream err;
  if (gpu.size() != ref.size()) {
    err << what << ": GPU kept " << gpu.size() << " items, the reference " << ref.size() << "\n";
    return err.str();
  }
  for (size_t i = 0; i < gpu.size(); ++i) {
    if (gpu[i] < 0 || gpu[i] >= static_cast<int64_t>(score.size()) || (i > 0 && gpu[i] <= gpu[i - 1])) {
      err << what << ": GPU list not strictly ascending in range at position " << i << " (" << gpu[i] << ")\n";
      return err.str();
    }
  }
  double tau = std::numeric_limits<double>::infinity(), max_abs = 0;
  for (int64_t i : ref)
    if (!forced(i)) tau = std::min(tau, score[i]);
  for (double s : score)
    if (std::isfinite(s)) max_abs = std::max(max_abs, std::abs(s));
  const double tol = std::isfinite(tau) ? kRelTol * std::abs(tau) + kAbsTol * max_abs : 0;
  std::vector<int64_t> only_gpu, only_ref;
  std::set_difference(gpu.begin(), gpu.end(), ref.begin(), ref.end(), std::back_inserter(only_gpu));
  std::set_difference(ref.begin(), ref.end(), gpu.begin(), gpu.end(), std::back_inserter(only_ref));
  int bad = 0;
  for (int64_t i : only_gpu) {
    if (forced(i) || !std::isfinite(tau) || score[i] < tau - tol) {
      if (bad++ < 8) err << what << ": GPU picked " << i << " (score " << score[i] << "), threshold " << tau << " tol " << tol << "\n";
    }
  }
  for (int64_t i : only_ref) {
    if (forced(i) || !std::isfinite(tau) || score[i] > tau + tol) {
      if (bad++ < 8) err << what << ": GPU missed " << i << " (score " << score[i] << "), threshold " << tau << " tol " << tol << "\n";
    }
  }
  if (bad > 0) err << what << ": " << bad << " disagreements beyond near-ties (" << only_gpu.size() << " differ in all)\n";
  if (near_ties != nullptr) *near_ties += static_cast<int>(only_gpu.size());
  return err.str();
}

// Offsets covered by a head's bands, after checking the band invariants.
std::string ExpandBands(const GpuIndex& g, int h, int64_t tokens, std::vector<int64_t>* offsets) {
  std::ostringstream err;
  const HeadDescriptor& d = g.heads[h];
  offsets->clear();
  for (int i = 0; i < d.band_count; ++i) {
    const DiagonalBand b = g.bands[d.band_begin + i];
    if (b.lo < 0 || b.hi < b.lo || b.hi >= tokens) {
      err << "head " << h << " band " << i << " = [" << b.lo << ", " << b.hi << "] invalid\n";
      return err.str();
    }
    if (i > 0 && b.lo <= g.bands[d.band_begin + i - 1].hi + 1) {
      err << "head " << h << " band " << i << " overlaps or touches the previous one\n";
      return err.str();
    }
    for (int64_t s = b.lo; s <= b.hi; ++s) offsets->push_back(s);
  }
  return "";
}

// Checks every head of the layer against the references; returns the diagnostics.
std::string CheckLayer(const Layer& l, const GpuIndex& g, int* near_ties = nullptr) {
  std::ostringstream err;
  const AttentionShape shape = l.shape();
  const int64_t T = l.dims.tokens;
  const int64_t nb = (T + kSparseBlockSize - 1) / kSparseBlockSize;
  const int H = l.dims.q_heads;
  std::vector<std::string> messages(H);
  std::vector<int> ties(H, 0);
  ParallelFor(0, H, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h64 = h0; h64 < h1; ++h64) {
      const int h = static_cast<int>(h64);
      std::ostringstream m;
      const HeadPatternSpec& spec = l.heads[h];
      const HeadDescriptor& d = g.heads[h];
      const HeadDescriptor& planned = g.plan.descriptors[h];
      if (d.kind != spec.kind) {
        m << "head " << h << ": kind " << static_cast<int>(d.kind) << "\n";
        messages[h] = m.str();
        continue;
      }
      switch (spec.kind) {
        case HeadKind::kDense:
          break;
        case HeadKind::kAShape:
          if (d.n_init != spec.a || d.n_local != spec.b) m << "head " << h << ": A-shape descriptor\n";
          break;
        case HeadKind::kVerticalSlash: {
          const VerticalSlashScores s = ScoreVerticalSlashRef(l.q.data(), l.k.data(), shape, h, l.options.last_queries);
          const int64_t V = std::min(T, std::max(spec.a, l.options.min_vertical));
          const int64_t S = std::min(T, std::max(spec.b, l.options.min_slash));
          const int64_t fv = std::min(l.options.forced_vertical, V), fs = std::min(l.options.forced_slash, S);
          if (d.vertical_begin != planned.vertical_begin || d.band_begin != planned.band_begin) m << "head " << h << ": offsets changed\n";
          if (d.vertical_count != V) m << "head " << h << ": vertical_count " << d.vertical_count << " != " << V << "\n";
          if (d.band_count < 1 || d.band_count > S) m << "head " << h << ": band_count " << d.band_count << " outside [1, " << S << "]\n";
          if (!m.str().empty()) break;
          const std::vector<int64_t> gv(g.verticals.begin() + d.vertical_begin, g.verticals.begin() + d.vertical_begin + d.vertical_count);
          m << CompareSelections("head " + std::to_string(h) + " verticals", gv, TopIndicesWithForcedPrefix(s.column, V, fv), s.column,
                                 [&](int64_t i) { return i < fv; }, &ties[h]);
          std::vector<int64_t> gs;
          const std::string band_err = ExpandBands(g, h, T, &gs);
          if (!band_err.empty()) {
            m << band_err;
            break;
          }
          m << CompareSelections("head " + std::to_string(h) + " slashes", gs, TopIndicesWithForcedPrefix(s.diagonal, S, fs), s.diagonal,
                                 [&](int64_t i) { return i < fs; }, &ties[h]);
          break;
        }
        case HeadKind::kBlockSparse: {
          BlockSparseParams bp;
          bp.top_k = spec.a;
          const HeadKeySet ref = EstimateBlockSparseRef(l.q.data(), l.k.data(), shape, h, bp);
          const std::vector<double> scores = PooledBlockScoresRef(l.q.data(), l.k.data(), shape, h, kSparseBlockSize);
          const int width = d.blocks_per_row;
          if (d.block_begin != planned.block_begin || width != planned.blocks_per_row) m << "head " << h << ": block table moved\n";
          for (int64_t bq = 0; bq < nb && m.str().size() < 2000; ++bq) {
            const int32_t* row = g.key_blocks.data() + d.block_begin + bq * width;
            std::vector<int64_t> got;
            int i = 0;
            for (; i < width && row[i] != -1; ++i) got.push_back(row[i]);
            for (; i < width; ++i) {
              if (row[i] != -1) {
                m << "head " << h << " row " << bq << ": entry " << i << " = " << row[i] << " after the padding\n";
                break;
              }
            }
            const std::vector<double> row_scores(scores.begin() + bq * nb, scores.begin() + bq * nb + bq + 1);
            m << CompareSelections("head " + std::to_string(h) + " row " + std::to_string(bq), got, ref.key_blocks[bq], row_scores,
                                   [&](int64_t b) { return b == 0 || b == bq; }, &ties[h]);
          }
          break;
        }
      }
      messages[h] = m.str();
    }
  });
  for (int h = 0; h < H; ++h) err << messages[h];
  if (near_ties != nullptr)
    for (int t : ties) *near_ties += t;
  return err.str();
}

// ---- tests --------------------------------------------------------------------------------------

// Mixed head kinds, 16 per layer: budgets that select by score, budgets the prompt cannot fill,
// budgets that keep only the forced items, and block-sparse widths around the prompt's blocks.
std::vector<HeadPatternSpec> MixedHeads(int q_heads) {
  const std::vector<HeadPatternSpec> table = {
      Vs(40, 120), Bs(3),        Vs(1000, 6096), AShape(4, 64), Vs(33, 170), Bs(8),       Vs(100, 800),
      Bs(100),     Dense(),      Bs(2),          Vs(30, 50),    Bs(16),      Vs(64, 64),  AShape(0, 1),
      Vs(1, 1),    Vs(500, 3000)};
  std::vector<HeadPatternSpec> heads;
  for (int h = 0; h < q_heads; ++h) heads.push_back(table[h % table.size()]);
  return heads;
}

TEST(IndexBuilderGpu, MatchesReferencesOnRandomInputs) {
  SF_SKIP_WITHOUT_GPU();
  int runs = 0, ties = 0;
  uint32_t salt = 1;
  for (int64_t tokens : {1, 2, 63, 64, 65, 127, 1000, 4099}) {
    for (int head_dim : {64, 128}) {
      for (int group : {1, 4, 8}) {
        const int q_heads = 16, kv_heads = q_heads / group;
        Layer l = MakeLayer(tokens, q_heads, kv_heads, head_dim, MixedHeads(q_heads));
        FillRandom(&l, salt++);
        SCOPED_TRACE(l.Describe());
        GpuIndex g;
        ASSERT_TRUE(RunGpu(l, &g));
        const std::string err = CheckLayer(l, g, &ties);
        ASSERT_TRUE(err.empty()) << err;
        ++runs;
      }
    }
  }
  std::printf("[ info ] %d layers agree with the references (%d near-tie swaps)\n", runs, ties);
}

TEST(IndexBuilderGpu, MatchesReferencesOnRopeInputs) {
  SF_SKIP_WITHOUT_GPU();
  int ties = 0;
  for (int64_t tokens : {4099, 16384}) {
    std::vector<HeadPatternSpec> heads = {Vs(100, 800), Vs(1000, 6096), Bs(16), Bs(100),
                                          Vs(300, 300), AShape(64, 512), Bs(5), Vs(31, 101)};
    Layer l = MakeLayer(tokens, 8, 2, 128, heads);
    FillRope(&l, static_cast<uint32_t>(tokens));
    SCOPED_TRACE(l.Describe());
    GpuIndex g;
    ASSERT_TRUE(RunGpu(l, &g));
    const std::string err = CheckLayer(l, g, &ties);
    ASSERT_TRUE(err.empty()) << err;
  }
  std::printf("[ info ] RoPE layers agree (%d near-tie swaps)\n", ties);
}

TEST(IndexBuilderGpu, MatchesReferencesOnALongPrompt) {
  SF_SKIP_WITHOUT_GPU();
  const int64_t tokens = 65536;
  std::vector<HeadPatternSpec> heads = {Vs(1000, 6096), Vs(100, 800), Bs(100), Vs(3500, 100),
                                        Bs(8),          AShape(128, 3968), Vs(1000, 6096), Bs(100)};
  Layer l = MakeLayer(tokens, 8, 2, 128, heads);
  FillRandom(&l, 77);
  SCOPED_TRACE(l.Describe());
  GpuIndex g;
  ASSERT_TRUE(RunGpu(l, &g));
  int ties = 0;
  const std::string err = CheckLayer(l, g, &ties);
  ASSERT_TRUE(err.empty()) << err;
  std::printf("[ info ] 64K-token layer agrees (%d near-tie swaps)\n", ties);
}

TEST(IndexBuilderGpu, MatchesReferencesWithLargeBlockBudgets) {
  SF_SKIP_WITHOUT_GPU();
  // top_k up to 500 of 512 blocks: the planner picks the 16-row block-sparse variant.
  Layer l = MakeLayer(32768 - 17, 4, 1, 64, {Bs(300), Bs(100), Bs(500), Vs(200, 400)});
  FillRandom(&l, 31);
  SCOPED_TRACE(l.Describe());
  GpuIndex g;
  ASSERT_TRUE(RunGpu(l, &g));
  EXPECT_EQ(g.plan.layout.bs_rows_per_cta, 16);
  int ties = 0;
  const std::string err = CheckLayer(l, g, &ties);
  ASSERT_TRUE(err.empty()) << err;
  std::printf("[ info ] large block budgets agree (%d near-tie swaps)\n", ties);
}

// Block means of one head in double (the reference's PoolBlocks), for spot checks of rows.
std::vector<double> PoolHead(const std::vector<float>& x, int64_t tokens, int heads, int head, int d) {
  const int64_t blocks = (tokens + kSparseBlockSize - 1) / kSparseBlockSize;
  std::vector<double> pooled(blocks * d, 0.0);
  for (int64_t t = 0; t < tokens; ++t)
    for (int i = 0; i < d; ++i) pooled[(t / kSparseBlockSize) * d + i] += x[(t * heads + head) * d + i];
  for (int64_t b = 0; b < blocks; ++b) {
    const double n = static_cast<double>(std::min<int64_t>(kSparseBlockSize, tokens - b * kSparseBlockSize));
    for (int i = 0; i < d; ++i) pooled[b * d + i] /= n;
  }
  return pooled;
}

TEST(IndexBuilderGpu, OneMillionTokens) {
  SF_SKIP_WITHOUT_GPU();
  // 2^20 + 3 tokens (16385 blocks, the last one partial): vertical-slash against the reference,
  // block-sparse rows spot-checked (the full pooled-score matrix would need 2 GiB on the CPU).
  const int64_t T = (int64_t{1} << 20) + 3;
  const int D = 128;
  Layer l = MakeLayer(T, 2, 1, D, {Vs(1000, 6096), Bs(100)});
  FillRandom(&l, 1234);
  SCOPED_TRACE(l.Describe());
  GpuIndex g;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(RunGpu(l, &g));
  std::printf("[ info ] 1M-token build + download %.0f ms (untimed first run)\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  // Vertical-slash head 0: the full reference.
  {
    const VerticalSlashScores s = ScoreVerticalSlashRef(l.q.data(), l.k.data(), l.shape(), 0, 64);
    const HeadDescriptor& d = g.heads[0];
    ASSERT_EQ(d.vertical_count, 1000);
    const std::vector<int64_t> gv(g.verticals.begin() + d.vertical_begin, g.verticals.begin() + d.vertical_begin + 1000);
    std::string err = CompareSelections("verticals", gv, TopIndicesWithForcedPrefix(s.column, 1000, 30), s.column,
                                        [](int64_t i) { return i < 30; });
    std::vector<int64_t> gs;
    err += ExpandBands(g, 0, T, &gs);
    if (err.empty())
      err += CompareSelections("slashes", gs, TopIndicesWithForcedPrefix(s.diagonal, 6096, 100), s.diagonal,
                               [](int64_t i) { return i < 100; });
    ASSERT_TRUE(err.empty()) << err;
  }
  // Block-sparse head 1: every row's invariants, sampled rows against the reference rule.
  {
    const HeadDescriptor& d = g.heads[1];
    const int64_t nb = (T + 63) / 64;
    ASSERT_EQ(d.blocks_per_row, 100);
    const std::vector<double> pq = PoolHead(l.q, T, 2, 1, D), pk = PoolHead(l.k, T, 1, 0, D);
    std::string err;
    for (int64_t bq = 0; bq < nb && err.empty(); ++bq) {
      const int32_t* row = g.key_blocks.data() + d.block_begin + bq * 100;
      const int64_t expected = std::min<int64_t>(100, bq + 1);
      for (int64_t i = 0; i < 100; ++i) {
        const bool ok = i < expected ? (row[i] >= 0 && row[i] <= bq && (i == 0 || row[i] > row[i - 1])) : row[i] == -1;
        if (!ok) {
          err = "row " + std::to_string(bq) + " entry " + std::to_string(i) + " = " + std::to_string(row[i]);
          break;
        }
      }
      if (!err.empty() || expected < 2) continue;
      if (row[0] != 0 || row[expected - 1] != bq) err = "row " + std::to_string(bq) + " lacks block 0 or the diagonal";
      if (bq % 997 != 5 && bq != nb - 1) continue;  // sampled rows: the reference selection
      std::vector<double> sc(bq + 1);
      for (int64_t bk = 0; bk <= bq; ++bk) {
        double dot = 0;
        for (int i = 0; i < D; ++i) dot += pq[bq * D + i] * pk[bk * D + i];
        sc[bk] = dot / std::sqrt(static_cast<double>(D));
      }
      std::vector<int64_t> cand;
      for (int64_t bk = 1; bk < bq; ++bk) cand.push_back(bk);
      std::sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) { return sc[a] > sc[b] || (sc[a] == sc[b] && a < b); });
      std::vector<int64_t> ref = {0, bq};
      ref.insert(ref.end(), cand.begin(), cand.begin() + std::min<int64_t>(98, static_cast<int64_t>(cand.size())));
      std::sort(ref.begin(), ref.end());
      err += CompareSelections("row " + std::to_string(bq), std::vector<int64_t>(row, row + expected), ref, sc,
                               [&](int64_t b) { return b == 0 || b == bq; });
    }
    ASSERT_TRUE(err.empty()) << err;
  }
}

TEST(IndexBuilderGpu, PicksPlantedColumnsAndDiagonals) {
  SF_SKIP_WITHOUT_GPU();
  // As the reference test: every query carries a shared direction e0, planted key columns carry
  // it strongly (verticals); position codes make query i match key i - 150 (a slash). Two KV
  // groups of 4 heads with different planted columns.
  for (int64_t T : {501, 4099}) {
    const int D = 128, Hq = 8, Hkv = 2;
    Layer l = MakeLayer(T, Hq, Hkv, D, std::vector<HeadPatternSpec>(Hq, Vs(33, 101)));
    std::mt19937 rng(BaseSeed() + static_cast<uint32_t>(T));
    std::normal_distribution<float> dist(0.f, 1.f / std::sqrt(static_cast<float>(D)));
    constexpr int64_t kOffset = 150;
    std::vector<float> codes((T + kOffset) * D);
    for (float& x : codes) x = dist(rng);
    const std::vector<std::vector<int64_t>> planted = {{100, 257, 333}, {45, 300, T - 60}};
    l.q.assign(T * Hq * D, 0.f);
    l.k.assign(T * Hkv * D, 0.f);
    for (int64_t i = 0; i < T; ++i) {
      for (int h = 0; h < Hq; ++h) {
        l.q[(i * Hq + h) * D] = 3.f;
        for (int d = 1; d < D; ++d) l.q[(i * Hq + h) * D + d] = 4.f * codes[i * D + d] + 0.01f * (h + 1);
      }
      for (int g = 0; g < Hkv; ++g)
        for (int d = 1; d < D; ++d) l.k[(i * Hkv + g) * D + d] = 4.f * codes[(i + kOffset) * D + d];
    }
    for (int g = 0; g < Hkv; ++g)
      for (int64_t c : planted[g]) l.k[(c * Hkv + g) * D] = 6.f;
    l.q = RoundToBf16(l.q);
    l.k = RoundToBf16(l.k);
    SCOPED_TRACE(l.Describe());
    GpuIndex g;
    ASSERT_TRUE(RunGpu(l, &g));
    for (int h = 0; h < Hq; ++h) {
      const HeadDescriptor& d = g.heads[h];
      std::vector<int64_t> expected_v;
      for (int64_t c = 0; c < 30; ++c) expected_v.push_back(c);
      for (int64_t c : planted[h / 4]) expected_v.push_back(c);
      std::sort(expected_v.begin(), expected_v.end());
      ASSERT_EQ(d.vertical_count, 33) << "head " << h;
      EXPECT_EQ(std::vector<int64_t>(g.verticals.begin() + d.vertical_begin, g.verticals.begin() + d.vertical_begin + 33), expected_v)
          << "head " << h;
      ASSERT_EQ(d.band_count, 2) << "head " << h;
      EXPECT_EQ(g.bands[d.band_begin].lo, 0);
      EXPECT_EQ(g.bands[d.band_begin].hi, 99);
      EXPECT_EQ(g.bands[d.band_begin + 1].lo, kOffset);
      EXPECT_EQ(g.bands[d.band_begin + 1].hi, kOffset);
    }
    const std::string err = CheckLayer(l, g);
    EXPECT_TRUE(err.empty()) << err;
  }
}

TEST(IndexBuilderGpu, PicksPlantedBlocks) {
  SF_SKIP_WITHOUT_GPU();
  // As the reference test, on two heads of one KV group: pooled queries share e0, key blocks 3
  // and 5 carry it; the last block is partial.
  const int64_t T = 7 * 64 + 13;
  const int D = 128;
  Layer l = MakeLayer(T, 2, 1, D, {Bs(4), Bs(1)});
  FillRandom(&l, 5);
  for (int64_t i = 0; i < T; ++i)
    for (int h = 0; h < 2; ++h) l.q[(i * 2 + h) * D] = 4.f;
  for (int64_t j = 3 * 64; j < 4 * 64; ++j) l.k[j * D] = 5.f;
  for (int64_t j = 5 * 64; j < 6 * 64; ++j) l.k[j * D] = 4.f;
  SCOPED_TRACE(l.Describe());
  GpuIndex g;
  ASSERT_TRUE(RunGpu(l, &g));
  const HeadDescriptor& d = g.heads[0];
  ASSERT_EQ(d.blocks_per_row, 4);
  auto row = [&](const HeadDescriptor& hd, int bq) {
    return std::vector<int32_t>(g.key_blocks.begin() + hd.block_begin + bq * hd.blocks_per_row,
                                g.key_blocks.begin() + hd.block_begin + (bq + 1) * hd.blocks_per_row);
  };
  EXPECT_EQ(row(d, 0), (std::vector<int32_t>{0, -1, -1, -1}));
  EXPECT_EQ(row(d, 1), (std::vector<int32_t>{0, 1, -1, -1}));
  EXPECT_EQ(row(d, 6), (std::vector<int32_t>{0, 3, 5, 6}));
  EXPECT_EQ(row(d, 7), (std::vector<int32_t>{0, 3, 5, 7}));
  // top_k = 1 keeps the two forced blocks.
  const HeadDescriptor& d1 = g.heads[1];
  ASSERT_EQ(d1.blocks_per_row, 2);
  EXPECT_EQ(row(d1, 7), (std::vector<int32_t>{0, 7}));
  EXPECT_EQ(row(d1, 0), (std::vector<int32_t>{0, -1}));
  const std::string err = CheckLayer(l, g);
  EXPECT_TRUE(err.empty()) << err;
}

TEST(IndexBuilderGpu, BudgetsCoveringThePromptKeepEverything) {
  SF_SKIP_WITHOUT_GPU();
  for (int64_t T : {1, 100, 129}) {
    Layer l = MakeLayer(T, 2, 1, 64, {Vs(1000, 6096), Bs(100)});
    FillRandom(&l, 9 + static_cast<uint32_t>(T));
    SCOPED_TRACE(l.Describe());
    GpuIndex g;
    ASSERT_TRUE(RunGpu(l, &g));
    const HeadDescriptor& d = g.heads[0];
    ASSERT_EQ(d.vertical_count, T);
    for (int64_t c = 0; c < T; ++c) ASSERT_EQ(g.verticals[d.vertical_begin + c], c);
    ASSERT_EQ(d.band_count, 1);
    EXPECT_EQ(g.bands[d.band_begin].lo, 0);
    EXPECT_EQ(g.bands[d.band_begin].hi, T - 1);
    const HeadDescriptor& b = g.heads[1];
    const int64_t nb = (T + 63) / 64;
    for (int64_t bq = 0; bq < nb; ++bq)
      for (int64_t i = 0; i < b.blocks_per_row; ++i)
        EXPECT_EQ(g.key_blocks[b.block_begin + bq * b.blocks_per_row + i], i <= bq ? i : -1);
  }
}

TEST(IndexBuilderGpu, RepeatedBuildsAreIdentical) {
  SF_SKIP_WITHOUT_GPU();
  // Same inputs twice: the selection must not depend on scheduling (a moving result is a race).
  Layer l = MakeLayer(20000, 8, 2, 128, MixedHeads(8));
  FillRandom(&l, 123);
  GpuIndex a, b;
  ASSERT_TRUE(RunGpu(l, &a));
  ASSERT_TRUE(RunGpu(l, &b));
  EXPECT_EQ(a.verticals, b.verticals);
  EXPECT_EQ(a.key_blocks, b.key_blocks);
  ASSERT_EQ(a.bands.size(), b.bands.size());
  for (size_t i = 0; i < a.bands.size(); ++i) {
    ASSERT_EQ(a.bands[i].lo, b.bands[i].lo) << i;
    ASSERT_EQ(a.bands[i].hi, b.bands[i].hi) << i;
  }
}

TEST(IndexBuilderGpu, RejectsBadArguments) {
  SF_SKIP_WITHOUT_GPU();
  Layer l = MakeLayer(100, 2, 1, 64, {Vs(40, 60), Bs(2)});
  SparseIndexPlan plan;
  ASSERT_EQ(PlanSparseIndex(l.dims, l.heads, l.options, &plan), cudaSuccess);
  DeviceBuffer<unsigned char> ws(plan.workspace_bytes + 256);
  DeviceBuffer<__nv_bfloat16> qk(100 * 2 * 64);
  SparseIndexView view;
  EXPECT_EQ(BuildSparseIndex(plan, qk.get(), qk.get(), ws.get() + 16, nullptr, &view), cudaErrorInvalidValue);
  EXPECT_EQ(BuildSparseIndex(plan, nullptr, qk.get(), ws.get(), nullptr, &view), cudaErrorInvalidValue);
  EXPECT_EQ(BuildSparseIndex(plan, qk.get(), qk.get(), ws.get(), nullptr, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(BuildSparseIndex(SparseIndexPlan{}, qk.get(), qk.get(), ws.get(), nullptr, &view), cudaErrorInvalidValue);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// ---- timing (printed, not asserted) -------------------------------------------------------------

// Fast bf16 noise for the big timing inputs (a normal-ish sum of two uniforms, never zero).
std::vector<__nv_bfloat16> NoiseBf16(size_t n, uint64_t seed) {
  std::vector<float> f(n);
  uint64_t x = seed | 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const float u = static_cast<float>(x & 0xffff) / 65536.f, v = static_cast<float>((x >> 16) & 0xffff) / 65536.f;
    f[i] = 1.5f * (u + v - 1.f) + 1e-3f;
  }
  return ToBf16(f);
}

struct TimingCase {
  const char* name;
  std::vector<HeadPatternSpec> heads;
};

// Median BuildSparseIndex time per case (cudaEvents around the call on one stream, two warm-up
// builds; SPARSEFILL_TIMING_REPS timed builds, default 10). Printed, not asserted.
void TimeBuilds(int64_t T, int Hq, int Hkv, int D, const std::vector<TimingCase>& cases) {
  AttentionDims dims;
  dims.tokens = T;
  dims.q_heads = Hq;
  dims.kv_heads = Hkv;
  dims.head_dim = D;
  DeviceBuffer<__nv_bfloat16> q(T * Hq * D), k(T * Hkv * D);
  ASSERT_NE(q.get(), nullptr);
  ASSERT_NE(k.get(), nullptr);
  SF_CUDA_ASSERT(q.Upload(NoiseBf16(T * Hq * D, BaseSeed() + 1)));
  SF_CUDA_ASSERT(k.Upload(NoiseBf16(T * Hkv * D, BaseSeed() + 2)));
  cudaDeviceProp prop;
  SF_CUDA_ASSERT(cudaGetDeviceProperties(&prop, 0));
  std::printf("[ timing ] BuildSparseIndex, %lld tokens, %d/%d heads, head_dim %d, %s\n",
              static_cast<long long>(T), Hq, Hkv, D, prop.name);
  cudaStream_t stream;
  SF_CUDA_ASSERT(cudaStreamCreate(&stream));
  cudaEvent_t start, stop;
  SF_CUDA_ASSERT(cudaEventCreate(&start));
  SF_CUDA_ASSERT(cudaEventCreate(&stop));
  const char* reps_env = std::getenv("SPARSEFILL_TIMING_REPS");
  const int reps = reps_env != nullptr ? std::max(1, std::atoi(reps_env)) : 10;
  for (const TimingCase& c : cases) {
    SparseIndexPlan plan;
    ASSERT_EQ(PlanSparseIndex(dims, c.heads, VerticalSlashOptions{}, &plan), cudaSuccess);
    DeviceBuffer<unsigned char> ws(plan.workspace_bytes);
    ASSERT_NE(ws.get(), nullptr);
    SparseIndexView view;
    std::vector<float> ms;
    for (int rep = 0; rep < reps + 2; ++rep) {
      SF_CUDA_ASSERT(cudaEventRecord(start, stream));
      SF_CUDA_ASSERT(BuildSparseIndex(plan, q.get(), k.get(), ws.get(), stream, &view));
      SF_CUDA_ASSERT(cudaEventRecord(stop, stream));
      SF_CUDA_ASSERT(cudaEventSynchronize(stop));
      float t = 0;
      SF_CUDA_ASSERT(cudaEventElapsedTime(&t, start, stop));
      if (rep >= 2) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    std::printf("[ timing ] %-28s median %8.3f ms  (min %.3f, max %.3f, workspace %.1f MiB)\n", c.name,
                ms[ms.size() / 2], ms.front(), ms.back(), plan.workspace_bytes / 1048576.0);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
}

TEST(IndexBuilderGpu, Timing128K) {
  SF_SKIP_WITHOUT_GPU();
  const int Hq = 32;
  TimeBuilds(131072, Hq, 8, 128,
             {{"vertical-slash (1000, 6096)", std::vector<HeadPatternSpec>(Hq, Vs(1000, 6096))},
              {"vertical-slash (100, 800)", std::vector<HeadPatternSpec>(Hq, Vs(100, 800))},
              {"block-sparse top-100", std::vector<HeadPatternSpec>(Hq, Bs(100))},
              {"A-shape (128, 3968)", std::vector<HeadPatternSpec>(Hq, AShape(128, 3968))}});
}

TEST(IndexBuilderGpu, Timing1M) {
  SF_SKIP_WITHOUT_GPU();
  // A quarter of the heads (8/2): the 32/8 inputs (8 GiB of q) take long to generate on the host.
  const int Hq = 8;
  TimeBuilds(int64_t{1} << 20, Hq, 2, 128,
             {{"vertical-slash (1000, 6096)", std::vector<HeadPatternSpec>(Hq, Vs(1000, 6096))},
              {"block-sparse top-100", std::vector<HeadPatternSpec>(Hq, Bs(100))}});
}

}  // namespace
}  // namespace sparsefill::kernels::cuda
