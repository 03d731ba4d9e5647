# CUDA sources of the per-token ops (embedding, RMSNorm, RoPE, SwiGLU, residual, conversions,
# random fill) in sparsefill_kernels_cuda (included from kernels/CMakeLists.txt).
target_sources(sparsefill_kernels_cuda PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/embedding.cu
  ${CMAKE_CURRENT_LIST_DIR}/rmsnorm.cu
  ${CMAKE_CURRENT_LIST_DIR}/rope.cu
  ${CMAKE_CURRENT_LIST_DIR}/swiglu.cu
  ${CMAKE_CURRENT_LIST_DIR}/residual.cu
  ${CMAKE_CURRENT_LIST_DIR}/convert.cu
  ${CMAKE_CURRENT_LIST_DIR}/random.cu
)
