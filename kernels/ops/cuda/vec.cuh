// Register vectors and the memory-access helpers shared by the per-token op kernels.
// These kernels are memory-bound: what matters is that each thread moves 16 bytes per load or
// store instruction (LDG.E.128 / STG.E.128 in SASS), coalesced across the warp, and that it has
// several loads in flight before the first use. Vec<T, N> is the unit of that access.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>

namespace sparsefill::kernels::cuda::ops_detail {

using bf16 = __nv_bfloat16;

// The widest access one thread issues in one instruction on sm_90.
constexpr int kVectorBytes = 16;
// bf16 elements per 16-byte access: the vector width of every bf16 fast path.
constexpr int kBf16PerVector = kVectorBytes / static_cast<int>(sizeof(bf16));
static_assert(kBf16PerVector == 8, "a 16-byte access holds 8 bf16");

// N consecutive elements, aligned so that N * sizeof(T) <= 16 bytes moves in one instruction
// (wider vectors, like 8 floats, in 16-byte pieces).
template <typename T, int N>
struct alignas(sizeof(T) * N >= kVectorBytes ? kVectorBytes : sizeof(T) * N) Vec {
  static_assert(N >= 1 && (N & (N - 1)) == 0, "vector widths are powers of two");
  T v[N];
};

inline bool IsAligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// True when [a, a + a_bytes) and [b, b + b_bytes) share a byte.
inline bool Overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
  return a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

// 16-byte vectors move as uint4. Stores go through st.global.v4.b32 in inline PTX: storing the
// struct or a uint4 built from bf16 halves, NVVM split some of them into four 4-byte stores
// (CUDA 13.0, SwiGLU and embedding: st.global.v2.u16 x 4 in the PTX).
template <typename T, int N>
constexpr bool kIs16Bytes = sizeof(Vec<T, N>) == kVectorBytes;

// Plain load: for data this launch may also write (in-place ops), so no read-only cache path.
template <int N, typename T>
__device__ __forceinline__ Vec<T, N> Load(const T* p) {
  if constexpr (kIs16Bytes<T, N>) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    Vec<T, N> r;
    std::memcpy(&r, &u, sizeof r);
    return r;
  } else {
    return *reinterpret_cast<const Vec<T, N>*>(p);
  }
}

// Read-only load (LDG.E.CONSTANT): only for data no thread of the launch writes, like weights
// and the embedding table.
template <int N, typename T>
__device__ __forceinline__ Vec<T, N> LoadReadOnly(const T* p) {
  Vec<T, N> r;
  if constexpr (kIs16Bytes<T, N>) {
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    std::memcpy(&r, &u, sizeof r);
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) r.v[i] = __ldg(p + i);
  }
  return r;
}

template <int N, typename T>
__device__ __forceinline__ void Store(T* p, const Vec<T, N>& v) {
  if constexpr (kIs16Bytes<T, N>) {
    uint4 u;
    std::memcpy(&u, &v, sizeof u);
    // The "memory" clobber keeps it ordered with the plain loads and stores around it, as a
    // C++ store would be.
    asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(u.x), "r"(u.y), "r"(u.z),
                 "r"(u.w)
                 : "memory");
  } else {
    *reinterpret_cast<Vec<T, N>*>(p) = v;
  }
}

// Element conversions to and from the float32 the kernels compute in. To bf16 is round to
// nearest even (cvt.rn), the rounding of kernels::FloatToBf16 and of PyTorch.
__device__ __forceinline__ float ToF32(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float ToF32(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToF32(float x) { return x; }

template <typename T>
__device__ __forceinline__ T FromF32(float x);
template <>
__device__ __forceinline__ bf16 FromF32<bf16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ float FromF32<float>(float x) {
  return x;
}

template <int N, typename T>
__device__ __forceinline__ void ToF32(const Vec<T, N>& in, float (&out)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = ToF32(in.v[i]);
}

template <typename T, int N>
__device__ __forceinline__ Vec<T, N> FromF32(const float (&in)[N]) {
  Vec<T, N> out;
#pragma unroll
  for (int i = 0; i < N; ++i) out.v[i] = FromF32<T>(in[i]);
  return out;
}

// Sum over the 32 lanes of a warp by XOR butterfly: every lane gets the same bits, the order of
// additions is fixed (results do not depend on which rows share a launch).
__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

}  // namespace sparsefill::kernels::cuda::ops_detail
