// Paged KV cache in the vLLM layout: for each layer, a K cache and a V cache shaped
// [num_blocks, block_size, kv_heads, head_dim] (row-major, float32). Token t of the prompt lives
// in logical block t / block_size, slot t % block_size; the block table maps each logical block
// to a physical block of the cache (identity when the caller gives none). Slots no token maps to
// (the tail of the last block, physical blocks outside the table) stay zero.
//
//   auto layout = PagedKvLayout::Create(tokens, kv_heads, head_dim, /*block_size=*/16,
//                                       /*block_table=*/{7, 2, 5}, /*num_blocks=*/8);
//   std::vector<float> k(layout->cache_elements()), v(layout->cache_elements());
//   DecodeKvChunkToPages(codec, payload, extent, *layout, &scratch, k.data(), v.data());
//
// KvAssembler::CreatePaged assembles a whole stream this way, and KvReceiverService does it for
// pushed sessions when its options name a layout. Transport-free, like the assembler.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/kvcodec/kv_codec.h"

namespace sparsefill::client {

// One layer's KV cache in a PagedKvLayout, decoded to float32.
struct PagedKvLayer {
  int layer = 0;
  std::vector<float> k;  // [num_blocks, block_size, kv_heads, head_dim]
  std::vector<float> v;  // [num_blocks, block_size, kv_heads, head_dim]
};

class PagedKvLayout {
 public:
  // `block_table[i]` is the physical block of logical block i; it needs at least
  // ceil(tokens / block_size) entries (extra ones are ignored), each in [0, num_blocks), no two
  // the same. Empty: the identity. `num_blocks` is the cache's physical block count; 0 means
  // just enough for the table (its largest entry + 1) or, without a table, for the prompt.
  // InvalidArgument naming the field and the limit for anything else.
  static absl::StatusOr<PagedKvLayout> Create(int64_t tokens, int kv_heads, int head_dim,
                                              int block_size, std::vector<int32_t> block_table = {},
                                              int64_t num_blocks = 0);

  int64_t tokens() const { return tokens_; }
  int kv_heads() const { return kv_heads_; }
  int head_dim() const { return head_dim_; }
  int block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  // ceil(tokens / block_size): the blocks the prompt occupies.
  int64_t logical_blocks() const { return static_cast<int64_t>(block_table_.size()); }
  // Logical -> physical, logical_blocks() entries (the identity filled in when none was given).
  const std::vector<int32_t>& block_table() const { return block_table_; }
  // Elements of one layer's K (or V) cache: num_blocks * block_size * kv_heads * head_dim.
  int64_t cache_elements() const {
    return num_blocks_ * block_size_ * static_cast<int64_t>(kv_heads_) * head_dim_;
  }

  // The element offset in a cache of (token, kv head 0, dim 0).
  int64_t TokenOffset(int64_t token) const {
    const int64_t block = block_table_[token / block_size_];
    return (block * block_size_ + token % block_size_) * kv_heads_ * head_dim_;
  }

  // Copies the (token, kv head) rows of `extent` from `src` into the cache `dst`. `src` is
  // token-major [extent tokens, kv_heads, head_dim] whose row 0 is token extent.token_begin; only
  // heads [extent.head_begin, extent.head_end) are read. The extent must lie inside the prompt.
  void Scatter(const kernels::KvChunkExtent& extent, const float* src, float* dst) const;

 private:
  PagedKvLayout() = default;

  int64_t tokens_ = 0;
  int kv_heads_ = 0;
  int head_dim_ = 0;
  int block_size_ = 0;
  int64_t num_blocks_ = 0;
  std::vector<int32_t> block_table_;
};

// Decodes one chunk's payload (any codec of kernels/kvcodec) and scatters its K and V into the
// paged caches `k_cache` and `v_cache` (each layout.cache_elements() floats). `scratch` is reused
// between calls (it grows to the chunk's [tokens, kv_heads, head_dim] twice). The decoder's
// errors (DataLoss, InvalidArgument) are returned as they are, with the caches untouched.
absl::Status DecodeKvChunkToPages(kernels::KvCodecId codec, std::string_view payload,
                                  const kernels::KvChunkExtent& extent, const PagedKvLayout& layout,
                                  std::vector<float>* scratch, float* k_cache, float* v_cache);

}  // namespace sparsefill::client
