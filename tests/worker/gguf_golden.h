// The golden tiny-llama2-mha checkpoint written as a GGUF file the way llama.cpp's converter
// writes a Llama model (GGUF tensor names, Q/K rows permuted), for the GGUF and CLI tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kernels/ops/numeric.h"
#include "tests/worker/gguf_writer.h"
#include "worker/model_config.h"
#include "worker/safetensors.h"
#include "worker/weight_source.h"

namespace sparsefill::testing {

using worker::ModelConfig;
using worker::SafetensorsFile;
using worker::TensorView;
using worker::ToFloat32;

inline void PutHalfBits(std::vector<uint8_t>& out, uint16_t bits) {
  out.push_back(static_cast<uint8_t>(bits));
  out.push_back(static_cast<uint8_t>(bits >> 8));
}

// llama.cpp's converter: w.reshape(heads, 2, head_dim / 2, cols).swapaxes(1, 2).reshape(w.shape).
inline std::vector<float> ConverterPermute(const std::vector<float>& w, int heads, int head_dim,
                                           int64_t cols) {
  std::vector<float> out(w.size());
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    for (int j = 0; j < half; ++j) {
      for (int i = 0; i < 2; ++i) {
        const int64_t dst = (static_cast<int64_t>(h) * head_dim + j * 2 + i) * cols;
        const int64_t src = (static_cast<int64_t>(h) * head_dim + i * half + j) * cols;
        std::copy(w.begin() + src, w.begin() + src + cols, out.begin() + dst);
      }
    }
  }
  return out;
}

// HF -> GGUF names, as the converter writes them.
inline std::string GgufName(const std::string& hf) {
  static const std::pair<const char*, const char*> kLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  const std::string prefix = "model.layers.";
  const size_t dot = hf.find('.', prefix.size());
  const std::string layer = hf.substr(prefix.size(), dot - prefix.size());
  const std::string rest = hf.substr(dot + 1);
  for (const auto& [from, to] : kLayer) {
    if (rest == from) return "blk." + layer + "." + to;
  }
  ADD_FAILURE() << "unmapped tensor " << hf;
  return hf;
}

// Q8_0 blocks of `values`: d = max|x| / 127 truncated to fp16, q = round(x / d).
inline std::vector<uint8_t> QuantizeQ8_0(const std::vector<float>& values) {
  std::vector<uint8_t> out;
  for (size_t b = 0; b < values.size(); b += 32) {
    float amax = 0;
    for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(values[b + i]));
    // fp16 of d: build through the exponent/mantissa of a float (d is normal here).
    const float d = amax / 127.0f;
    uint32_t bits;
    std::memcpy(&bits, &d, 4);
    const int exponent = static_cast<int>((bits >> 23) & 0xff) - 127 + 15;
    const uint16_t half =
        d == 0 ? 0 : static_cast<uint16_t>((exponent << 10) | ((bits >> 13) & 0x3ff));
    const float dq = kernels::Fp16ToFloat(half);
    PutHalfBits(out, half);
    for (size_t i = 0; i < 32; ++i) {
      const float q = dq == 0 ? 0 : std::nearbyint(values[b + i] / dq);
      out.push_back(static_cast<uint8_t>(static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f))));
    }
  }
  return out;
}

// Writes a golden checkpoint with default RoPE (tiny-llama2-mha: tied embeddings, MHA, head_dim
// 64; tiny-qwen2: q/k/v biases, GQA) as a GGUF file: metadata from its config, Llama Q/K
// permuted as the converter does (Qwen2's are not), 2-D weights as F32 or Q8_0.
inline void WriteGoldenAsGguf(const std::string& path, bool q8,
                              const std::function<void(GgufWriter&)>& add_metadata = {},
                              const std::string& golden = "tiny-llama2-mha") {
  const std::string dir = std::string(SPARSEFILL_TEST_DATA_DIR) + "/" + golden;
  const ModelConfig c = ModelConfig::FromFile(dir + "/config.json").value();
  auto st = SafetensorsFile::Open(dir + "/model.safetensors").value();
  GgufWriter w;
  const std::string arch = c.model_type;
  w.AddString("general.architecture", arch);
  w.AddUint32(arch + ".block_count", c.num_layers);
  w.AddUint32(arch + ".context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.AddUint32(arch + ".embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.AddUint32(arch + ".feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.AddUint32(arch + ".attention.head_count", c.num_heads);
  w.AddUint32(arch + ".attention.head_count_kv", c.num_kv_heads);
  w.AddFloat32(arch + ".rope.freq_base", c.rope.theta);
  w.AddFloat32(arch + ".attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  w.AddUint32(arch + ".rope.dimension_count", c.head_dim);
  w.AddUint32(arch + ".attention.key_length", c.head_dim);
  w.AddUint32(arch + ".vocab_size", static_cast<uint32_t>(c.vocab_size));
  if (add_metadata) add_metadata(w);
  for (const TensorView& t : st->tensors()) {
    std::vector<float> v = ToFloat32(t).value();
    const bool is_q = t.name.find("q_proj") != std::string::npos;
    const bool is_k = t.name.find("k_proj") != std::string::npos;
    if ((is_q || is_k) && t.shape.size() == 2 && arch == "llama") {
      v = ConverterPermute(v, is_q ? c.num_heads : c.num_kv_heads, c.head_dim, t.shape[1]);
    }
    std::vector<uint64_t> dims(t.shape.rbegin(), t.shape.rend());
    if (q8 && t.shape.size() == 2) {
      w.AddTensor(GgufName(t.name), 8, dims, QuantizeQ8_0(v));
    } else {
      w.AddF32Tensor(GgufName(t.name), dims, v);
    }
  }
  ASSERT_TRUE(w.Write(path));
}

}  // namespace sparsefill::testing
