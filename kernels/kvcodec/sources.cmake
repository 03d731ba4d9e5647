# The KV codecs beyond raw (included from kernels/CMakeLists.txt). They use Abseil for errors and
# libzstd (LOSSLESS); no CUDA: the client SDK links them through sparsefill_kernels.
find_package(PkgConfig REQUIRED)
pkg_check_modules(SPARSEFILL_ZSTD REQUIRED IMPORTED_TARGET GLOBAL libzstd)
target_sources(sparsefill_kernels PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/codec_util.cc
  ${CMAKE_CURRENT_LIST_DIR}/kv_codec.cc
  ${CMAKE_CURRENT_LIST_DIR}/lossless_codec.cc
  ${CMAKE_CURRENT_LIST_DIR}/fp8_codec.cc
  ${CMAKE_CURRENT_LIST_DIR}/int8_codec.cc
  ${CMAKE_CURRENT_LIST_DIR}/int4_codec.cc
)
target_link_libraries(sparsefill_kernels
  PUBLIC absl::status absl::statusor
  PRIVATE absl::strings absl::str_format PkgConfig::SPARSEFILL_ZSTD)
