// GGUF loading on files written by the test: each quant type's dequantization against its
// formula, the header parser and its errors, and the golden model converted to GGUF the way
// llama.cpp's converter does (Q/K permuted) giving transformers' logits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/ops/numeric.h"
#include "tests/kernels/test_util.h"
#include "tests/worker/gguf_golden.h"
#include "tests/worker/gguf_writer.h"
#include "worker/cpu_backend.h"
#include "worker/gguf_file.h"
#include "worker/gguf_quant.h"
#include "worker/gguf_weights.h"
#include "worker/llama_forward.h"
#include "worker/llama_weights.h"
#include "worker/model.h"
#include "worker/safetensors.h"
#include "worker/weight_source.h"

namespace sparsefill::worker {
namespace {

namespace fs = std::filesystem;
using testing::ConverterPermute;
using testing::GgufWriter;
using testing::WriteGoldenAsGguf;

std::string TempPath(const std::string& name) {
  return (fs::temp_directory_path() /
          ("sparsefill-gguf-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

// A positive fp16 scale with a random mantissa, between 2^-8 and 2^-1.
uint16_t RandomHalfBits(std::mt19937& rng) {
  return static_cast<uint16_t>(((7 + rng() % 8) << 10) | (rng() % 1024));
}

void PutHalf(std::vector<uint8_t>& out, uint16_t bits) {
  out.push_back(static_cast<uint8_t>(bits));
  out.push_back(static_cast<uint8_t>(bits >> 8));
}

std::vector<float> Dequantize(GgmlType type, const std::vector<uint8_t>& bytes, int64_t count) {
  std::vector<float> out(count);
  const absl::Status s = DequantizeGgml(type, bytes.data(), count, out.data());
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// --- Dequantization, each type against the formula of its format --------------------------

TEST(GgufQuantTest, Q4_0) {
  std::mt19937 rng(1);
  std::vector<uint8_t> bytes;
  std::vector<float> want;
  for (int b = 0; b < 3; ++b) {
    const uint16_t d = RandomHalfBits(rng);
    int q[32];
    for (int& x : q) x = static_cast<int>(rng() % 16);
    PutHalf(bytes, d);
    for (int j = 0; j < 16; ++j) bytes.push_back(static_cast<uint8_t>(q[j] | (q[j + 16] << 4)));
    for (int i = 0; i < 32; ++i) want.push_back(kernels::Fp16ToFloat(d) * (q[i] - 8));
  }
  EXPECT_EQ(Dequantize(GgmlType::kQ4_0, bytes, 96), want);
}

TEST(GgufQuantTest, Q4_1) {
  std::mt19937 rng(2);
  std::vector<uint8_t> bytes;
  std::vector<float> want;
  for (int b = 0; b < 3; ++b) {
    const uint16_t d = RandomHalfBits(rng);
    const uint16_t m = RandomHalfBits(rng) | 0x8000;  // negative minimum, as usual
    int q[32];
    for (int& x : q) x = static_cast<int>(rng() % 16);
    PutHalf(bytes, d);
    PutHalf(bytes, m);
    for (int j = 0; j < 16; ++j) bytes.push_back(static_cast<uint8_t>(q[j] | (q[j + 16] << 4)));
    for (int i = 0; i < 32; ++i) {
      want.push_back(kernels::Fp16ToFloat(d) * q[i] + kernels::Fp16ToFloat(m));
    }
  }
  EXPECT_EQ(Dequantize(GgmlType::kQ4_1, bytes, 96), want);
}

TEST(GgufQuantTest, Q8_0) {
  std::mt19937 rng(3);
  std::vector<uint8_t> bytes;
  std::vector<float> want;
  for (int b = 0; b < 2; ++b) {
    const uint16_t d = RandomHalfBits(rng);
    PutHalf(bytes, d);
    for (int i = 0; i < 32; ++i) {
      const int q = static_cast<int>(rng() % 255) - 127;
      bytes.push_back(static_cast<uint8_t>(static_cast<int8_t>(q)));
      want.push_back(kernels::Fp16ToFloat(d) * q);
    }
  }
  EXPECT_EQ(Dequantize(GgmlType::kQ8_0, bytes, 64), want);
}

TEST(GgufQuantTest, Q4_K) {
  std::mt19937 rng(4);
  const uint16_t d = RandomHalfBits(rng), dmin = RandomHalfBits(rng);
  int sc[8], mn[8], q[256];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<int>(rng() % 64);
    mn[j] = static_cast<int>(rng() % 64);
  }
  for (int& x : q) x = static_cast<int>(rng() % 16);
  std::vector<uint8_t> bytes;
  PutHalf(bytes, d);
  PutHalf(bytes, dmin);
  // Scales and mins of sub-blocks 0-3 in the low 6 bits of bytes 0-3 and 4-7; those of 4-7 split
  // into a low nibble (bytes 8-11: scale low, min high) and two top bits (bytes 0-3 and 4-7).
  uint8_t packed[12];
  for (int j = 0; j < 4; ++j) {
    packed[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    packed[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    packed[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
  bytes.insert(bytes.end(), packed, packed + 12);
  // Each group of 64 weights: 32 bytes, low nibbles = the first 32, high = the next 32.
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l) {
      bytes.push_back(static_cast<uint8_t>(q[64 * g + l] | (q[64 * g + 32 + l] << 4)));
    }
  }
  ASSERT_EQ(bytes.size(), 144u);
  std::vector<float> want;
  const float fd = kernels::Fp16ToFloat(d), fmin = kernels::Fp16ToFloat(dmin);
  for (int i = 0; i < 256; ++i) {
    want.push_back(fd * static_cast<float>(sc[i / 32]) * static_cast<float>(q[i]) -
                   fmin * static_cast<float>(mn[i / 32]));
  }
  EXPECT_EQ(Dequantize(GgmlType::kQ4_K, bytes, 256), want);
}

TEST(GgufQuantTest, Q6_K) {
  std::mt19937 rng(5);
  const uint16_t d = RandomHalfBits(rng);
  int q[256];
  int8_t sc[16];
  for (int& x : q) x = static_cast<int>(rng() % 64);
  for (int8_t& s : sc) s = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  std::vector<uint8_t> ql(128, 0), qh(64, 0);
  // Weight i = 128 * half + 32 * k + l: low 4 bits in ql[64 * half + l + 32 * (k & 1)] (low
  // nibble for k < 2), top 2 bits at bit 2k of qh[32 * half + l].
  for (int i = 0; i < 256; ++i) {
    const int half = i / 128, k = (i % 128) / 32, l = i % 32;
    uint8_t& lo = ql[64 * half + l + 32 * (k & 1)];
    lo |= static_cast<uint8_t>((q[i] & 15) << (k < 2 ? 0 : 4));
    qh[32 * half + l] |= static_cast<uint8_t>((q[i] >> 4) << (2 * k));
  }
  std::vector<uint8_t> bytes = ql;
  bytes.insert(bytes.end(), qh.begin(), qh.end());
  for (int8_t s : sc) bytes.push_back(static_cast<uint8_t>(s));
  PutHalf(bytes, d);
  ASSERT_EQ(bytes.size(), 210u);
  std::vector<float> want;
  for (int i = 0; i < 256; ++i) {
    want.push_back(kernels::Fp16ToFloat(d) * static_cast<float>(sc[i / 16]) *
                   static_cast<float>(q[i] - 32));
  }
  EXPECT_EQ(Dequantize(GgmlType::kQ6_K, bytes, 256), want);
}

TEST(GgufQuantTest, FloatTypes) {
  const std::vector<float> values = {1.5f, -2.25f, 0.0f, 65504.0f};
  std::vector<uint8_t> f32(16), f16, bf16;
  std::memcpy(f32.data(), values.data(), 16);
  for (uint16_t h : {0x3E00, 0xC080, 0x0000, 0x7BFF}) PutHalf(f16, static_cast<uint16_t>(h));
  for (float v : values) PutHalf(bf16, kernels::FloatToBf16(v));
  EXPECT_EQ(Dequantize(GgmlType::kF32, f32, 4), values);
  EXPECT_EQ(Dequantize(GgmlType::kF16, f16, 4), values);
  const std::vector<float> bf = Dequantize(GgmlType::kBF16, bf16, 4);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bf[i], values[i]);
}

TEST(GgufQuantTest, UnsupportedTypeAndPartialBlockAreErrors) {
  std::vector<uint8_t> bytes(64);
  std::vector<float> out(64);
  const absl::Status q5 = DequantizeGgml(GgmlType::kQ5_K, bytes.data(), 256, out.data());
  EXPECT_EQ(q5.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(q5.message().find("Q5_K"), std::string::npos) << q5;
  EXPECT_FALSE(DequantizeGgml(GgmlType::kQ8_0, bytes.data(), 33, out.data()).ok());
}

// --- The header parser ------------------------------------------------------------------

TEST(GgufFileTest, ReadsMetadataAndTensors) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddUint32("llama.block_count", 7);
  w.AddFloat32("llama.rope.freq_base", 100000.0f);
  w.AddBool("tokenizer.ggml.add_bos_token", true);
  w.AddStringArray("tokenizer.ggml.tokens", {"a", "b",
                                             "\xc4\xa0"
                                             "c"});
  w.AddInt32Array("tokenizer.ggml.token_type", {1, 3, -1});
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  w.AddF32Tensor("t.weight", {3, 2}, values);
  w.AddF32Tensor("u.weight", {1}, {9});
  const std::string path = TempPath("meta.gguf");
  ASSERT_TRUE(w.Write(path));
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->version(), 3u);
  EXPECT_EQ((*file)->GetString("general.architecture").value(), "llama");
  EXPECT_EQ((*file)->GetInt("llama.block_count").value(), 7);
  EXPECT_EQ((*file)->GetFloat("llama.rope.freq_base").value(), 100000.0);
  EXPECT_TRUE((*file)->GetBool("tokenizer.ggml.add_bos_token").value());
  auto tokens = (*file)->GetArray("tokenizer.ggml.tokens", GgufValueType::kString);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ((*tokens)->items.size(), 3u);
  EXPECT_EQ(std::get<std::string>((*tokens)->items[2].value),
            "\xc4\xa0"
            "c");
  auto types = (*file)->GetArray("tokenizer.ggml.token_type", GgufValueType::kInt64);
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_EQ(std::get<int64_t>((*types)->items[2].value), -1);

  const GgufTensorInfo* t = (*file)->FindTensor("t.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->RowMajorShape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->nbytes, 24u);
  EXPECT_EQ(std::memcmp(t->data, values.data(), 24), 0);
  const GgufTensorInfo* u = (*file)->FindTensor("u.weight");
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(u->data) % 32, 0u) << "tensor data aligned to 32";

  // Typed getters name the key.
  const absl::Status missing = (*file)->GetInt("llama.context_length").status();
  EXPECT_NE(missing.message().find("'llama.context_length' is missing"), std::string::npos)
      << missing;
  const absl::Status wrong = (*file)->GetInt("general.architecture").status();
  EXPECT_NE(wrong.message().find("must be an integer, got string"), std::string::npos) << wrong;
  fs::remove(path);
}

absl::Status OpenBytes(const std::vector<uint8_t>& bytes, const std::string& name) {
  const std::string path = TempPath(name);
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  }
  absl::Status s = GgufFile::Open(path).status();
  fs::remove(path);
  return s;
}

TEST(GgufFileTest, MalformedFilesGiveErrorsNamingThePart) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddF32Tensor("blk.0.attn_norm.weight", {64}, std::vector<float>(64, 1.0f));
  const std::vector<uint8_t> good = w.Bytes();
  ASSERT_TRUE(OpenBytes(good, "good.gguf").ok());

  std::vector<uint8_t> magic = good;
  magic[0] = 'X';
  EXPECT_NE(OpenBytes(magic, "magic.gguf").message().find("no 'GGUF' magic"), std::string::npos);

  std::vector<uint8_t> version = good;
  version[4] = 9;
  EXPECT_NE(OpenBytes(version, "version.gguf").message().find("version 9"), std::string::npos);

  // Cut inside the tensor data: the error names the tensor.
  std::vector<uint8_t> truncated(good.begin(), good.end() - 8);
  const absl::Status t = OpenBytes(truncated, "truncated.gguf");
  EXPECT_EQ(t.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(t.message().find("'blk.0.attn_norm.weight'"), std::string::npos) << t;

  // Cut inside the header, in the value of the first key (24-byte preamble, 8 + 20 bytes of key,
  // 4 of type): the error names the key being read.
  std::vector<uint8_t> header_cut(good.begin(), good.begin() + 60);
  const absl::Status h = OpenBytes(header_cut, "header.gguf");
  EXPECT_EQ(h.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(h.message().find("general.architecture"), std::string::npos) << h;

  GgufWriter bad_type;
  bad_type.AddTensor("x.weight", 77, {32}, std::vector<uint8_t>(128));
  const absl::Status bt = OpenBytes(bad_type.Bytes(), "type.gguf");
  EXPECT_NE(bt.message().find("'x.weight': unknown ggml type 77"), std::string::npos) << bt;

  GgufWriter partial_block;
  partial_block.AddTensor("q.weight", 8, {48}, std::vector<uint8_t>(34 * 2));
  const absl::Status pb = OpenBytes(partial_block.Bytes(), "block.gguf");
  EXPECT_NE(pb.message().find("'q.weight'"), std::string::npos) << pb;

  GgufWriter bad_value;
  bad_value.AddRaw("general.weird", 99, {0, 0, 0, 0});
  const absl::Status bv = OpenBytes(bad_value.Bytes(), "value.gguf");
  EXPECT_NE(bv.message().find("'general.weird': unknown value type 99"), std::string::npos) << bv;
}

TEST(GgufFileTest, RandomCorruptionsGiveErrorsNotCrashes) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddUint32("llama.block_count", 2);
  w.AddStringArray("tokenizer.ggml.tokens", {"a", "b", "c"});
  w.AddF32Tensor("blk.0.attn_norm.weight", {64}, std::vector<float>(64, 1.0f));
  w.AddTensor("blk.0.attn_q.weight", 8, {64, 2}, std::vector<uint8_t>(34 * 4, 1));
  const std::vector<uint8_t> good = w.Bytes();
  std::mt19937 rng(11);
  int opened = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<uint8_t> bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly in the header, where lengths and counts live.
      const size_t at = rng() % std::min<size_t>(bytes.size(), 256);
      bytes[at] = static_cast<uint8_t>(rng());
    }
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    const absl::Status s = OpenBytes(bytes, "fuzz.gguf");
    opened += s.ok();
    if (!s.ok()) {
      EXPECT_NE(s.message().find("fuzz.gguf"), std::string::npos) << s;
    }
  }
  EXPECT_LT(opened, 300);
}

// --- Q/K permutation -------------------------------------------------------------------------

TEST(GgufWeightsTest, UnpermuteInvertsTheConverter) {
  for (auto [heads, head_dim, cols] : {std::tuple{3, 64, 5}, std::tuple{1, 8, 1}}) {
    const std::vector<float> hf =
        testing::RandomVector(static_cast<size_t>(heads) * head_dim * cols, 7);
    std::vector<float> stored = ConverterPermute(hf, heads, head_dim, cols);
    EXPECT_NE(stored, hf);
    UnpermuteLlamaQK(heads, head_dim, cols, stored.data());
    EXPECT_EQ(stored, hf) << heads << " heads of " << head_dim;
  }
}

TEST(GgufWeightsTest, TensorNames) {
  EXPECT_EQ(HuggingFaceTensorName("token_embd.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(HuggingFaceTensorName("blk.12.attn_q.weight"),
            "model.layers.12.self_attn.q_proj.weight");
  EXPECT_EQ(HuggingFaceTensorName("blk.3.ffn_norm.weight"),
            "model.layers.3.post_attention_layernorm.weight");
  EXPECT_EQ(HuggingFaceTensorName("blk.0.attn_v.bias"), "model.layers.0.self_attn.v_proj.bias");
  EXPECT_EQ(HuggingFaceTensorName("output.weight"), "lm_head.weight");
  EXPECT_EQ(HuggingFaceTensorName("blk.x.attn_q.weight"), "");
  EXPECT_EQ(HuggingFaceTensorName("rope_freqs.weight"), "");
}

// --- The golden model as GGUF ------------------------------------------------------------------

std::vector<float> GoldenLogits(std::vector<int32_t>* ids,
                                const std::string& name = "tiny-llama2-mha") {
  const std::string dir = std::string(SPARSEFILL_TEST_DATA_DIR) + "/" + name;
  auto golden = SafetensorsFile::Open(dir + "/golden.safetensors").value();
  const TensorView* ids_view = golden->Find("input_ids");
  ids->resize(ids_view->numel());
  std::memcpy(ids->data(), ids_view->data, ids->size() * 4);
  return ToFloat32(*golden->Find("logits_last")).value();
}

TEST(GgufModelTest, GoldenModelAsGgufMatchesTransformers) {
  const std::string path = TempPath("golden.gguf");
  WriteGoldenAsGguf(path, /*q8=*/false);
  auto model = Model::Load(ModelLoadOptions{"gguf:" + path, ""}, MakeCpuBackend());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE((*model)->config().tie_word_embeddings);
  EXPECT_EQ((*model)->config().head_dim, 64);
  std::vector<int32_t> ids;
  const std::vector<float> want = GoldenLogits(&ids);
  auto out = (*model)->Prefill(ids, PrefillOptions{});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_LT(testing::RelativeError(out->logits_last, want), 1e-4);
  fs::remove(path);
}

TEST(GgufModelTest, PatternConfigBesideTheFileIsTheModels) {
  const std::string path = TempPath("patterns.gguf");
  const std::string patterns = TempPath("patterns.sparsefill_patterns.json");
  WriteGoldenAsGguf(path, /*q8=*/false);
  std::ofstream(patterns) << R"({"default": {"type": "a_shape", "n_init": 4, "n_local": 60}})";
  auto model = Model::Load(ModelLoadOptions{"gguf:" + path, ""}, MakeCpuBackend());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->sparse_patterns().layer(1)[2], HeadPattern::AShape(4, 60));
  fs::remove(patterns);
  auto without = Model::Load(ModelLoadOptions{"gguf:" + path, ""}, MakeCpuBackend());
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ((*without)->sparse_patterns().layer(1)[2], HeadPattern::VerticalSlash(1000, 6096));
  fs::remove(path);
}

TEST(GgufModelTest, Qwen2GoldenModelAsGgufMatchesTransformers) {
  const std::string path = TempPath("qwen2.gguf");
  WriteGoldenAsGguf(path, /*q8=*/false, {}, "tiny-qwen2");
  auto model = Model::Load(ModelLoadOptions{path, ""}, MakeCpuBackend());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->config().model_type, "qwen2");
  EXPECT_TRUE((*model)->config().qkv_bias);
  EXPECT_FALSE((*model)->config().tie_word_embeddings);
  std::vector<int32_t> ids;
  const std::vector<float> want = GoldenLogits(&ids, "tiny-qwen2");
  auto out = (*model)->Prefill(ids, PrefillOptions{});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_LT(testing::RelativeError(out->logits_last, want), 1e-4);
  fs::remove(path);
}

TEST(GgufModelTest, WithoutUnpermutingTheLogitsWouldDiffer) {
  // Guards the test above: the permutation matters for this model, so a loader that skipped
  // UnpermuteLlamaQK would fail it.
  const std::string dir = std::string(SPARSEFILL_TEST_DATA_DIR) + "/tiny-llama2-mha";
  const ModelConfig c = ModelConfig::FromFile(dir + "/config.json").value();
  auto st = SafetensorsFile::Open(dir + "/model.safetensors").value();
  InMemoryWeights permuted("permuted");
  for (const TensorView& t : st->tensors()) {
    std::vector<float> v = ToFloat32(t).value();
    if (t.name.find("q_proj") != std::string::npos || t.name.find("k_proj") != std::string::npos) {
      v = ConverterPermute(v, c.num_heads, c.head_dim, t.shape[1]);
    }
    std::vector<uint8_t> bytes(v.size() * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
    permuted.Add(t.name, ScalarType::kFloat32, t.shape, std::move(bytes));
  }
  auto backend = MakeCpuBackend();
  auto weights = LoadLlamaWeights(c, permuted, *backend);
  ASSERT_TRUE(weights.ok()) << weights.status();
  std::vector<int32_t> ids;
  const std::vector<float> want = GoldenLogits(&ids);
  auto out = RunLlamaPrefill(*backend, c, *weights, ids, PrefillOptions{});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_GT(testing::RelativeError(out->logits_last, want), 1e-2);
}

TEST(GgufModelTest, Q8_0GoldenModelStaysClose) {
  const std::string path = TempPath("golden-q8.gguf");
  WriteGoldenAsGguf(path, /*q8=*/true);
  auto model = Model::Load(ModelLoadOptions{"gguf:" + path, ""}, MakeCpuBackend());
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<int32_t> ids;
  const std::vector<float> want = GoldenLogits(&ids);
  auto out = (*model)->Prefill(ids, PrefillOptions{});
  ASSERT_TRUE(out.ok()) << out.status();
  const double err = testing::RelativeError(out->logits_last, want);
  EXPECT_GT(err, 1e-6) << "Q8_0 weights should not be exact";
  // 8-bit weights with fp16 block scales through two layers of a random model: a few percent.
  EXPECT_LT(err, 5e-2);
  fs::remove(path);
}

TEST(GgufModelTest, ErrorsNameTheKeyOrTensor) {
  GgufWriter w;
  w.AddString("general.architecture", "gptneox");
  const std::string path = TempPath("arch.gguf");
  ASSERT_TRUE(w.Write(path));
  auto model = Model::Load(ModelLoadOptions{"gguf:" + path, ""}, MakeCpuBackend());
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("'general.architecture' is 'gptneox'"), std::string::npos)
      << model.status();

  // A missing model file (with or without the gguf: prefix): NOT_FOUND naming the file and the
  // script that fetches it (what sparsefill-server and `sparsefill run` print before exiting 1).
  for (const std::string name : {"gguf:/nonexistent/m.gguf", "/nonexistent/m.gguf"}) {
    auto missing = Model::Load(ModelLoadOptions{name, ""}, MakeCpuBackend());
    ASSERT_FALSE(missing.ok()) << name;
    EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
    EXPECT_NE(missing.status().message().find("/nonexistent/m.gguf does not exist"),
              std::string::npos)
        << missing.status();
    EXPECT_NE(missing.status().message().find("run deploy/fetch_models.sh"), std::string::npos)
        << missing.status();
  }

  GgufWriter extra;
  extra.AddString("general.architecture", "llama");
  extra.AddUint32("llama.block_count", 1);
  extra.AddUint32("llama.embedding_length", 64);
  extra.AddUint32("llama.feed_forward_length", 128);
  extra.AddUint32("llama.attention.head_count", 2);
  extra.AddFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  extra.AddF32Tensor("token_embd.weight", {64, 16}, std::vector<float>(64 * 16, 0.5f));
  extra.AddF32Tensor("blk.0.attn_mystery.weight", {64}, std::vector<float>(64, 1.0f));
  ASSERT_TRUE(extra.Write(path));
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto config = ModelConfigFromGguf(**file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->vocab_size, 16);
  EXPECT_EQ(config->head_dim, 32);
  EXPECT_TRUE(config->tie_word_embeddings);
  auto weights = GgufWeights::Load(**file, *config);
  ASSERT_FALSE(weights.ok());
  EXPECT_NE(weights.status().message().find("'blk.0.attn_mystery.weight'"), std::string::npos)
      << weights.status();
  fs::remove(path);
}

}  // namespace
}  // namespace sparsefill::worker
