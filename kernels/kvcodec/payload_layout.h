// Byte layout of the compressed KV payloads (LOSSLESS, FP8_E4M3, INT8, INT4), as specified in
// proto/sparsefill/v1/prefill_service.proto: the 8-byte header and the offset of every section.
// Shared by the CPU codecs and the CUDA encoders (no Abseil, no CUDA headers).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sparsefill::kernels {

// The codec numbers are those of the proto's KvCodec enum.
enum class KvCodecId : uint8_t {
  kRawBf16 = 1,
  kRawFp32 = 2,
  kLossless = 3,
  kFp8E4m3 = 4,
  kInt8 = 5,
  kInt4 = 6,
};

// Header of every compressed payload:
//   byte 0-1  magic 'K' 'V' (0x4b 0x56)
//   byte 2    codec (the KvCodec number)
//   byte 3    layout version, 1
//   byte 4-5  codec parameter, uint16 little-endian: INT4's group size G in tokens, else 0
//   byte 6-7  zero
inline constexpr size_t kKvHeaderBytes = 8;
inline constexpr uint8_t kKvMagic0 = 0x4b, kKvMagic1 = 0x56;
inline constexpr uint8_t kKvLayoutVersion = 1;

inline void WriteKvHeader(uint8_t* out, KvCodecId codec, uint16_t param) {
  out[0] = kKvMagic0;
  out[1] = kKvMagic1;
  out[2] = static_cast<uint8_t>(codec);
  out[3] = kKvLayoutVersion;
  out[4] = static_cast<uint8_t>(param);
  out[5] = static_cast<uint8_t>(param >> 8);
  out[6] = 0;
  out[7] = 0;
}

// The shape of one chunk: T tokens x H heads x D channels for each of K and V.
struct ChunkDims {
  int64_t tokens = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  constexpr int64_t rows() const { return tokens * heads; }  // (token, head) rows
  constexpr int64_t elements() const { return rows() * head_dim; }
};

// FP8_E4M3 and INT8: header, K scales f32 [T][H], V scales f32 [T][H], K codes [T][H][D] (1 byte
// each), V codes [T][H][D].
struct ScaledByteLayout {
  int64_t k_scales, v_scales, k_codes, v_codes, total;
  static constexpr ScaledByteLayout For(const ChunkDims& d) {
    ScaledByteLayout l{};
    l.k_scales = static_cast<int64_t>(kKvHeaderBytes);
    l.v_scales = l.k_scales + 4 * d.rows();
    l.k_codes = l.v_scales + 4 * d.rows();
    l.v_codes = l.k_codes + d.elements();
    l.total = l.v_codes + d.elements();
    return l;
  }
};

// INT4 with group size G (head_dim even): header, K mins bf16 [ceil(T/G)][H][D], K scales bf16
// [ceil(T/G)][H][D], V mins bf16 [T][H], V scales bf16 [T][H], K codes [T][H][D/2], V codes
// [T][H][D/2] (two 4-bit codes a byte: element 2i in the low nibble, 2i+1 in the high nibble).
struct Int4Layout {
  int64_t groups, k_mins, k_scales, v_mins, v_scales, k_codes, v_codes, total;
  static constexpr Int4Layout For(const ChunkDims& d, int64_t group_tokens) {
    Int4Layout l{};
    l.groups = (d.tokens + group_tokens - 1) / group_tokens;
    const int64_t k_params = l.groups * d.heads * d.head_dim;
    l.k_mins = static_cast<int64_t>(kKvHeaderBytes);
    l.k_scales = l.k_mins + 2 * k_params;
    l.v_mins = l.k_scales + 2 * k_params;
    l.v_scales = l.v_mins + 2 * d.rows();
    l.k_codes = l.v_scales + 2 * d.rows();
    l.v_codes = l.k_codes + d.elements() / 2;
    l.total = l.v_codes + d.elements() / 2;
    return l;
  }
};

// INT4's group size when the encoder is not told otherwise: 64 tokens keeps the per-channel key
// parameters at 0.5 bit per element (3.66x smaller than bf16 at head_dim 128).
inline constexpr int kDefaultInt4GroupTokens = 64;
inline constexpr int kMaxInt4GroupTokens = 65535;

}  // namespace sparsefill::kernels
