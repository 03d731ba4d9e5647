#pragma once

#include <cstddef>
#include <cstdint>

namespace sparsefill::kernels {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF),
// the checksum of every KV payload on the wire. Extend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32c(const void* data, size_t size);
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);

}  // namespace sparsefill::kernels
