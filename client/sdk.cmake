# client/sdk.cmake: the gRPC half of client/ (included by client/CMakeLists.txt when
# SPARSEFILL_BUILD_RPC is on).
#
# sparsefill_client     the C++ SDK a decode node links: PrefillClient, KvAssembler (per-layer
#                       tensors or paged blocks), KvReceiverService. It links the proto and the
#                       kernels (KV decoders, CRC32C) but never the worker, so a decode node
#                       does not carry the model runtime.
# sparsefill_cli_rpc    the `sparsefill prefill` and `sparsefill info` subcommands.
find_package(gRPC CONFIG REQUIRED)  # imported targets are directory-scoped: find it here too

add_library(sparsefill_client
  ${CMAKE_CURRENT_LIST_DIR}/grpc_status.cc
  ${CMAKE_CURRENT_LIST_DIR}/kv_assembler.cc
  ${CMAKE_CURRENT_LIST_DIR}/kv_receiver.cc
  ${CMAKE_CURRENT_LIST_DIR}/paged_kv_layout.cc
  ${CMAKE_CURRENT_LIST_DIR}/prefill_client.cc
)
target_include_directories(sparsefill_client PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(sparsefill_client
  PUBLIC sparsefill_proto sparsefill_kernels gRPC::grpc++ absl::status absl::statusor
         absl::strings absl::synchronization absl::time
  PRIVATE absl::random_random absl::str_format sparsefill_warnings)

add_library(sparsefill_cli_rpc STATIC
  ${CMAKE_CURRENT_LIST_DIR}/cli/prefill_command.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/info_command.cc
  ${CMAKE_CURRENT_LIST_DIR}/cli/rpc_common.cc
)
target_link_libraries(sparsefill_cli_rpc
  PUBLIC sparsefill_client sparsefill_cli_common
  PRIVATE absl::str_format sparsefill_warnings)

# sparsefill-decode-stub: a reference decode node (pull or push, any codec, one decode step of the
# model on the CPU backend over the received KV).
add_executable(sparsefill-decode-stub ${CMAKE_CURRENT_LIST_DIR}/decode_stub/main.cc)
target_link_libraries(sparsefill-decode-stub PRIVATE sparsefill_cli_rpc sparsefill_warnings)
