# CUDA encoders of the KV codecs in sparsefill_kernels_cuda (included from kernels/CMakeLists.txt).
# --fmad=false: the encoders must round exactly like the CPU encoders (kvcodec/quant_math.h), so
# no multiply-add may be contracted.
target_sources(sparsefill_kernels_cuda PRIVATE ${CMAKE_CURRENT_LIST_DIR}/kvcodec_encode.cu)
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/kvcodec_encode.cu PROPERTIES
  COMPILE_OPTIONS "--fmad=false")
