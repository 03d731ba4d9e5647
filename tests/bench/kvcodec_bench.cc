// kvcodec_bench: issue 6's KV codec benchmark. Per codec, on llama3-8b-shaped random KV (outlier
// key channels, kv_heads x head_dim 8 x 128, --tokens per layer, --layers layers) and on the
// golden model's KV (tests/data/tiny-llama3: 3 layers x 1000 tokens x 2 x 32):
//   ratio      bf16 bytes / payload bytes (payloads as the server cuts a layer: chunks of at most
//              --max-chunk-bytes, headers included)
//   K err, V err  relative L2 error of the decoded K and V against the bf16 KV they encode
//   attn err   decode-side error: one random query per KV head attends (softmax(q k / sqrt(D)) v)
//              over all tokens with the decoded KV and with the bf16 KV; relative L2 of the
//              outputs over all heads and layers
//   CPU enc, CPU dec  GB/s of bf16 KV (2 bytes an element) encoded / decoded by one thread
//   decode step  on a real model (--decode-model, the golden tiny-llama3 by default): random
//              prompts prefilled on the CPU backend, their float32 KV through each codec, then one
//              decode step (Model::DecodeStep) of the first token: how often its next token equals
//              the step over the exact KV, and the relative L2 error of its logits
//   GPU enc    GB/s of bf16 KV encoded on the GPU (a whole layer's chunks in one launch; LOSSLESS:
//              the byte planes only, zstd runs on the host), and whether the GPU bytes equal the
//              CPU bytes for every chunk
// Input is bf16 (what the CUDA backend exports). Without a GPU (or with --no-gpu) the GPU
// columns say "-". Output: a markdown table on stdout, one JSON object per row with --json PATH.
//
//   kvcodec_bench [--tokens 32768] [--layers 32] [--kv-heads 8] [--head-dim 128]
//                 [--golden tests/data/tiny-llama3] [--max-chunk-bytes 1048576]
//                 [--int4-group 64] [--repeats 3] [--no-gpu] [--json PATH]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "kernels/kvcodec/cuda/kvcodec_cuda.h"
#include "kernels/kvcodec/kv_codec.h"
#include "kernels/kvcodec/lossless_codec.h"
#include "kernels/ops/numeric.h"
#include "tests/kernels/kv_test_data.h"
#include "tests/worker/kv_collector.h"
#include "worker/backend_factory.h"
#include "worker/model.h"
#include "worker/safetensors.h"
#include "worker/weight_source.h"

