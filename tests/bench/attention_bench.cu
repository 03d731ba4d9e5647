// Attention benchmark of issue 4: our dense and sparse attention kernels on the long-context
// prefill workload (batch 1, 32 query heads, 8 KV heads, head_dim 128, bf16, causal), with
// fixed-index workloads (every kernel version does identical work) and estimated patterns
// (BuildSparseIndex then SparseAttention, timed separately). One JSON object per row on stdout
// (and in --json PATH), a human table on stderr. tests/bench/README.md describes every row;
// tests/bench/run_attention_bench.sh runs it next to PyTorch SDPA.
//
// Timing: CUDA events around each run, median over --repeats timed runs after warm-up. The
// inputs are far larger than L2 (Q alone is 256 MiB at 32K tokens), and L2 is also flushed
// (a memset of a scratch buffer, outside the timed region) before every timed run.

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/attention/cuda/attention.h"
#include "kernels/attention/cuda/index_builder.h"
#include "kernels/attention/sparse_index.h"
#include "tests/bench/bench_workloads.h"

namespace sparsefill::bench {
namespace {

using kernels::HeadDescriptor;
using kernels::HeadKind;
using kernels::HostSparseIndex;
using kernels::kSparseBlockSize;
using kernels::SparseIndexView;
namespace kc = kernels::cuda;

using bf16 = __nv_bfloat16;

// ---------------------------------------------------------------------------------------------
// Errors: every CUDA call is checked; a failure carries the call and the CUDA error text.

struct Status {
  cudaError_t code = cudaSuccess;
  std::string what;
  bool ok() const { return code == cudaSuccess; }
  bool oom() const { return code == cudaErrorMemoryAllocation; }
  std::string message() const {
    return what + ": " + cudaGetErrorName(code) + " (" + cudaGetErrorString(code) + ")";
  }
};

Status Fail(const char* what, cudaError_t code) { return Status{code, what}; }

#define BENCH_TRY(expr)                                            \
  do {                                                             \
    const cudaError_t bench_err_ = (expr);                         \
    if (bench_err_ != cudaSuccess) return Fail(#expr, bench_err_); \
  } while (0)

#define BENCH_TRY_STATUS(expr)                     \
  do {                                             \
    Status bench_status_ = (expr);                 \
    if (!bench_status_.ok()) return bench_status_; \
  } while (0)

// A device allocation freed on destruction; Alloc reports out-of-memory as a Status.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  ~DeviceMemory() { Reset(); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  Status Alloc(size_t bytes, const char* what) {
    Reset();
    const cudaError_t err = cudaMalloc(&ptr_, std::max<size_t>(bytes, 1));
    if (err != cudaSuccess) {
      ptr_ = nullptr;
      cudaGetLastError();  // an allocation failure is not sticky; clear it
      return Fail(what, err);
    }
    bytes_ = bytes;
    return {};
  }
  void Reset() {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

template <typename T>
Status Upload(const std::vector<T>& host, DeviceMemory* dev, const char* what) {
  BENCH_TRY_STATUS(dev->Alloc(host.size() * sizeof(T), what));
  if (!host.empty()) {
    BENCH_TRY(
        cudaMemcpy(dev->as<void>(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    // A pageable upload may still be in flight when cudaMemcpy returns, and the benchmark's
    // stream does not synchronise with the legacy stream: wait for it here.
    BENCH_TRY(cudaDeviceSynchronize());
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Input generation on the GPU (the host would take minutes for 8 GiB of Q at 1M tokens).

__host__ __device__ inline uint64_t Mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A standard normal value, a pure function of (seed, i) (Box-Muller on one hash).
__device__ inline float NormalAt(uint64_t seed, uint64_t i) {
  const uint64_t h = Mix64(seed ^ Mix64(i));
  const float u1 = static_cast<float>((h >> 40) + 1) * (1.0f / 16777216.0f);  // (0, 1]
  const float u2 = static_cast<float>(h & 0xffffffull) * (1.0f / 16777216.0f);
  return sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

// x[i] = scale * N(0, 1), i < n.
__global__ void FillNormalKernel(bf16* x, uint64_t n, uint64_t seed, float scale) {
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    x[i] = __float2bfloat16(scale * NormalAt(seed, i));
  }
}

// RoPE-structured q or k, layout [tokens, heads, head_dim]. Before rotation, head h of token t
// is noise * N(0, 1) + local_amp[h] * local_dir[g] + (sink token ? sink_amp[h] * sink_dir[g] : 0),
// g = h / heads_per_dir; then rotated by RoPE (rotate-half pairing, dims i and i + head_dim/2,
// angle t * inv_freq[i]). The local direction, shared by q and k and held in the highest
// frequencies, gives scores that peak at offset 0 and fall off within tens of tokens (slashes);
// the sink direction lives in the lowest frequencies, so keys of sink tokens stay aligned with
// every query over hundreds of thousands of tokens (verticals).
// Sink tokens: t < sink_tokens, or every token whose hash hits 1 / heavy_period (mid-sequence
// verticals); all_sink marks every token (used for q).
struct RopeFill {
  bf16* x;  // [tokens, heads, head_dim]
  int64_t tokens;
  int heads, heads_per_dir, head_dim;
  const float* local_dir;  // [heads / heads_per_dir, head_dim], unit vectors
  const float* sink_dir;   // [heads / heads_per_dir, head_dim], unit, lowest frequencies only
  const float* local_amp;  // [heads]
  const float* sink_amp;   // [heads]
  const double* inv_freq;  // [head_dim / 2]: theta^(-2i / head_dim)
  float noise;             // standard deviation of the per-element noise
  uint64_t seed, heavy_seed;
  int64_t sink_tokens;
  uint32_t heavy_period;
  bool all_sink;
};

__global__ void FillRopeKernel(RopeFill p) {
  const int half = p.head_dim / 2;
  const uint64_t n = static_cast<uint64_t>(p.tokens) * half;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (uint64_t idx = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += stride) {
    const int64_t t = static_cast<int64_t>(idx / half);
    const int i = static_cast<int>(idx % half);
    // The angle in double: t * inv_freq reaches 1e6 rad, where float keeps 0.06 rad.
    const double angle = fmod(static_cast<double>(t) * p.inv_freq[i], kTwoPi);
    float s, c;
    sincosf(static_cast<float>(angle), &s, &c);
    const bool sink = p.all_sink || t < p.sink_tokens ||
                      (Mix64(p.heavy_seed ^ static_cast<uint64_t>(t)) % p.heavy_period) == 0;
    for (int h = 0; h < p.heads; ++h) {
      const int g = h / p.heads_per_dir;
      const uint64_t base = (static_cast<uint64_t>(t) * p.heads + h) * p.head_dim;
      const float* ld = p.local_dir + static_cast<size_t>(g) * p.head_dim;
      const float* sd = p.sink_dir + static_cast<size_t>(g) * p.head_dim;
      const float sa = sink ? p.sink_amp[h] : 0.0f;
      const float x1 = p.noise * NormalAt(p.seed, base + i) + p.local_amp[h] * ld[i] + sa * sd[i];
      const float x2 = p.noise * NormalAt(p.seed, base + i + half) + p.local_amp[h] * ld[i + half] +
                       sa * sd[i + half];
      p.x[base + i] = __float2bfloat16(x1 * c - x2 * s);
      p.x[base + i + half] = __float2bfloat16(x2 * c + x1 * s);
    }
  }
}

// *count += the number of non-finite bf16 values in x[0, n) (NaN poison left unwritten counts).
__global__ void CountNonFiniteKernel(const bf16* x, uint64_t n, unsigned long long* count) {
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  const auto* bits = reinterpret_cast<const uint16_t*>(x);
  unsigned long long local = 0;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    local += (bits[i] & 0x7f80u) == 0x7f80u;
  }
  if (local != 0) atomicAdd(count, local);
}

int GridFor(uint64_t work, int sms) {
  const uint64_t blocks = (work + 255) / 256;
  return static_cast<int>(std::max<uint64_t>(1, std::min<uint64_t>(blocks, 16ull * sms)));
}

// ---------------------------------------------------------------------------------------------
// Options and rows.

struct Options {
  std::vector<int64_t> tokens = {32768, 131072, 262144, 524288, 1048576};
  std::vector<std::string> filters;  // substrings; "=name" matches exactly
  int repeats = 10;
  int min_repeats = 3;
  double row_budget_s = 20.0;  // fewer repeats (>= min_repeats) when a row would take longer
  double max_seconds = 0.0;    // 0: no limit; else skip the rows left after this
  int64_t dense_max_tokens = 262144;
  int q_heads = 32, kv_heads = 8, head_dim = 128;
  uint64_t seed = 20261101;
  std::string json_path;
  bool list = false;
  bool self_check = false;
};

enum class RowKind { kDense, kFixed, kEstimated };
enum class Inputs { kRandom, kRope };

struct RowDef {
  std::string name;
  RowKind kind;
  Inputs inputs = Inputs::kRandom;
  std::string description;
  std::function<HostSparseIndex(int q_heads, int64_t tokens, uint64_t seed)> make_index;  // kFixed
  kc::HeadPatternSpec spec;  // kEstimated, every head
};

std::vector<RowDef> AllRows() {
  std::vector<RowDef> rows;
  rows.push_back({"dense", RowKind::kDense, Inputs::kRandom, "DenseAttention, causal", {}, {}});
  auto band = [&](int64_t v, int64_t s) {
    rows.push_back(
        {"vs_band_v" + std::to_string(v) + "_s" + std::to_string(s),
         RowKind::kFixed,
         Inputs::kRandom,
         "fixed vertical-slash: 30 sink columns + random verticals up to V=" + std::to_string(v) +
             ", one band of the S=" + std::to_string(s) + " nearest diagonals",
         [v, s](int q_heads, int64_t tokens, uint64_t seed) {
           return MakeBandIndex(q_heads, tokens, v, s, 30, seed);
         },
         {}});
  };
  band(1000, 6096);
  band(100, 800);
  band(3500, 100);
  rows.push_back({"vs_scatter_v100_s800",
                  RowKind::kFixed,
                  Inputs::kRandom,
                  "fixed vertical-slash, V=100 as vs_band_v100_s800, S=800 diagonals as the 100 "
                  "nearest + 700 random isolated offsets (compare with vs_band_v100_s800)",
                  [](int q_heads, int64_t tokens, uint64_t seed) {
                    return MakeScatteredIndex(q_heads, tokens, 100, 100, 700, 30, seed);
                  },
                  {}});
  rows.push_back({"bs_top100",
                  RowKind::kFixed,
                  Inputs::kRandom,
                  "fixed block-sparse: per 64-row block, block 0 + diagonal + 98 random blocks",
                  [](int q_heads, int64_t tokens, uint64_t seed) {
                    return MakeBlockSparseIndex(q_heads, tokens, 100, seed);
                  },
                  {}});
  rows.push_back(
      {"ashape_128_3968",
       RowKind::kFixed,
       Inputs::kRandom,
       "A-shape: 128 sink keys + 3968 local keys",
       [](int q_heads, int64_t, uint64_t) { return MakeAShapeIndex(q_heads, 128, 3968); },
       {}});
  const kc::HeadPatternSpec vs{HeadKind::kVerticalSlash, 1000, 6096};
  const kc::HeadPatternSpec bs{HeadKind::kBlockSparse, 100, 0};
  for (Inputs in : {Inputs::kRandom, Inputs::kRope}) {
    const std::string suffix = in == Inputs::kRandom ? "_random" : "_rope";
    const std::string what = in == Inputs::kRandom ? "random q, k" : "RoPE-structured q, k";
    rows.push_back({"est_vs_v1000_s6096" + suffix,
                    RowKind::kEstimated,
                    in,
                    "estimated vertical-slash (V=1000, S=6096) on " + what,
                    {},
                    vs});
    rows.push_back({"est_bs_top100" + suffix,
                    RowKind::kEstimated,
                    in,
                    "estimated block-sparse top-100 on " + what,
                    {},
                    bs});
  }
  return rows;
}

bool Selected(const Options& opt, const std::string& name) {
  if (opt.filters.empty()) return true;
  for (const std::string& f : opt.filters) {
    if (!f.empty() && f[0] == '=') {
      if (name == f.substr(1)) return true;
    } else if (name.find(f) != std::string::npos) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// One output row: JSON on stdout (and the --json file), a line on stderr.

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out;
}

struct Row {
  int64_t tokens = 0;
  std::string pattern, kind, inputs, status = "ok", error, description, output_check;
  double ms = NAN, ms_min = NAN, ms_max = NAN, est_ms = NAN, attn_ms = NAN, est_share = NAN;
  double density = NAN, selected_density = NAN, tflops = NAN, tflops_incl_est = NAN;
  // Throughput on the pairs of the 64 x 64 tiles the kernel computed, masked pairs included:
  // the kernel's efficiency, where tflops (on the pattern's pairs) also charges the tile cover.
  double tflops_tiles = NAN;
  int64_t pairs = -1, selected_pairs = -1, tile_pairs = -1;
  std::string pairs_source;
  int repeats = 0;
};

class Reporter {
 public:
  Reporter(const Options& opt, std::string device) : opt_(opt), device_(std::move(device)) {
    if (!opt.json_path.empty()) json_.open(opt.json_path, std::ios::out | std::ios::app);
  }
  bool json_ok() const { return opt_.json_path.empty() || json_.good(); }

  void Emit(const Row& r) {
    std::ostringstream o;
    o << "{\"bench\":\"sparsefill_attention\",\"tokens\":" << r.tokens << ",\"pattern\":\""
      << JsonEscape(r.pattern) << "\",\"kind\":\"" << r.kind << "\",\"inputs\":\"" << r.inputs
      << "\",\"status\":\"" << r.status << "\"";
    if (!r.error.empty()) o << ",\"error\":\"" << JsonEscape(r.error) << "\"";
    Num(o, "ms", r.ms);
    Num(o, "ms_min", r.ms_min);
    Num(o, "ms_max", r.ms_max);
    o << ",\"repeats\":" << r.repeats;
    Num(o, "est_ms", r.est_ms);
    Num(o, "attn_ms", r.attn_ms);
    Num(o, "est_share", r.est_share);
    Num(o, "density", r.density);
    Num(o, "selected_density", r.selected_density);
    Int(o, "pairs", r.pairs);
    Int(o, "selected_pairs", r.selected_pairs);
    if (!r.pairs_source.empty()) o << ",\"pairs_source\":\"" << r.pairs_source << "\"";
    Num(o, "tflops", r.tflops);
    Num(o, "tflops_incl_est", r.tflops_incl_est);
    Int(o, "tile_pairs", r.tile_pairs);
    Num(o, "tflops_tiles", r.tflops_tiles);
    if (!r.output_check.empty()) {
      o << ",\"output_check\":\"" << JsonEscape(r.output_check) << "\"";
    }
    o << ",\"q_heads\":" << opt_.q_heads << ",\"kv_heads\":" << opt_.kv_heads
      << ",\"head_dim\":" << opt_.head_dim << ",\"dtype\":\"bf16\",\"causal\":true"
      << ",\"device\":\"" << JsonEscape(device_) << "\",\"l2_flushed\":true"
      << ",\"description\":\"" << JsonEscape(r.description) << "\"}";
    std::printf("%s\n", o.str().c_str());
    std::fflush(stdout);
    if (json_.is_open()) {
      json_ << o.str() << "\n";
      json_.flush();
    }
    // The human table.
    if (!header_done_) {
      std::fprintf(stderr, "%8s  %-26s %10s %8s %8s %8s %8s %6s  %s\n", "tokens", "pattern",
                   "ms", "density", "sel.dens", "TFLOP/s", "tile TF", "est%", "status");
      header_done_ = true;
    }
    auto f = [](double v, const char* fmt) {
      char buf[32];
      if (!std::isfinite(v)) return std::string("-");
      std::snprintf(buf, sizeof buf, fmt, v);
      return std::string(buf);
    };
    std::fprintf(stderr, "%8lld  %-26s %10s %8s %8s %8s %8s %6s  %s%s%s\n",
                 static_cast<long long>(r.tokens), r.pattern.c_str(), f(r.ms, "%.3f").c_str(),
                 f(r.density, "%.4f").c_str(), f(r.selected_density, "%.4f").c_str(),
                 f(r.tflops, "%.1f").c_str(), f(r.tflops_tiles, "%.1f").c_str(),
                 f(100.0 * r.est_share, "%.1f").c_str(),
                 r.status.c_str(), r.error.empty() ? "" : ": ", r.error.c_str());
    std::fflush(stderr);
  }

 private:
  static void Num(std::ostringstream& o, const char* key, double v) {
    o << ",\"" << key << "\":";
    if (std::isfinite(v)) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", v);
      o << buf;
    } else {
      o << "null";
    }
  }
  static void Int(std::ostringstream& o, const char* key, int64_t v) {
    o << ",\"" << key << "\":";
    if (v >= 0) {
      o << v;
    } else {
      o << "null";
    }
  }

  const Options& opt_;
  std::string device_;
  std::ofstream json_;
  bool header_done_ = false;
};

// ---------------------------------------------------------------------------------------------
// The benchmark.

double Median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

class Bench {
 public:
  explicit Bench(const Options& opt) : opt_(opt) {}

  // Device, stream, events, L2 flush buffer.
  Status Init(std::string* device_name) {
    int dev = 0;
    BENCH_TRY(cudaGetDevice(&dev));
    cudaDeviceProp prop{};
    BENCH_TRY(cudaGetDeviceProperties(&prop, dev));
    *device_name = prop.name;
    sms_ = prop.multiProcessorCount;
    BENCH_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    // Four times L2, at least 256 MiB: a memset of it evicts every input line.
    const size_t flush =
        std::max<size_t>(256ull << 20, 4ull * static_cast<size_t>(prop.l2CacheSize));
    BENCH_TRY_STATUS(flush_.Alloc(flush, "cudaMalloc(L2 flush buffer)"));
    // Per head: pairs computed, then pairs of the tiles computed; then the non-finite count.
    BENCH_TRY_STATUS(counters_.Alloc(sizeof(unsigned long long) * (2 * opt_.q_heads + 1),
                                     "cudaMalloc(pair counters)"));
    return {};
  }
  ~Bench() {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  // Runs every selected row at every token count. Returns false if the CUDA context was lost
  // (a sticky error); the rows after it are reported as not run.
  bool RunAll(Reporter* rep) {
    const std::vector<RowDef> rows = AllRows();
    start_ = std::chrono::steady_clock::now();
    for (int64_t T : opt_.tokens) {
      std::vector<const RowDef*> todo;
      for (const RowDef& r : rows) {
        if (!Selected(opt_, r.name)) continue;
        if (r.kind == RowKind::kDense && T > opt_.dense_max_tokens) {
          std::fprintf(stderr, "note: dense skipped at %lld tokens (--dense-max-tokens %lld)\n",
                       static_cast<long long>(T), static_cast<long long>(opt_.dense_max_tokens));
          continue;
        }
        todo.push_back(&r);
      }
      if (!todo.empty()) RunTokens(T, todo, rep);
    }
    return alive_;
  }

 private:
  kc::AttentionDims Dims(int64_t T) const {
    kc::AttentionDims d;
    d.tokens = T;
    d.q_heads = opt_.q_heads;
    d.kv_heads = opt_.kv_heads;
    d.head_dim = opt_.head_dim;
    return d;
  }
  double DensePairsAllHeads(int64_t T) const {
    return static_cast<double>(opt_.q_heads) * static_cast<double>(DenseCausalPairs(T));
  }
  double Elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  Row BaseRow(int64_t T, const RowDef& def) const {
    Row r;
    r.tokens = T;
    r.pattern = def.name;
    r.kind = def.kind == RowKind::kDense   ? "dense"
             : def.kind == RowKind::kFixed ? "fixed"
                                           : "estimated";
    r.inputs = def.inputs == Inputs::kRandom ? "random" : "rope";
    r.description = def.description;
    return r;
  }

  // After a failed row: whether the context still works (a sticky error poisons every call).
  bool ContextAlive() {
    cudaGetLastError();
    const cudaError_t err = cudaDeviceSynchronize();
    if (err == cudaSuccess) return cudaGetLastError() == cudaSuccess;
    lost_ = std::string(cudaGetErrorName(err)) + " (" + cudaGetErrorString(err) + ")";
    return false;
  }

  void RunTokens(int64_t T, const std::vector<const RowDef*>& todo, Reporter* rep) {
    const uint64_t q_elems = static_cast<uint64_t>(T) * opt_.q_heads * opt_.head_dim;
    const uint64_t kv_elems = static_cast<uint64_t>(T) * opt_.kv_heads * opt_.head_dim;
    const bool out_of_time = opt_.max_seconds > 0 && Elapsed() > opt_.max_seconds;
    if (!alive_ || out_of_time) {
      for (const RowDef* def : todo) {
        Row row = BaseRow(T, *def);
        row.status = alive_ ? "skipped" : "error";
        row.error = alive_ ? "time budget (--max-seconds) used up"
                           : "not run: CUDA context lost earlier (" + lost_ + ")";
        rep->Emit(row);
      }
      return;
    }
    Status st = q_.Alloc(q_elems * sizeof(bf16), "cudaMalloc(q)");
    if (st.ok()) st = k_.Alloc(kv_elems * sizeof(bf16), "cudaMalloc(k)");
    if (st.ok()) st = v_.Alloc(kv_elems * sizeof(bf16), "cudaMalloc(v)");
    if (st.ok()) st = out_.Alloc(q_elems * sizeof(bf16), "cudaMalloc(out)");
    if (st.ok()) st = FillRandom(T);
    inputs_ = Inputs::kRandom;
    for (const RowDef* def : todo) {
      Row row = BaseRow(T, *def);
      if (!alive_) {
        row.status = "error";
        row.error = "not run: CUDA context lost earlier (" + lost_ + ")";
      } else if (!st.ok()) {
        row.status = st.oom() ? "oom" : "error";
        row.error = st.message();
      } else if (opt_.max_seconds > 0 && Elapsed() > opt_.max_seconds) {
        row.status = "skipped";
        row.error = "time budget (--max-seconds) used up";
      } else {
        Status rs;
        if (def->inputs != inputs_) {
          rs = def->inputs == Inputs::kRope ? FillRope(T) : FillRandom(T);
          inputs_ = def->inputs;
        }
        if (rs.ok()) rs = RunRow(T, *def, &row);
        if (!rs.ok()) {
          row.status = rs.oom() ? "oom" : "error";
          row.error = rs.message();
          if (!ContextAlive()) {
            row.error += "; CUDA context lost, remaining rows not run";
            alive_ = false;
          }
        }
      }
      rep->Emit(row);
    }
    q_.Reset();
    k_.Reset();
    v_.Reset();
    out_.Reset();
  }

  Status FillRandom(int64_t T) {
    const uint64_t q_elems = static_cast<uint64_t>(T) * opt_.q_heads * opt_.head_dim;
    const uint64_t kv_elems = static_cast<uint64_t>(T) * opt_.kv_heads * opt_.head_dim;
    const uint64_t seed = Mix64(opt_.seed ^ static_cast<uint64_t>(T));
    FillNormalKernel<<<GridFor(q_elems, sms_), 256, 0, stream_>>>(q_.as<bf16>(), q_elems, seed + 1,
                                                                  1.0f);
    BENCH_TRY(cudaGetLastError());
    FillNormalKernel<<<GridFor(kv_elems, sms_), 256, 0, stream_>>>(k_.as<bf16>(), kv_elems,
                                                                   seed + 2, 1.0f);
    BENCH_TRY(cudaGetLastError());
    FillNormalKernel<<<GridFor(kv_elems, sms_), 256, 0, stream_>>>(v_.as<bf16>(), kv_elems,
                                                                   seed + 3, 1.0f);
    BENCH_TRY(cudaGetLastError());
    BENCH_TRY(cudaStreamSynchronize(stream_));
    return {};
  }

  // RoPE-structured q and k (theta 500000); v stays random.
  Status FillRope(int64_t T) {
    const int d = opt_.head_dim, half = d / 2, kvh = opt_.kv_heads, qh = opt_.q_heads;
    SplitMix64 rng(opt_.seed ^ 0x0badc0ffeeull ^ static_cast<uint64_t>(T));
    auto normal = [&rng]() {
      const double u1 = (static_cast<double>(rng.Next() >> 11) + 1.0) / 9007199254740993.0;
      const double u2 = static_cast<double>(rng.Next() >> 11) / 9007199254740992.0;
      return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    };
    // Per KV head: a local direction in the 16 highest-frequency pairs (dims 0..15 and their
    // partners) and a sink direction in the 4 lowest (dims half-4..half-1 and partners), both of
    // unit length.
    std::vector<float> local_dir(static_cast<size_t>(kvh) * d, 0.0f);
    std::vector<float> sink_dir(static_cast<size_t>(kvh) * d, 0.0f);
    for (int g = 0; g < kvh; ++g) {
      double n1 = 0, n2 = 0;
      for (int i = 0; i < std::min(16, half); ++i) {
        for (int j : {i, i + half}) {
          const double x = normal();
          local_dir[static_cast<size_t>(g) * d + j] = static_cast<float>(x);
          n1 += x * x;
        }
      }
      for (int i = half - 4; i < half; ++i) {
        for (int j : {i, i + half}) {
          const double x = normal();
          sink_dir[static_cast<size_t>(g) * d + j] = static_cast<float>(x);
          n2 += x * x;
        }
      }
      for (int i = 0; i < d; ++i) {
        local_dir[static_cast<size_t>(g) * d + i] /= static_cast<float>(std::sqrt(n1));
        sink_dir[static_cast<size_t>(g) * d + i] /= static_cast<float>(std::sqrt(n2));
      }
    }
    // Amplitudes (scores are q.k / sqrt(128) ~ q.k / 11.3): local q 10..16 x k 13.5 gives
    // +12..+19 at offset 0; sinks q 3..5 x k 40 give +11..+18 on sink keys; noise 0.7 N(0, 1)
    // per element (a score noise of about 1.3). Checked on the CPU at 32K tokens (one head):
    // the sink and mid-sequence sink columns take 60-85% of the last queries' attention, and
    // offsets 0 and 1 are the top diagonals.
    std::vector<float> q_local(qh), q_sink(qh), k_local(kvh), k_sink(kvh);
    for (int h = 0; h < qh; ++h) {
      q_local[h] = 10.0f + 2.0f * static_cast<float>(h % 4);
      q_sink[h] = 3.0f + static_cast<float>(h % 3);
    }
    for (int g = 0; g < kvh; ++g) {
      k_local[g] = 13.5f;
      k_sink[g] = 40.0f;
    }
    std::vector<double> inv_freq(half);
    for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(500000.0, -2.0 * i / d);

    DeviceMemory d_local, d_sink, d_ql, d_qs, d_kl, d_ks, d_freq;
    BENCH_TRY_STATUS(Upload(local_dir, &d_local, "upload(rope local dir)"));
    BENCH_TRY_STATUS(Upload(sink_dir, &d_sink, "upload(rope sink dir)"));
    BENCH_TRY_STATUS(Upload(q_local, &d_ql, "upload(rope amps)"));
    BENCH_TRY_STATUS(Upload(q_sink, &d_qs, "upload(rope amps)"));
    BENCH_TRY_STATUS(Upload(k_local, &d_kl, "upload(rope amps)"));
    BENCH_TRY_STATUS(Upload(k_sink, &d_ks, "upload(rope amps)"));
    BENCH_TRY_STATUS(Upload(inv_freq, &d_freq, "upload(rope freqs)"));

    const uint64_t seed = Mix64(opt_.seed ^ 0x9090ull ^ static_cast<uint64_t>(T));
    RopeFill p{};
    p.tokens = T;
    p.head_dim = d;
    p.local_dir = d_local.as<float>();
    p.sink_dir = d_sink.as<float>();
    p.inv_freq = d_freq.as<double>();
    p.noise = 0.7f;
    p.heavy_seed = seed ^ 0x5eedull;
    p.sink_tokens = 4;
    p.heavy_period = 4096;
    const uint64_t work = static_cast<uint64_t>(T) * half;
    // q: every token carries the sink direction (every query looks at the sinks).
    p.x = q_.as<bf16>();
    p.heads = qh;
    p.heads_per_dir = qh / kvh;
    p.local_amp = d_ql.as<float>();
    p.sink_amp = d_qs.as<float>();
    p.seed = seed + 1;
    p.all_sink = true;
    FillRopeKernel<<<GridFor(work, sms_), 256, 0, stream_>>>(p);
    BENCH_TRY(cudaGetLastError());
    // k: only the sink tokens (the first 4 and ~1 in 4096) carry it.
    p.x = k_.as<bf16>();
    p.heads = kvh;
    p.heads_per_dir = 1;
    p.local_amp = d_kl.as<float>();
    p.sink_amp = d_ks.as<float>();
    p.seed = seed + 2;
    p.all_sink = false;
    FillRopeKernel<<<GridFor(work, sms_), 256, 0, stream_>>>(p);
    BENCH_TRY(cudaGetLastError());
    BENCH_TRY(cudaStreamSynchronize(stream_));  // before the small buffers are freed
    return {};
  }

  // Makes sure events_[0, count) exist.
  Status EnsureEvents(size_t count) {
    while (events_.size() < count) {
      cudaEvent_t e = nullptr;
      BENCH_TRY(cudaEventCreate(&e));
      events_.push_back(e);
    }
    return {};
  }

  Status FlushL2(int run) {
    BENCH_TRY(cudaMemsetAsync(flush_.as<void>(), run & 0xff, flush_.bytes(), stream_));
    return {};
  }

  // Poison out with NaN, run once with the pair counters, check that every output is finite.
  // `launch(counters)` enqueues one complete run (counters: q_heads pair counters, then q_heads
  // tile-pair counters). Returns the run's time in ms in *ms and the counts per head.
  Status CheckedRun(int64_t T, const std::function<Status(unsigned long long*)>& launch,
                    std::vector<unsigned long long>* counts,
                    std::vector<unsigned long long>* tile_counts, uint64_t* nonfinite,
                    double* ms) {
    const uint64_t q_elems = static_cast<uint64_t>(T) * opt_.q_heads * opt_.head_dim;
    auto* counters = counters_.as<unsigned long long>();
    BENCH_TRY(cudaMemsetAsync(out_.as<void>(), 0xff, q_elems * sizeof(bf16), stream_));
    BENCH_TRY(cudaMemsetAsync(counters, 0, counters_.bytes(), stream_));
    BENCH_TRY_STATUS(EnsureEvents(2));
    cudaEvent_t e0 = events_[0], e1 = events_[1];
    BENCH_TRY(cudaEventRecord(e0, stream_));
    BENCH_TRY_STATUS(launch(counters));
    BENCH_TRY(cudaEventRecord(e1, stream_));
    CountNonFiniteKernel<<<GridFor(q_elems, sms_), 256, 0, stream_>>>(
        out_.as<bf16>(), q_elems, counters + 2 * opt_.q_heads);
    BENCH_TRY(cudaGetLastError());
    BENCH_TRY(cudaStreamSynchronize(stream_));
    float t = 0;
    BENCH_TRY(cudaEventElapsedTime(&t, e0, e1));
    *ms = t;
    std::vector<unsigned long long> host(2 * opt_.q_heads + 1);
    BENCH_TRY(
        cudaMemcpy(host.data(), counters, host.size() * sizeof(host[0]), cudaMemcpyDeviceToHost));
    *nonfinite = host.back();
    counts->assign(host.begin(), host.begin() + opt_.q_heads);
    tile_counts->assign(host.begin() + opt_.q_heads, host.begin() + 2 * opt_.q_heads);
    return {};
  }

  // Timed runs: `stages` launch functions enqueued back to back, an event before each and one
  // after the last; per stage the times of every run.
  Status TimedRuns(int n, const std::vector<std::function<Status()>>& stages,
                   std::vector<std::vector<double>>* times) {
    const size_t per_run = stages.size() + 1;
    BENCH_TRY_STATUS(EnsureEvents(per_run * static_cast<size_t>(n)));
    for (int r = 0; r < n; ++r) {
      BENCH_TRY_STATUS(FlushL2(r));
      for (size_t s = 0; s < stages.size(); ++s) {
        BENCH_TRY(cudaEventRecord(events_[r * per_run + s], stream_));
        BENCH_TRY_STATUS(stages[s]());
      }
      BENCH_TRY(cudaEventRecord(events_[r * per_run + stages.size()], stream_));
    }
    BENCH_TRY(cudaStreamSynchronize(stream_));
    times->assign(stages.size(), {});
    for (int r = 0; r < n; ++r) {
      for (size_t s = 0; s < stages.size(); ++s) {
        float t = 0;
        BENCH_TRY(cudaEventElapsedTime(&t, events_[r * per_run + s], events_[r * per_run + s + 1]));
        (*times)[s].push_back(t);
      }
    }
    return {};
  }

  int RepeatsFor(double first_ms) const {
    int n = opt_.repeats;
    if (first_ms > 0 && first_ms * 1e-3 * n > opt_.row_budget_s) {
      n = std::max(opt_.min_repeats, static_cast<int>(opt_.row_budget_s / (first_ms * 1e-3)));
    }
    return std::max(1, std::min(n, opt_.repeats));
  }

  // Downloads an index the GPU built (device pointers in `view`) into host memory.
  Status DownloadIndex(const SparseIndexView& view, int64_t T, HostSparseIndex* host) {
    const int64_t blocks = (T + kSparseBlockSize - 1) / kSparseBlockSize;
    std::vector<HeadDescriptor> dev(opt_.q_heads);
    BENCH_TRY(cudaMemcpy(dev.data(), view.heads, dev.size() * sizeof(HeadDescriptor),
                         cudaMemcpyDeviceToHost));
    *host = HostSparseIndex{};
    for (HeadDescriptor d : dev) {
      // Counts beyond what any index can hold mean the builder wrote garbage: say so rather
      // than allocate it.
      if (d.vertical_count > T || d.band_count > T || d.blocks_per_row > blocks) {
        return Fail(
            "DownloadIndex: a head descriptor from BuildSparseIndex has counts out of range",
            cudaErrorInvalidValue);
      }
      if (d.kind == HeadKind::kVerticalSlash) {
        std::vector<int32_t> cols(static_cast<size_t>(std::max(0, d.vertical_count)));
        std::vector<kernels::DiagonalBand> bands(static_cast<size_t>(std::max(0, d.band_count)));
        if (!cols.empty()) {
          BENCH_TRY(cudaMemcpy(cols.data(), view.verticals + d.vertical_begin,
                               cols.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));
        }
        if (!bands.empty()) {
          BENCH_TRY(cudaMemcpy(bands.data(), view.bands + d.band_begin,
                               bands.size() * sizeof(kernels::DiagonalBand),
                               cudaMemcpyDeviceToHost));
        }
        d.vertical_begin = static_cast<int32_t>(host->verticals.size());
        d.band_begin = static_cast<int32_t>(host->bands.size());
        host->verticals.insert(host->verticals.end(), cols.begin(), cols.end());
        host->bands.insert(host->bands.end(), bands.begin(), bands.end());
      } else if (d.kind == HeadKind::kBlockSparse) {
        std::vector<int32_t> table(static_cast<size_t>(blocks * std::max(0, d.blocks_per_row)));
        if (!table.empty()) {
          BENCH_TRY(cudaMemcpy(table.data(), view.key_blocks + d.block_begin,
                               table.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));
        }
        d.block_begin = static_cast<int32_t>(host->key_blocks.size());
        host->key_blocks.insert(host->key_blocks.end(), table.begin(), table.end());
      }
      host->heads.push_back(d);
    }
    return {};
  }

  // Fills density, pairs and throughput fields from the counters and the selected pairs.
  void FillPairs(int64_t T, const std::vector<unsigned long long>& counts,
                 const std::vector<unsigned long long>& tile_counts, int64_t selected,
                 uint64_t nonfinite, Row* row) const {
    const double dense = DensePairsAllHeads(T);
    unsigned long long counted = 0, tile_counted = 0;
    for (unsigned long long c : counts) counted += c;
    for (unsigned long long c : tile_counts) tile_counted += c;
    if (tile_counted > 0) row->tile_pairs = static_cast<int64_t>(tile_counted);
    row->selected_pairs = selected;
    row->selected_density = static_cast<double>(selected) / dense;
    if (counted > 0) {
      row->pairs = static_cast<int64_t>(counted);
      row->pairs_source = "kernel_counter";
    } else {
      row->pairs = selected;  // the kernel reported nothing: fall back to the index's count
      row->pairs_source = "index (kernel counter stayed 0)";
    }
    row->density = static_cast<double>(row->pairs) / dense;
    const uint64_t total = static_cast<uint64_t>(T) * opt_.q_heads * opt_.head_dim;
    row->output_check = nonfinite == 0
                            ? "ok: all outputs finite"
                            : std::to_string(nonfinite) + " of " + std::to_string(total) +
                                  " outputs non-finite (unwritten or NaN)";
  }

  Status RunRow(int64_t T, const RowDef& def, Row* row) {
    const kc::AttentionDims dims = Dims(T);
    BENCH_TRY(kc::CheckAttentionDims(dims));
    const bf16 *q = q_.as<bf16>(), *k = k_.as<bf16>(), *v = v_.as<bf16>();
    bf16* out = out_.as<bf16>();
    const double flop_per_pair = 4.0 * opt_.head_dim;

    std::vector<unsigned long long> counts, tile_counts;
    uint64_t nonfinite = 0;
    double first_ms = 0;
    std::vector<std::vector<double>> times;

    if (def.kind == RowKind::kDense) {
      auto run = [&]() -> Status {
        BENCH_TRY(kc::DenseAttention(dims, q, k, v, out, stream_));
        return {};
      };
      BENCH_TRY_STATUS(CheckedRun(
          T, [&](unsigned long long*) { return run(); }, &counts, &tile_counts, &nonfinite,
          &first_ms));
      if (first_ms < 1000) BENCH_TRY_STATUS(run());  // a second warm-up run when cheap
      const int n = RepeatsFor(first_ms);
      BENCH_TRY_STATUS(TimedRuns(n, {run}, &times));
      row->repeats = n;
      row->ms = Median(times[0]);
      row->ms_min = *std::min_element(times[0].begin(), times[0].end());
      row->ms_max = *std::max_element(times[0].begin(), times[0].end());
      const int64_t dense_pairs = static_cast<int64_t>(DensePairsAllHeads(T));
      FillPairs(T, {}, {}, dense_pairs, nonfinite, row);
      row->pairs_source = "dense causal";
      row->tflops = flop_per_pair * static_cast<double>(row->pairs) / (row->ms * 1e-3) / 1e12;
      return {};
    }

    if (def.kind == RowKind::kFixed) {
      const auto t0 = std::chrono::steady_clock::now();
      const HostSparseIndex index = def.make_index(opt_.q_heads, T, opt_.seed);
      const int64_t selected = SelectedPairsAllHeads(index.view(), opt_.q_heads, T);
      DeviceMemory d_heads, d_vert, d_bands, d_blocks;
      BENCH_TRY_STATUS(Upload(index.heads, &d_heads, "upload(index heads)"));
      BENCH_TRY_STATUS(Upload(index.verticals, &d_vert, "upload(index verticals)"));
      BENCH_TRY_STATUS(Upload(index.bands, &d_bands, "upload(index bands)"));
      BENCH_TRY_STATUS(Upload(index.key_blocks, &d_blocks, "upload(index key blocks)"));
      const SparseIndexView view{d_heads.as<HeadDescriptor>(), d_vert.as<int32_t>(),
                                 d_bands.as<kernels::DiagonalBand>(), d_blocks.as<int32_t>()};
      std::fprintf(stderr, "note: %s at %lld tokens: index built and uploaded in %.2f s\n",
                   def.name.c_str(), static_cast<long long>(T),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      auto launch = [&](unsigned long long* counters) -> Status {
        BENCH_TRY(kc::SparseAttention(dims, view, q, k, v, out, counters, stream_,
                                      counters ? counters + opt_.q_heads : nullptr));
        return {};
      };
      BENCH_TRY_STATUS(CheckedRun(T, launch, &counts, &tile_counts, &nonfinite, &first_ms));
      if (first_ms < 1000) BENCH_TRY_STATUS(launch(nullptr));
      const int n = RepeatsFor(first_ms);
      BENCH_TRY_STATUS(TimedRuns(n, {[&]() { return launch(nullptr); }}, &times));
      row->repeats = n;
      row->ms = Median(times[0]);
      row->ms_min = *std::min_element(times[0].begin(), times[0].end());
      row->ms_max = *std::max_element(times[0].begin(), times[0].end());
      FillPairs(T, counts, tile_counts, selected, nonfinite, row);
      row->tflops = flop_per_pair * static_cast<double>(row->pairs) / (row->ms * 1e-3) / 1e12;
      if (row->tile_pairs > 0) {
        row->tflops_tiles =
            flop_per_pair * static_cast<double>(row->tile_pairs) / (row->ms * 1e-3) / 1e12;
      }
      return {};
    }

    // Estimated: plan on the host, then BuildSparseIndex + SparseAttention per run.
    kc::SparseIndexPlan plan;
    const std::vector<kc::HeadPatternSpec> heads(static_cast<size_t>(opt_.q_heads), def.spec);
    BENCH_TRY(kc::PlanSparseIndex(dims, heads, kc::VerticalSlashOptions{}, &plan));
    DeviceMemory workspace;
    BENCH_TRY_STATUS(workspace.Alloc(plan.workspace_bytes, "cudaMalloc(index workspace)"));
    SparseIndexView view;
    auto build = [&]() -> Status {
      BENCH_TRY(kc::BuildSparseIndex(plan, q, k, workspace.as<void>(), stream_, &view));
      return {};
    };
    auto attend = [&](unsigned long long* counters) -> Status {
      BENCH_TRY(kc::SparseAttention(dims, view, q, k, v, out, counters, stream_,
                                    counters ? counters + opt_.q_heads : nullptr));
      return {};
    };
    BENCH_TRY_STATUS(CheckedRun(
        T,
        [&](unsigned long long* counters) -> Status {
          BENCH_TRY_STATUS(build());
          return attend(counters);
        },
        &counts, &tile_counts, &nonfinite, &first_ms));
    HostSparseIndex built;
    BENCH_TRY_STATUS(DownloadIndex(view, T, &built));
    const int64_t selected = SelectedPairsAllHeads(built.view(), opt_.q_heads, T);
    if (first_ms < 1000) {
      BENCH_TRY_STATUS(build());
      BENCH_TRY_STATUS(attend(nullptr));
    }
    const int n = RepeatsFor(first_ms);
    BENCH_TRY_STATUS(TimedRuns(n, {build, [&]() { return attend(nullptr); }}, &times));
    std::vector<double> total(times[0].size());
    for (size_t i = 0; i < total.size(); ++i) total[i] = times[0][i] + times[1][i];
    row->repeats = n;
    row->ms = Median(total);
    row->ms_min = *std::min_element(total.begin(), total.end());
    row->ms_max = *std::max_element(total.begin(), total.end());
    row->est_ms = Median(times[0]);
    row->attn_ms = Median(times[1]);
    row->est_share = row->est_ms / (row->est_ms + row->attn_ms);
    FillPairs(T, counts, tile_counts, selected, nonfinite, row);
    if (row->tile_pairs > 0) {
      row->tflops_tiles =
          flop_per_pair * static_cast<double>(row->tile_pairs) / (row->attn_ms * 1e-3) / 1e12;
    }
    // Throughput of the attention kernel on the pairs it computed, and of the whole step.
    row->tflops = flop_per_pair * static_cast<double>(row->pairs) / (row->attn_ms * 1e-3) / 1e12;
    row->tflops_incl_est =
        flop_per_pair * static_cast<double>(row->pairs) / (row->ms * 1e-3) / 1e12;
    return {};
  }

  const Options& opt_;
  int sms_ = 132;
  cudaStream_t stream_ = nullptr;
  std::vector<cudaEvent_t> events_;
  DeviceMemory flush_, counters_, q_, k_, v_, out_;
  Inputs inputs_ = Inputs::kRandom;
  std::chrono::steady_clock::time_point start_;
  std::string lost_;
  bool alive_ = true;
};

// ---------------------------------------------------------------------------------------------
// Command line.

const char kUsage[] =
    "usage: attention_bench [flags]\n"
    "  --tokens=LIST           token counts, comma-separated (default "
    "32768,131072,262144,524288,1048576; K/M suffixes allowed)\n"
    "  --rows=LIST             only rows whose pattern contains one of these substrings\n"
    "                          (comma-separated; =NAME matches NAME exactly)\n"
    "  --repeats=N             timed runs per row (default 10), after warm-up\n"
    "  --min-repeats=N         the fewest timed runs when --row-budget-s cuts them (default 3)\n"
    "  --row-budget-s=S        cap a row's timed runs at about S seconds (default 20)\n"
    "  --max-seconds=S         skip the rows left after S seconds (default 0: no limit)\n"
    "  --dense-max-tokens=N    no dense row above N tokens (default 262144)\n"
    "  --q-heads=N --kv-heads=N --head-dim=N   (defaults 32, 8, 128)\n"
    "  --seed=N                workload and input seed\n"
    "  --json=PATH             also append the JSON rows to PATH\n"
    "  --list                  print the row names and descriptions, run nothing\n"
    "  --self-check            check the workload generators on the CPU, run nothing\n";

bool ParseInt(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  int64_t mult = 1;
  std::string digits = s;
  const char last = static_cast<char>(std::toupper(static_cast<unsigned char>(s.back())));
  if (last == 'K') mult = 1024;
  if (last == 'M') mult = 1024 * 1024;
  if (mult != 1) digits.pop_back();
  char* end = nullptr;
  const long long v = std::strtoll(digits.c_str(), &end, 10);
  if (end == digits.c_str() || *end != '\0') return false;
  *out = v * mult;
  return true;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// Returns an error message, or "" on success.
std::string ParseArgs(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "--help" || arg == "-h") return "help";
    if (arg == "--list") {
      opt->list = true;
      continue;
    }
    if (arg == "--self-check") {
      opt->self_check = true;
      continue;
    }
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    static const char* const kValueFlags[] = {
        "--tokens",           "--rows",         "--repeats",
        "--min-repeats",      "--row-budget-s", "--max-seconds",
        "--dense-max-tokens", "--q-heads",      "--kv-heads",
        "--head-dim",         "--seed",         "--json"};
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), arg) == std::end(kValueFlags)) {
      return "unknown flag " + arg;
    }
    if (eq != std::string::npos) {
      // value set above
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return "flag " + arg + " needs a value";
    }
    int64_t n = 0;
    auto need_int = [&](int64_t lo) { return ParseInt(value, &n) && n >= lo; };
    if (arg == "--tokens") {
      opt->tokens.clear();
      for (const std::string& t : Split(value)) {
        if (!ParseInt(t, &n) || n < 1) return "bad --tokens entry '" + t + "'";
        opt->tokens.push_back(n);
      }
    } else if (arg == "--rows") {
      opt->filters = Split(value);
    } else if (arg == "--repeats") {
      if (!need_int(1)) return "bad --repeats";
      opt->repeats = static_cast<int>(n);
    } else if (arg == "--min-repeats") {
      if (!need_int(1)) return "bad --min-repeats";
      opt->min_repeats = static_cast<int>(n);
    } else if (arg == "--row-budget-s") {
      opt->row_budget_s = std::atof(value.c_str());
    } else if (arg == "--max-seconds") {
      opt->max_seconds = std::atof(value.c_str());
    } else if (arg == "--dense-max-tokens") {
      if (!need_int(0)) return "bad --dense-max-tokens";
      opt->dense_max_tokens = n;
    } else if (arg == "--q-heads") {
      if (!need_int(1)) return "bad --q-heads";
      opt->q_heads = static_cast<int>(n);
    } else if (arg == "--kv-heads") {
      if (!need_int(1)) return "bad --kv-heads";
      opt->kv_heads = static_cast<int>(n);
    } else if (arg == "--head-dim") {
      if (!need_int(8)) return "bad --head-dim";
      opt->head_dim = static_cast<int>(n);
    } else if (arg == "--seed") {
      if (!need_int(0)) return "bad --seed";
      opt->seed = static_cast<uint64_t>(n);
    } else if (arg == "--json") {
      opt->json_path = value;
    } else {
      return "unknown flag " + arg;
    }
  }
  if (opt->q_heads % opt->kv_heads != 0) return "--kv-heads must divide --q-heads";
  if (opt->head_dim % 2 != 0) return "--head-dim must be even";
  if (opt->repeats < opt->min_repeats) opt->min_repeats = opt->repeats;
  return "";
}

int Main(int argc, char** argv) {
  Options opt;
  const std::string err = ParseArgs(argc, argv, &opt);
  if (err == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!err.empty()) {
    std::fprintf(stderr, "attention_bench: %s\n%s", err.c_str(), kUsage);
    return 2;
  }
  if (opt.list) {
    for (const RowDef& r : AllRows()) {
      if (Selected(opt, r.name)) std::printf("%-26s %s\n", r.name.c_str(), r.description.c_str());
    }
    return 0;
  }
  if (opt.self_check) {
    const std::string check = CheckWorkloads();
    std::printf("self-check: %s\n", check.empty() ? "ok" : check.c_str());
    return check.empty() ? 0 : 1;
  }

  Bench bench(opt);
  std::string device;
  const Status init = bench.Init(&device);
  if (!init.ok()) {
    std::fprintf(stderr, "attention_bench: no usable GPU: %s\n", init.message().c_str());
    return 1;
  }
  std::fprintf(stderr,
               "attention_bench on %s: q_heads %d, kv_heads %d, head_dim %d, bf16, causal\n",
               device.c_str(), opt.q_heads, opt.kv_heads, opt.head_dim);
  Reporter rep(opt, device);
  if (!rep.json_ok()) {
    std::fprintf(stderr, "attention_bench: cannot open --json %s\n", opt.json_path.c_str());
    return 2;
  }
  return bench.RunAll(&rep) ? 0 : 3;
}

}  // namespace
}  // namespace sparsefill::bench

int main(int argc, char** argv) { return sparsefill::bench::Main(argc, argv); }
