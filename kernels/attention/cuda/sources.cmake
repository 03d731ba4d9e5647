# Further CUDA sources of sparsefill_kernels_cuda (included from kernels/CMakeLists.txt).
target_sources(sparsefill_kernels_cuda PRIVATE
  # Dense causal attention on Hopper: TMA + wgmma, warp-specialised (head_dim 64 and 128).
  ${CMAKE_CURRENT_LIST_DIR}/dense_sm90.cu
  # Sparse attention on Hopper: the index's work lists on the same TMA + wgmma pipeline.
  ${CMAKE_CURRENT_LIST_DIR}/sparse_sm90.cu
  # TMA descriptors over [tokens][heads][head_dim], shared by both.
  ${CMAKE_CURRENT_LIST_DIR}/tma_heads_map.cu
  # Index building (pattern estimation) for the sparse mainloop: plan/run, then one file per
  # kernel family.
  ${CMAKE_CURRENT_LIST_DIR}/index_builder.cu
  ${CMAKE_CURRENT_LIST_DIR}/index_vs_score.cu
  ${CMAKE_CURRENT_LIST_DIR}/index_topk.cu
  ${CMAKE_CURRENT_LIST_DIR}/index_bs.cu
)
