#pragma once

#include <cstdint>

namespace sparsefill::kernels {

// The SwiGLU gate of the Llama MLP: out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)).
// out may alias gate or up. The MLP is down_proj(SwiGluRef(gate_proj(x), up_proj(x))).
void SwiGluRef(const float* gate, const float* up, int64_t n, float* out);

}  // namespace sparsefill::kernels
