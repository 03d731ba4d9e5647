// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// counter-based generator behind cuRAND's and PyTorch's GPU random numbers: a keyed bijection of
// a 128-bit counter, so the numbers at index i need no state and no other index. Written from
// the paper; checked against Random123's known-answer vectors (tests/kernels/gpu/ops_test.cc).
// Host and device code, so the same bits are reproducible on either side.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SF_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SF_HOST_DEVICE inline
#endif

namespace sparsefill::kernels::cuda::ops_detail {

struct Philox4x32 {
  uint32_t v[4];
};

// Multipliers and the key schedule's Weyl increments (golden ratio, sqrt(3) - 1), from the paper.
constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;
constexpr int kPhiloxRounds = 10;

SF_HOST_DEVICE Philox4x32 Philox4x32_10(Philox4x32 ctr, uint32_t key0, uint32_t key1) {
  for (int round = 0; round < kPhiloxRounds; ++round) {
    if (round > 0) {
      key0 += kPhiloxW0;
      key1 += kPhiloxW1;
    }
    // Two 32x32 -> 64-bit products; their halves mix with the other two words and the key.
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * ctr.v[0];
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * ctr.v[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    ctr = Philox4x32{{hi1 ^ ctr.v[1] ^ key0, lo1, hi0 ^ ctr.v[3] ^ key1, lo0}};
  }
  return ctr;
}

// The four outputs for block q of stream `seed`: counter (q_lo, q_hi, 0, 0), key = seed.
SF_HOST_DEVICE Philox4x32 PhiloxBlock(uint64_t seed, uint64_t q) {
  return Philox4x32_10(
      Philox4x32{{static_cast<uint32_t>(q), static_cast<uint32_t>(q >> 32), 0u, 0u}},
      static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

}  // namespace sparsefill::kernels::cuda::ops_detail

#undef SF_HOST_DEVICE
