// PagedKvLayout: validation of the block size and table, and the scatter of decoded chunks.
#include "client/paged_kv_layout.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sparsefill::client {

absl::StatusOr<PagedKvLayout> PagedKvLayout::Create(int64_t tokens, int kv_heads, int head_dim,
                                                    int block_size,
                                                    std::vector<int32_t> block_table,
                                                    int64_t num_blocks) {
  if (tokens < 1 || kv_heads < 1 || head_dim < 1) {
    return absl::InvalidArgumentError(absl::StrCat("paged KV: tokens ", tokens, ", kv heads ",
                                                   kv_heads, " and head_dim ", head_dim,
                                                   " must be positive"));
  }
  if (block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("paged KV: block_size ", block_size, " must be at least 1"));
  }
  const int64_t logical_blocks = (tokens + block_size - 1) / block_size;
  if (num_blocks < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("paged KV: num_blocks ", num_blocks, " must not be negative"));
  }

  PagedKvLayout layout;
  layout.tokens_ = tokens;
  layout.kv_heads_ = kv_heads;
  layout.head_dim_ = head_dim;
  layout.block_size_ = block_size;
  if (block_table.empty()) {
    if (num_blocks != 0 && num_blocks < logical_blocks) {
      return absl::InvalidArgumentError(
          absl::StrCat("paged KV: num_blocks ", num_blocks, " is too small for ", tokens,
                       " tokens in blocks of ", block_size, " (needs ", logical_blocks, ")"));
    }
    layout.block_table_.resize(logical_blocks);
    for (int64_t i = 0; i < logical_blocks; ++i) layout.block_table_[i] = static_cast<int32_t>(i);
    layout.num_blocks_ = num_blocks != 0 ? num_blocks : logical_blocks;
    return layout;
  }

  if (static_cast<int64_t>(block_table.size()) < logical_blocks) {
    return absl::InvalidArgumentError(absl::StrCat("paged KV: block_table has ", block_table.size(),
                                                   " entries, ", tokens, " tokens in blocks of ",
                                                   block_size, " need ", logical_blocks));
  }
  block_table.resize(logical_blocks);
  const int32_t largest = *std::max_element(block_table.begin(), block_table.end());
  const int64_t physical = num_blocks != 0 ? num_blocks : int64_t{largest} + 1;
  std::vector<uint8_t> used(physical, 0);
  for (int64_t i = 0; i < logical_blocks; ++i) {
    const int32_t b = block_table[i];
    if (b < 0 || b >= physical) {
      return absl::InvalidArgumentError(absl::StrCat("paged KV: block_table[", i, "] = ", b,
                                                     " is outside [0, num_blocks ", physical, ")"));
    }
    if (used[b] != 0) {
      return absl::InvalidArgumentError(absl::StrCat("paged KV: block_table[", i, "] = ", b,
                                                     " maps a second logical block to it"));
    }
    used[b] = 1;
  }
  layout.block_table_ = std::move(block_table);
  layout.num_blocks_ = physical;
  return layout;
}

void PagedKvLayout::Scatter(const kernels::KvChunkExtent& extent, const float* src,
                            float* dst) const {
  const int64_t row = static_cast<int64_t>(kv_heads_) * head_dim_;  // one token
  const int64_t head_offset = static_cast<int64_t>(extent.head_begin) * head_dim_;
  const size_t copy_bytes =
      static_cast<size_t>(extent.head_end - extent.head_begin) * head_dim_ * sizeof(float);
  for (int64_t t = extent.token_begin; t < extent.token_end; ++t) {
    const float* from = src + (t - extent.token_begin) * row + head_offset;
    std::memcpy(dst + TokenOffset(t) + head_offset, from, copy_bytes);
  }
}

absl::Status DecodeKvChunkToPages(kernels::KvCodecId codec, std::string_view payload,
                                  const kernels::KvChunkExtent& extent, const PagedKvLayout& layout,
                                  std::vector<float>* scratch, float* k_cache, float* v_cache) {
  if (extent.token_begin < 0 || extent.token_end > layout.tokens() || extent.head_begin < 0 ||
      extent.head_end > layout.kv_heads() || extent.head_dim != layout.head_dim()) {
    return absl::InvalidArgumentError(
        absl::StrCat("paged KV: chunk tokens [", extent.token_begin, ",", extent.token_end,
                     "), kv heads [", extent.head_begin, ",", extent.head_end, "), head_dim ",
                     extent.head_dim, " outside the layout's ", layout.tokens(), " tokens, ",
                     layout.kv_heads(), " kv heads, head_dim ", layout.head_dim()));
  }
  // The decoders write a full-layer [tokens, kv_heads, head_dim] array at the extent's rows; the
  // same extent shifted to token 0 decodes into a chunk-sized array (token_begin only positions).
  kernels::KvChunkExtent local = extent;
  local.token_begin = 0;
  local.token_end = extent.token_end - extent.token_begin;
  const int64_t elements = local.token_end * layout.kv_heads() * layout.head_dim();
  if (static_cast<int64_t>(scratch->size()) < 2 * elements) scratch->resize(2 * elements);
  float* k = scratch->data();
  float* v = k + elements;
  if (absl::Status s = kernels::DecodeKvChunk(codec, payload, layout.kv_heads(), local, k, v);
      !s.ok()) {
    return s;
  }
  layout.Scatter(extent, k, k_cache);
  layout.Scatter(extent, v, v_cache);
  return absl::OkStatus();
}

}  // namespace sparsefill::client
