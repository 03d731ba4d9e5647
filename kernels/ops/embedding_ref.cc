#include "kernels/ops/embedding_ref.h"

#include <cstring>

namespace sparsefill::kernels {

void EmbeddingRef(const float* table, const int32_t* ids, int64_t tokens, int64_t hidden,
                  float* out) {
  for (int64_t t = 0; t < tokens; ++t) {
    std::memcpy(out + t * hidden, table + static_cast<int64_t>(ids[t]) * hidden,
                sizeof(float) * hidden);
  }
}

}  // namespace sparsefill::kernels
