#pragma once

#include <cstdint>

namespace sparsefill::kernels {

// out[t, :] = table[ids[t], :]. Ids are trusted here; callers validate them against the vocab.
//   table: [vocab, hidden] float32, ids: [tokens] int32, out: [tokens, hidden] float32.
void EmbeddingRef(const float* table, const int32_t* ids, int64_t tokens, int64_t hidden,
                  float* out);

}  // namespace sparsefill::kernels