namespace sparsefill::bench {
namespace {

using kernels::KvCodecId;

struct Options {
  int64_t tokens = 32768;
  int layers = 32;
  int kv_heads = 8;
  int head_dim = 128;
  std::string golden = "tests/data/tiny-llama3";
  int64_t max_chunk_bytes = int64_t{1} << 20;
  int int4_group = kernels::kDefaultInt4GroupTokens;
  int repeats = 3;
  bool gpu = true;
  std::string json;
  // Decode-side check on a real model: prompts of decode_tokens random ids, prefilled on the CPU
  // backend; one decode step over each codec's decoded KV against the step over the exact KV.
  std::string decode_model = "tests/data/tiny-llama3";
  int decode_prompts = 16;
  int64_t decode_tokens = 512;
};

constexpr KvCodecId kCodecs[] = {KvCodecId::kRawBf16, KvCodecId::kLossless, KvCodecId::kFp8E4m3,
                                 KvCodecId::kInt8, KvCodecId::kInt4};

// Accumulated over the layers of one dataset, per codec.
struct Stats {
  double bf16_bytes = 0, payload_bytes = 0;
  double k_err2 = 0, k_ref2 = 0, v_err2 = 0, v_ref2 = 0, a_err2 = 0, a_ref2 = 0;
  double cpu_encode_s = 0, cpu_decode_s = 0;
  double gpu_encode_s = 0;
  bool gpu_ran = false, gpu_bytes_equal = true;
};

// One layer: float32 values that are exactly bf16 (the reference), and their bf16 bits.
struct Layer {
  int64_t tokens;
  int heads, dim;
  std::vector<float> k, v;
  std::vector<uint16_t> kb, vb;
};

Layer FromFloat(int64_t tokens, int heads, int dim, std::vector<float> k, std::vector<float> v) {
  Layer l{tokens, heads, dim, std::move(k), std::move(v), {}, {}};
  l.kb.resize(l.k.size());
  l.vb.resize(l.v.size());
  for (size_t i = 0; i < l.k.size(); ++i) {
    l.kb[i] = kernels::FloatToBf16(l.k[i]);
    l.k[i] = kernels::Bf16ToFloat(l.kb[i]);
    l.vb[i] = kernels::FloatToBf16(l.v[i]);
    l.v[i] = kernels::Bf16ToFloat(l.vb[i]);
  }
  return l;
}

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Attention of one query per head over all tokens: out[h][d].
std::vector<double> AttendOneQuery(const Layer& l, const std::vector<float>& k,
                                   const std::vector<float>& v, const std::vector<float>& q) {
  const int H = l.heads, D = l.dim;
  std::vector<double> out(static_cast<size_t>(H) * D, 0.0), scores(l.tokens);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (int h = 0; h < H; ++h) {
    double mx = -INFINITY;
    for (int64_t t = 0; t < l.tokens; ++t) {
      const float* kr = k.data() + (t * H + h) * D;
      double s = 0;
      for (int d = 0; d < D; ++d) s += static_cast<double>(q[h * D + d]) * kr[d];
      scores[t] = s * scale;
      mx = std::max(mx, scores[t]);
    }
    double sum = 0;
    for (int64_t t = 0; t < l.tokens; ++t) sum += (scores[t] = std::exp(scores[t] - mx));
    for (int64_t t = 0; t < l.tokens; ++t) {
      const float* vr = v.data() + (t * H + h) * D;
      const double p = scores[t] / sum;
      for (int d = 0; d < D; ++d) out[h * D + d] += p * vr[d];
    }
  }
  return out;
}

void AddErr(const std::vector<float>& got, const std::vector<float>& ref, double& e2, double& r2) {
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    e2 += d * d;
    r2 += static_cast<double>(ref[i]) * ref[i];
  }
}

// Encodes, decodes and measures one layer with one codec (and its GPU encoder when asked).
void RunLayer(const Options& o, KvCodecId codec, const Layer& l, const std::vector<float>& q,
              const std::vector<double>& attn_ref, bool gpu, Stats& s) {
  kernels::KvEncodeOptions eo;
  eo.int4_group_tokens = o.int4_group;
  const kernels::KvLayerView view{l.kb.data(), l.vb.data(), kernels::ScalarType::kBFloat16, l.heads,
                                  l.tokens};
  const int64_t tpc =
      kernels::MaxTokensPerChunk(codec, l.tokens, l.heads, l.dim, o.max_chunk_bytes, eo);
  std::vector<kernels::KvChunkExtent> extents;
  for (int64_t t = 0; t < l.tokens; t += tpc) {
    extents.push_back({t, std::min(l.tokens, t + tpc), 0, l.heads, l.dim});
  }
  std::vector<std::string> payloads(extents.size());
  auto t0 = std::chrono::steady_clock::now();
  for (size_t c = 0; c < extents.size(); ++c) {
    const absl::Status st = kernels::EncodeKvChunk(codec, view, extents[c], eo, &payloads[c]);
    if (!st.ok()) {
      std::fprintf(stderr, "encode failed: %s\n", st.ToString().c_str());
      std::exit(1);
    }
  }
  s.cpu_encode_s += Seconds(t0, std::chrono::steady_clock::now());

  std::vector<float> k(l.k.size()), v(l.v.size());
  double best = INFINITY;
  for (int r = 0; r < o.repeats; ++r) {
    t0 = std::chrono::steady_clock::now();
    for (size_t c = 0; c < extents.size(); ++c) {
      const absl::Status st =
          kernels::DecodeKvChunk(codec, payloads[c], l.heads, extents[c], k.data(), v.data());
      if (!st.ok()) {
        std::fprintf(stderr, "decode failed: %s\n", st.ToString().c_str());
        std::exit(1);
      }
    }
    best = std::min(best, Seconds(t0, std::chrono::steady_clock::now()));
  }
  s.cpu_decode_s += best;
  s.bf16_bytes += 2.0 * 2 * static_cast<double>(l.k.size());
  for (const auto& p : payloads) s.payload_bytes += static_cast<double>(p.size());
  AddErr(k, l.k, s.k_err2, s.k_ref2);
  AddErr(v, l.v, s.v_err2, s.v_ref2);
  const std::vector<double> attn = AttendOneQuery(l, k, v, q);
  for (size_t i = 0; i < attn.size(); ++i) {
    s.a_err2 += (attn[i] - attn_ref[i]) * (attn[i] - attn_ref[i]);
    s.a_ref2 += attn_ref[i] * attn_ref[i];
  }
  if (!gpu || l.dim % 4 != 0) return;

  // GPU: the whole layer's chunks in one launch, timed with events (best of the repeats after a
  // warm-up), then every chunk compared with the CPU bytes.
  const size_t stride =
      kernels::cuda::KvEncodedBytesCuda(codec, {0, tpc, 0, l.heads, l.dim}, o.int4_group);
  const size_t elems = l.kb.size();
  void *dk = nullptr, *dv = nullptr, *dout_raw = nullptr;
  const size_t out_bytes = stride * extents.size();
  if (cudaMalloc(&dk, elems * 2) != cudaSuccess || cudaMalloc(&dv, elems * 2) != cudaSuccess ||
      cudaMalloc(&dout_raw, out_bytes) != cudaSuccess) {
    std::fprintf(stderr, "cudaMalloc failed\n");
    std::exit(1);
  }
  uint8_t* dout = static_cast<uint8_t*>(dout_raw);
  cudaMemcpy(dk, l.kb.data(), elems * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dv, l.vb.data(), elems * 2, cudaMemcpyHostToDevice);
  const kernels::cuda::KvDeviceLayer dl{dk, dv, true, l.heads, l.tokens};
  auto launch = [&] {
    return kernels::cuda::EncodeKvLayerCuda(codec, dl, 0, l.tokens, tpc, 0, l.heads, l.dim,
                                            o.int4_group, dout, nullptr);
  };
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  if (launch() != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) {
    std::fprintf(stderr, "GPU encode failed: %s\n", cudaGetErrorString(cudaGetLastError()));
    std::exit(1);
  }
  float best_ms = INFINITY;
  for (int r = 0; r < std::max(5, o.repeats); ++r) {
    cudaEventRecord(a);
    (void)launch();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    best_ms = std::min(best_ms, ms);
  }
  s.gpu_encode_s += best_ms / 1e3;
  s.gpu_ran = true;
  std::vector<uint8_t> host(out_bytes);
  cudaMemcpy(host.data(), dout, out_bytes, cudaMemcpyDeviceToHost);
  for (size_t c = 0; c < extents.size(); ++c) {
    std::string want = payloads[c];
    if (codec == KvCodecId::kLossless) {  // compare the planes
      want.resize(4 * static_cast<size_t>(extents[c].elements_per_tensor()));
      (void)kernels::SplitBf16Planes(view, extents[c], reinterpret_cast<uint8_t*>(want.data()));
    }
    if (std::memcmp(host.data() + c * stride, want.data(), want.size()) != 0) {
      s.gpu_bytes_equal = false;
    }
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaFree(dk);
  cudaFree(dv);
  cudaFree(dout);
}

std::vector<float> RandomQuery(int heads, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(heads) * dim);
  for (float& x : q) x = n(rng);
  return q;
}

void Report(const Options& o, const std::string& dataset, const std::vector<Stats>& stats,
            std::FILE* json) {
  std::printf("\n### %s\n\n", dataset.c_str());
  std::printf(
      "| codec | ratio vs bf16 | K rel err | V rel err | attn rel err | CPU enc GB/s | CPU dec "
      "GB/s/core | GPU enc GB/s | GPU bytes = CPU |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < stats.size(); ++i) {
    const Stats& s = stats[i];
    const char* name = kernels::KvCodecName(kCodecs[i]);
    const double ratio = s.bf16_bytes / s.payload_bytes;
    const double ke = std::sqrt(s.k_err2 / s.k_ref2), ve = std::sqrt(s.v_err2 / s.v_ref2);
    const double ae = std::sqrt(s.a_err2 / s.a_ref2);
    const double enc = s.bf16_bytes / s.cpu_encode_s / 1e9,
                 dec = s.bf16_bytes / s.cpu_decode_s / 1e9;
    char gpu[64] = "-", equal[16] = "-";
    if (s.gpu_ran) {
      std::snprintf(gpu, sizeof gpu, "%.0f%s", s.bf16_bytes / s.gpu_encode_s / 1e9,
                    kCodecs[i] == KvCodecId::kLossless ? " (planes)" : "");
      std::snprintf(equal, sizeof equal, "%s", s.gpu_bytes_equal ? "yes" : "NO");
    }
    std::printf("| %s | %.3f | %.2e | %.2e | %.2e | %.2f | %.2f | %s | %s |\n", name, ratio, ke, ve,
                ae, enc, dec, gpu, equal);
    if (json != nullptr) {
      std::fprintf(json,
                   "{\"dataset\": \"%s\", \"codec\": \"%s\", \"ratio_vs_bf16\": %.4f, "
                   "\"k_rel_err\": %.4e, \"v_rel_err\": %.4e, \"attn_rel_err\": %.4e, "
                   "\"cpu_encode_gbps\": %.3f, \"cpu_decode_gbps_per_core\": %.3f, "
                   "\"gpu_encode_gbps\": %s, \"gpu_bytes_equal\": %s, \"int4_group\": %d, "
                   "\"max_chunk_bytes\": %lld}\n",
                   dataset.c_str(), name, ratio, ke, ve, ae, enc, dec,
                   s.gpu_ran ? std::to_string(s.bf16_bytes / s.gpu_encode_s / 1e9).c_str() : "null",
                   s.gpu_ran ? (s.gpu_bytes_equal ? "true" : "false") : "null", o.int4_group,
                   static_cast<long long>(o.max_chunk_bytes));
    }
  }
  std::fflush(stdout);
}

// Next-token agreement and logits error of one decode step over each codec's decoded KV, against
// the same step over the exact (float32) KV, on `o.decode_prompts` random prompts.
void RunDecodeCheck(const Options& o, std::FILE* json) {
  auto backend = worker::MakeBackend("cpu");
  auto model =
      worker::Model::Load(worker::ModelLoadOptions{o.decode_model, ""}, *std::move(backend));
  if (!model.ok()) {
    std::fprintf(stderr, "decode model: %s\n", model.status().ToString().c_str());
    std::exit(1);
  }
  const worker::ModelConfig& c = (*model)->config();
  const int64_t T = o.decode_tokens;
  std::vector<int> agree(std::size(kCodecs), 0);
  std::vector<double> err2(std::size(kCodecs), 0), ref2(std::size(kCodecs), 0);
  std::mt19937 rng(4242);
  for (int p = 0; p < o.decode_prompts; ++p) {
    std::vector<int32_t> prompt(T);
    for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % c.vocab_size);
    testing::KvCollector kv;
    worker::PrefillOptions options;
    options.kv_sink = &kv;
    auto first = (*model)->Prefill(prompt, options);
    if (!first.ok()) {
      std::fprintf(stderr, "prefill: %s\n", first.status().ToString().c_str());
      std::exit(1);
    }
    auto step = [&](const std::vector<std::vector<float>>& k,
                    const std::vector<std::vector<float>>& v) {
      std::vector<worker::PastKvLayer> past;
      for (int l = 0; l < c.num_layers; ++l) past.push_back({k[l].data(), v[l].data()});
      auto out = (*model)->DecodeStep(past, T, first->first_token);
      if (!out.ok()) {
        std::fprintf(stderr, "decode step: %s\n", out.status().ToString().c_str());
        std::exit(1);
      }
      return *std::move(out);
    };
    const worker::DecodeStepOutput exact = step(kv.k, kv.v);
    for (size_t ci = 0; ci < std::size(kCodecs); ++ci) {
      kernels::KvEncodeOptions eo;
      eo.int4_group_tokens = o.int4_group;
      std::vector<std::vector<float>> k(c.num_layers), v(c.num_layers);
      for (int l = 0; l < c.num_layers; ++l) {
        const kernels::KvLayerView view{kv.k[l].data(), kv.v[l].data(),
                                        kernels::ScalarType::kFloat32, c.num_kv_heads, T};
        k[l].resize(kv.k[l].size());
        v[l].resize(kv.v[l].size());
        const int64_t tpc = kernels::MaxTokensPerChunk(kCodecs[ci], T, c.num_kv_heads, c.head_dim,
                                                       o.max_chunk_bytes, eo);
        for (int64_t t = 0; t < T; t += tpc) {
          const kernels::KvChunkExtent e{t, std::min(T, t + tpc), 0, c.num_kv_heads, c.head_dim};
          std::string payload;
          if (!kernels::EncodeKvChunk(kCodecs[ci], view, e, eo, &payload).ok() ||
              !kernels::DecodeKvChunk(kCodecs[ci], payload, c.num_kv_heads, e, k[l].data(),
                                      v[l].data())
                   .ok()) {
            std::fprintf(stderr, "codec round trip failed\n");
            std::exit(1);
          }
        }
      }
      const worker::DecodeStepOutput got = step(k, v);
      agree[ci] += got.next_token == exact.next_token ? 1 : 0;
      for (size_t i = 0; i < exact.logits.size(); ++i) {
        const double d = static_cast<double>(got.logits[i]) - exact.logits[i];
        err2[ci] += d * d;
        ref2[ci] += static_cast<double>(exact.logits[i]) * exact.logits[i];
      }
    }
  }
  std::printf(
      "\n### decode step on %s: %d random prompts of %lld tokens, KV through each codec\n\n",
      o.decode_model.c_str(), o.decode_prompts, static_cast<long long>(T));
  std::printf("| codec | next token = exact-KV next token | logits rel err |\n|---|---|---|\n");
  for (size_t ci = 0; ci < std::size(kCodecs); ++ci) {
    const double e = std::sqrt(err2[ci] / ref2[ci]);
    std::printf("| %s | %d / %d | %.2e |\n", kernels::KvCodecName(kCodecs[ci]), agree[ci],
                o.decode_prompts, e);
    if (json != nullptr) {
      std::fprintf(json,
                   "{\"dataset\": \"decode step on %s\", \"codec\": \"%s\", \"prompts\": %d, "
                   "\"tokens\": %lld, \"next_token_agree\": %d, \"logits_rel_err\": %.4e}\n",
                   o.decode_model.c_str(), kernels::KvCodecName(kCodecs[ci]), o.decode_prompts,
                   static_cast<long long>(T), agree[ci], e);
    }
  }
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--tokens") {
      o.tokens = std::atoll(value().c_str());
    } else if (a == "--layers") {
      o.layers = std::atoi(value().c_str());
    } else if (a == "--kv-heads") {
      o.kv_heads = std::atoi(value().c_str());
    } else if (a == "--head-dim") {
      o.head_dim = std::atoi(value().c_str());
    } else if (a == "--golden") {
      o.golden = value();
    } else if (a == "--max-chunk-bytes") {
      o.max_chunk_bytes = std::atoll(value().c_str());
    } else if (a == "--int4-group") {
      o.int4_group = std::atoi(value().c_str());
    } else if (a == "--repeats") {
      o.repeats = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--no-gpu") {
      o.gpu = false;
    } else if (a == "--json") {
      o.json = value();
    } else if (a == "--decode-model") {
      o.decode_model = value();
    } else if (a == "--decode-prompts") {
      o.decode_prompts = std::atoi(value().c_str());
    } else if (a == "--decode-tokens") {
      o.decode_tokens = std::atoll(value().c_str());
    } else {
      std::fprintf(stderr,
                   "usage: kvcodec_bench [--tokens N] [--layers L] [--kv-heads H] [--head-dim D] "
                   "[--golden DIR|none] [--max-chunk-bytes B] [--int4-group G] [--repeats R] "
                   "[--no-gpu] [--json PATH] [--decode-model DIR|none] [--decode-prompts N] "
                   "[--decode-tokens T]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  if (o.tokens < 1 || o.layers < 0 || o.kv_heads < 1 || o.head_dim < 2 || o.int4_group < 1) {
    std::fprintf(stderr, "kvcodec_bench: bad sizes\n");
    return 2;
  }
  int devices = 0;
  const bool gpu = o.gpu && cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
  std::string card = "none";
  if (gpu) {
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    card = prop.name;
  }
  std::FILE* json = o.json.empty() ? nullptr : std::fopen(o.json.c_str(), "a");
  std::printf("kvcodec_bench: GPU %s; CPU single thread; int4 group %d; max chunk %lld bytes\n",
              card.c_str(), o.int4_group, static_cast<long long>(o.max_chunk_bytes));

  if (o.layers > 0) {
    std::vector<Stats> stats(std::size(kCodecs));
    for (int layer = 0; layer < o.layers; ++layer) {
      testing::RandomKv kv = testing::MakeOutlierKv(o.tokens, o.kv_heads, o.head_dim, 1000 + layer);
      const Layer l = FromFloat(o.tokens, o.kv_heads, o.head_dim, std::move(kv.k), std::move(kv.v));
      const std::vector<float> q = RandomQuery(o.kv_heads, o.head_dim, 77 + layer);
      const std::vector<double> ref = AttendOneQuery(l, l.k, l.v, q);
      for (size_t c = 0; c < std::size(kCodecs); ++c)
        RunLayer(o, kCodecs[c], l, q, ref, gpu, stats[c]);
      std::fprintf(stderr, "random layer %d/%d done\n", layer + 1, o.layers);
    }
    Report(o,
           "random llama3-8b-shaped KV: " + std::to_string(o.layers) + " layers x " +
               std::to_string(o.tokens) + " tokens x " + std::to_string(o.kv_heads) +
               " KV heads x " + std::to_string(o.head_dim) + " (outlier key channels)",
           stats, json);
  }

  if (o.golden != "none") {
    auto golden = worker::SafetensorsFile::Open(o.golden + "/golden.safetensors");
    if (!golden.ok()) {
      std::fprintf(stderr, "golden: %s\n", golden.status().ToString().c_str());
      return 1;
    }
    std::vector<Stats> stats(std::size(kCodecs));
    int layers = 0;
    int64_t tokens = 0;
    int heads = 0, dim = 0;
    for (;; ++layers) {
      const worker::TensorView* kt = (*golden)->Find("layer." + std::to_string(layers) + ".k");
      const worker::TensorView* vt = (*golden)->Find("layer." + std::to_string(layers) + ".v");
      if (kt == nullptr || vt == nullptr) break;
      tokens = kt->shape[0];
      heads = static_cast<int>(kt->shape[1]);
      dim = static_cast<int>(kt->shape[2]);
      const Layer l = FromFloat(tokens, heads, dim, worker::ToFloat32(*kt).value(),
                                worker::ToFloat32(*vt).value());
      const std::vector<float> q = RandomQuery(heads, dim, 5 + layers);
      const std::vector<double> ref = AttendOneQuery(l, l.k, l.v, q);
      for (size_t c = 0; c < std::size(kCodecs); ++c)
        RunLayer(o, kCodecs[c], l, q, ref, gpu, stats[c]);
    }
    Report(o,
           "golden KV (" + o.golden + "): " + std::to_string(layers) + " layers x " +
               std::to_string(tokens) + " tokens x " + std::to_string(heads) + " KV heads x " +
               std::to_string(dim),
           stats, json);
  }
  if (o.decode_model != "none" && o.decode_prompts > 0) RunDecodeCheck(o, json);
  if (json != nullptr) std::fclose(json);
  return 0;
}

}  // namespace
}  // namespace sparsefill::bench

int main(int argc, char** argv) { return sparsefill::bench::Main(argc, argv); }
