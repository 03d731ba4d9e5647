// Host API of the CUDA per-token ops (sm_90a): embedding, RMSNorm (plain and fused with the
// residual add), RoPE, SwiGLU (separate and fused gate|up), the residual add, dtype conversions
// and a seeded on-device normal generator. Same contracts as the CPU references next door
// (../embedding_ref.h, ../rmsnorm_ref.h, ../rope_ref.h, ../swiglu_ref.h, ../residual_ref.h), with
// activations stored in bf16 and every kernel computing in float32 and rounding each output once
// (round to nearest even), as PyTorch's bf16 path does.
//
// Every function validates its arguments on the host (cudaErrorInvalidValue, nothing launched),
// returns cudaSuccess without launching for empty inputs, otherwise only launches on `stream` and
// returns the launch's error (cudaGetLastError). None synchronises, allocates or aborts.
// All pointers are device pointers. Sizes are elements, not bytes.
//
// Fast paths use 16-byte accesses; they need 16-byte-aligned pointers and widths that are
// multiples of 8 (every Llama shape, every cudaMalloc'd buffer). Anything else takes a slower
// scalar path with the same results, never an error.
//
// No gRPC/Abseil here: this header is included from .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace sparsefill::kernels::cuda {

// out[t, :] = table[ids[t], :].
//   table: [vocab, hidden] bf16, ids: [tokens] int32 (already validated against vocab: not
//   checked here), out: [tokens, hidden] bf16 (must not overlap table).
// hidden >= 1, tokens >= 0.
cudaError_t EmbeddingLookup(const __nv_bfloat16* table, int64_t hidden, const int32_t* ids,
                            int64_t tokens, __nv_bfloat16* out, cudaStream_t stream);

// Llama RMSNorm, out[r, :] = weight * (x[r, :] * rsqrt(mean(x[r, :]^2) + eps)), the mean of
// squares in float32.
//   x: [rows, hidden] bf16, weight: [hidden] bf16, out: [rows, hidden] bf16 (may be x itself,
//   must not otherwise overlap it).
// rows in [0, 2^31 - 1], hidden >= 1, eps >= 0 finite. Rows of up to 16384 elements are held in
// registers (one read of x); wider rows take a two-pass path.
cudaError_t RmsNorm(const __nv_bfloat16* x, const __nv_bfloat16* weight, int64_t rows,
                    int64_t hidden, float eps, __nv_bfloat16* out, cudaStream_t stream);

// The residual add fused with the next norm:
//   residual[r, :] = bf16(residual[r, :] + x[r, :])      (float32 add, one rounding)
//   out[r, :]      = RmsNorm(residual[r, :])             (of the rounded bf16 values)
// Bit-identical to AddInPlace(residual, x) followed by RmsNorm(residual, weight, out), with one
// pass over the hidden state fewer.
//   residual: [rows, hidden] bf16, read and written; x: [rows, hidden] bf16 (must not overlap
//   residual); weight: [hidden] bf16; out: [rows, hidden] bf16 (may be x itself; must not
//   overlap residual).
// The bit-identity holds when both take the same path (16-byte-aligned pointers, as cudaMalloc
// gives): the paths sum the squares in different orders.
cudaError_t AddRmsNorm(__nv_bfloat16* residual, const __nv_bfloat16* x, const __nv_bfloat16* weight,
                       int64_t rows, int64_t hidden, float eps, __nv_bfloat16* out,
                       cudaStream_t stream);

// Rotary position embedding in place, the rotate_half convention of HF checkpoints: row r is at
// position p = first_position + r, and in every head the pairs (i, i + head_dim/2) rotate by
// angle = float(p) * inv_freq[i], with cosf/sinf in float32 (exact range reduction: correct at
// positions of millions).
//   x: [rows, row_stride] bf16; each row holds [heads, head_dim] at its start, the rest of the
//   row is not touched (so Q or K can be rotated inside a fused QKV buffer; when K directly
//   follows Q, one call with heads = q_heads + kv_heads rotates both).
//   inv_freq: [head_dim / 2] float32, from RopeInverseFrequencies (../rope_ref.h).
// rows in [0, 2^31 - 1], head_dim even in [2, 512], heads in [1, 65536],
// row_stride >= heads * head_dim, first_position >= 0.
cudaError_t ApplyRope(__nv_bfloat16* x, int64_t rows, int heads, int head_dim, int64_t row_stride,
                      const float* inv_freq, int64_t first_position, cudaStream_t stream);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)).
//   gate, up, out: [n] bf16; out may be gate or up (no other overlap).
cudaError_t SwiGlu(const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n,
                   __nv_bfloat16* out, cudaStream_t stream);

// SwiGlu on the output of one fused gate|up GEMM:
//   gate_up: [rows, 2 * inter] bf16, gate in columns [0, inter), up in [inter, 2 * inter);
//   out: [rows, inter] bf16, must not overlap gate_up.
// Bit-identical to SwiGlu on the two halves.
cudaError_t SwiGluFused(const __nv_bfloat16* gate_up, int64_t rows, int64_t inter,
                        __nv_bfloat16* out, cudaStream_t stream);

// acc[i] = bf16(acc[i] + x[i]) (float32 add, one rounding).
//   acc, x: [n] bf16; x may be acc (no other overlap).
cudaError_t AddInPlace(__nv_bfloat16* acc, const __nv_bfloat16* x, int64_t n, cudaStream_t stream);

// x[r, c] = bf16(x[r, c] + bias[c]) for every row (float32 add, one rounding): Qwen2's q/k/v
// biases. x: [rows, cols] bf16; bias: [cols] bf16, not overlapping x.
cudaError_t AddRowBias(__nv_bfloat16* x, const __nv_bfloat16* bias, int64_t rows, int64_t cols,
                       cudaStream_t stream);

// Element type conversions of device arrays ([n] in, [n] out; must not overlap). To bf16 rounds
// to nearest even, as kernels::FloatToBf16 (../numeric.h); to float is exact.
cudaError_t ConvertFloatToBf16(const float* in, int64_t n, __nv_bfloat16* out, cudaStream_t stream);
cudaError_t ConvertHalfToBf16(const __half* in, int64_t n, __nv_bfloat16* out, cudaStream_t stream);
cudaError_t ConvertBf16ToFloat(const __nv_bfloat16* in, int64_t n, float* out, cudaStream_t stream);

// out[i] = bf16(mean + stddev * z_i), z_i standard normal, for random-weight models.
// z_i is a pure function of (seed, i): Philox4x32-10 (key = seed, counter = i / 4) gives four
// uniforms, two Box-Muller pairs give z for i = 4q .. 4q + 3. Same bits for the same
// (seed, i) on every run, stream and launch shape, and for any n (a prefix of a longer fill is
// the shorter fill). |z| is at most ~5.8 (24-bit uniforms).
//   out: [n] bf16. stddev >= 0, mean and stddev finite.
cudaError_t FillRandomNormalBf16(__nv_bfloat16* out, int64_t n, uint64_t seed, float mean,
                                 float stddev, cudaStream_t stream);

}  // namespace sparsefill::kernels::cuda
