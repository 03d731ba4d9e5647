// Plan (host only) and run (launches only) of the GPU index building; kernels in index_*.cuh.
#include "kernels/attention/cuda/index_builder.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "kernels/attention/cuda/index_launch.cuh"
#include "kernels/attention/cuda/index_tables.cuh"

namespace sparsefill::kernels::cuda {
namespace {

using index::BsHead;
using index::PoolEntry;
using index::SelectProblem;
using index::SelectState;
using index::VsUnit;

constexpr size_t kAlign = 256;
constexpr int64_t kMaxTokens = (int64_t{1} << 31) - 64;
// Scoring CTAs to aim for: 8 waves of 132 SMs at one CTA per SM, so the last partial wave costs
// little. More chunks also mean more partial row statistics and edge atomics, both tiny.
constexpr int64_t kVsTargetCtas = 8 * 132;
// Candidate keys a problem may compact into a buffer (two per problem); 64K keys = 512 KiB. Below
// this, passes after the first two read the buffer instead of the whole score row.
constexpr int64_t kCandidateCapacity = 65536;
// Radix pass CTAs per problem: 16 items per thread, 4 at a time (amortises the per-CTA histogram
// clearing and flushing), at most 64 CTAs.
constexpr int64_t kSelectItemsPerCta = 16 * 512;
constexpr int64_t kSelectMaxCtas = 64;
// Table bytes per upload launch: kernel parameters stay below the classic 4 KiB limit.
constexpr int kUploadChunkBytes = 3968;

size_t AlignUp(size_t x, size_t a) { return (x + a - 1) / a * a; }

// Appends `bytes` to a layout under construction and returns its 256-aligned offset.
size_t Reserve(size_t* cursor, size_t bytes) {
  const size_t at = AlignUp(*cursor, kAlign);
  *cursor = at + bytes;
  return at;
}

template <class T>
size_t AppendTable(std::vector<unsigned char>* blob, const std::vector<T>& items) {
  const size_t at = AlignUp(blob->size(), 16);
  blob->resize(at + items.size() * sizeof(T));
  if (!items.empty()) std::memcpy(blob->data() + at, items.data(), items.size() * sizeof(T));
  return at;
}

bool FitsInt32(int64_t x) { return x >= 0 && x <= INT32_MAX; }

struct UploadChunk {
  uint32_t words[kUploadChunkBytes / 4];
};
static_assert(kUploadChunkBytes % 4 == 0, "tables are copied as 32-bit words");

// Copies one chunk of the host tables from the kernel parameters into the workspace: no pageable
// host memory and no host synchronisation (cudaMemcpyAsync from pageable memory may do both).
__global__ void UploadTablesKernel(const __grid_constant__ UploadChunk chunk, uint32_t* dst,
                                   int words) {
  for (int i = threadIdx.x; i < words; i += blockDim.x) dst[i] = chunk.words[i];
}

cudaError_t UploadTables(const std::vector<unsigned char>& blob, unsigned char* dst,
                         cudaStream_t stream) {
  for (size_t at = 0; at < blob.size(); at += kUploadChunkBytes) {
    const int size = static_cast<int>(std::min<size_t>(kUploadChunkBytes, blob.size() - at));
    UploadChunk chunk{};
    std::memcpy(chunk.words, blob.data() + at, size);
    UploadTablesKernel<<<1, 256, 0, stream>>>(chunk, reinterpret_cast<uint32_t*>(dst + at), (size + 3) / 4);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

cudaError_t CheckInputs(const AttentionDims& dims, const std::vector<HeadPatternSpec>& heads,
                        const VerticalSlashOptions& o) {
  if (dims.tokens < 1 || dims.tokens > kMaxTokens) return cudaErrorInvalidValue;
  if (dims.head_dim != 64 && dims.head_dim != 128) return cudaErrorInvalidValue;
  if (dims.q_heads < 1 || dims.kv_heads < 1 || dims.q_heads % dims.kv_heads != 0)
    return cudaErrorInvalidValue;
  if (dims.q_heads > 65535 || dims.sliding_window < 0) return cudaErrorInvalidValue;
  if (static_cast<int64_t>(heads.size()) != dims.q_heads) return cudaErrorInvalidValue;
  if (o.last_queries < 1 || o.last_queries > index::kVsRows) return cudaErrorInvalidValue;
  if (o.min_vertical < 0 || o.min_slash < 0 || o.forced_vertical < 0 || o.forced_slash < 0)
    return cudaErrorInvalidValue;
  for (const HeadPatternSpec& h : heads) {
    switch (h.kind) {
      case HeadKind::kDense:
        break;
      case HeadKind::kAShape:
        if (!FitsInt32(h.a) || h.b < 1 || !FitsInt32(h.b)) return cudaErrorInvalidValue;
        break;
      case HeadKind::kVerticalSlash:
        if (h.a < 1 || h.b < 1 || !FitsInt32(h.a) || !FitsInt32(h.b)) return cudaErrorInvalidValue;
        break;
      case HeadKind::kBlockSparse:
        if (h.a < 1 || !FitsInt32(h.a)) return cudaErrorInvalidValue;
        break;
      default:
        return cudaErrorInvalidValue;
    }
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t PlanSparseIndex(const AttentionDims& dims, const std::vector<HeadPatternSpec>& heads,
                            const VerticalSlashOptions& options, SparseIndexPlan* plan) {
  if (plan == nullptr) return cudaErrorInvalidValue;
  if (const cudaError_t err = CheckInputs(dims, heads, options); err != cudaSuccess) return err;
  SparseIndexPlan out;
  out.dims = dims;
  out.options = options;
  out.heads = heads;
  IndexBuildLayout& L = out.layout;
  const int64_t T = dims.tokens;
  const int group = dims.q_heads / dims.kv_heads;
  const int64_t query_blocks = (T + kSparseBlockSize - 1) / kSparseBlockSize;
  L.query_blocks = static_cast<int>(query_blocks);
  L.last_queries = static_cast<int>(std::min<int64_t>(options.last_queries, T));

  // Descriptors and the array offsets (budgets as the references clamp them).
  std::vector<int> vs_heads, bs_heads;
  int64_t n_verticals = 0, n_bands = 0, n_key_blocks = 0;
  int64_t bs_max_rest = 0;
  out.descriptors.resize(dims.q_heads);
  for (int h = 0; h < dims.q_heads; ++h) {
    const HeadPatternSpec& spec = heads[h];
    HeadDescriptor& d = out.descriptors[h];
    d = HeadDescriptor{};
    d.kind = spec.kind;
    switch (spec.kind) {
      case HeadKind::kDense:
        break;
      case HeadKind::kAShape:
        d.n_init = static_cast<int32_t>(spec.a);
        d.n_local = static_cast<int32_t>(spec.b);
        break;
      case HeadKind::kVerticalSlash: {
        const int64_t v = std::min(T, std::max(spec.a, options.min_vertical));
        const int64_t s = std::min(T, std::max(spec.b, options.min_slash));
        d.vertical_begin = static_cast<int32_t>(std::min<int64_t>(n_verticals, INT32_MAX));
        d.vertical_count = static_cast<int32_t>(v);
        d.band_begin = static_cast<int32_t>(std::min<int64_t>(n_bands, INT32_MAX));
        d.band_count = static_cast<int32_t>(s);  // upper bound: one band per slash
        n_verticals += v;
        n_bands += s;
        vs_heads.push_back(h);
        break;
      }
      case HeadKind::kBlockSparse: {
        // Rows hold at most max(top_k, 2) blocks (top_k = 1 still keeps block 0 and the diagonal).
        const int64_t width = std::min(std::max<int64_t>(spec.a, 2), query_blocks);
        d.block_begin = static_cast<int32_t>(std::min<int64_t>(n_key_blocks, INT32_MAX));
        d.blocks_per_row = static_cast<int32_t>(width);
        n_key_blocks += query_blocks * width;
        // Rows bq >= top_k select top_k - 2 blocks by score; they exist when top_k < blocks.
        if (spec.a < query_blocks) bs_max_rest = std::max(bs_max_rest, spec.a - 2);
        bs_heads.push_back(h);
        break;
      }
    }
  }
  if (!FitsInt32(n_verticals) || !FitsInt32(n_bands) || !FitsInt32(n_key_blocks))
    return cudaErrorInvalidValue;

  // Vertical-slash units: the VS heads of each KV group in slabs of `slots` heads.
  std::vector<VsUnit> units;
  std::vector<SelectProblem> problems;
  L.vs_heads = static_cast<int>(vs_heads.size());
  if (L.vs_heads > 0) {
    std::vector<std::vector<int>> by_group(dims.kv_heads);
    for (int v = 0; v < L.vs_heads; ++v) by_group[vs_heads[v] / group].push_back(v);
    size_t most = 0;
    for (const auto& members : by_group) most = std::max(most, members.size());
    L.vs_slots = most >= 3 ? 4 : static_cast<int>(most);  // 1, 2 or 4 (a template choice)
    for (int kv = 0; kv < dims.kv_heads; ++kv) {
      const std::vector<int>& members = by_group[kv];
      for (size_t first = 0; first < members.size(); first += L.vs_slots) {
        VsUnit u;
        u.kv_head = kv;
        for (int s = 0; s < index::kVsMaxSlots; ++s) {
          const size_t m = first + s;
          const bool used = s < L.vs_slots && m < members.size();
          u.vs_index[s] = used ? members[m] : -1;
          u.q_head[s] = used ? vs_heads[members[m]] : -1;
        }
        units.push_back(u);
      }
    }
    L.vs_units = static_cast<int>(units.size());
    L.key_tiles = static_cast<int>((T + index::kVsTileKeys - 1) / index::kVsTileKeys);
    const int64_t chunk_target = std::max<int64_t>(1, kVsTargetCtas / L.vs_units);
    L.tiles_per_chunk = static_cast<int>((L.key_tiles + chunk_target - 1) / chunk_target);
    L.chunks = (L.key_tiles + L.tiles_per_chunk - 1) / L.tiles_per_chunk;
    L.score_stride = static_cast<int64_t>(AlignUp(static_cast<size_t>(T), 64));
    // Two problems per head: columns (verticals), diagonals (bands).
    for (int v = 0; v < L.vs_heads; ++v) {
      const HeadDescriptor& d = out.descriptors[vs_heads[v]];
      SelectProblem col{};
      col.score_row = 2 * v;
      col.is_diagonal = 0;
      col.count = d.vertical_count;
      col.forced = static_cast<int32_t>(std::min<int64_t>(options.forced_vertical, d.vertical_count));
      col.out_begin = d.vertical_begin;
      col.head = vs_heads[v];
      SelectProblem diag{};
      diag.score_row = 2 * v + 1;
      diag.is_diagonal = 1;
      diag.count = d.band_count;
      diag.forced = static_cast<int32_t>(std::min<int64_t>(options.forced_slash, d.band_count));
      diag.out_begin = d.band_begin;
      diag.head = vs_heads[v];
      problems.push_back(col);
      problems.push_back(diag);
    }
    L.select_problems = static_cast<int>(problems.size());
    L.select_ctas = static_cast<int>(
        std::clamp<int64_t>((T + kSelectItemsPerCta - 1) / kSelectItemsPerCta, 1, kSelectMaxCtas));
    // A multiple of 4 keys: the passes read candidates 32 bytes at a time.
    L.candidate_capacity = static_cast<int64_t>(AlignUp(static_cast<size_t>(std::min<int64_t>(T, kCandidateCapacity)), 4));
    L.bitmask_words = static_cast<int64_t>(AlignUp(static_cast<size_t>((T + 31) / 32), 4));
  }

  // Block-sparse heads and the pooling list (their q heads, then the KV heads they read).
  std::vector<BsHead> bs_table;
  std::vector<PoolEntry> pool;
  L.bs_heads = static_cast<int>(bs_heads.size());
  if (L.bs_heads > 0) {
    if (bs_max_rest <= index::kBsWideCap - index::kBsTileKeys) {
      L.bs_rows_per_cta = index::kBsWideRows;
    } else if (bs_max_rest <= index::kBsNarrowCap - index::kBsTileKeys) {
      L.bs_rows_per_cta = index::kBsNarrowRows;
    } else {
      return cudaErrorInvalidValue;  // top_k > 962 with a longer prompt: no variant holds it
    }
    std::vector<int> kv_slot(dims.kv_heads, -1);
    for (int b = 0; b < L.bs_heads; ++b) {
      const int h = bs_heads[b];
      const int kv = h / group;
      if (kv_slot[kv] < 0) kv_slot[kv] = L.bs_kv_heads++;
      const HeadDescriptor& d = out.descriptors[h];
      bs_table.push_back(BsHead{h, b, kv_slot[kv], static_cast<int32_t>(heads[h].a), d.block_begin,
                                d.blocks_per_row});
      pool.push_back(PoolEntry{0, h, b});
    }
    for (int kv = 0; kv < dims.kv_heads; ++kv)
      if (kv_slot[kv] >= 0) pool.push_back(PoolEntry{1, kv, kv_slot[kv]});
  }

  // Uploaded tables: descriptors first (the index's `heads`), then the kernels' tables.
  out.upload.clear();
  AppendTable(&out.upload, out.descriptors);
  L.units_table = AppendTable(&out.upload, units);
  L.problems_table = AppendTable(&out.upload, problems);
  L.bs_table = AppendTable(&out.upload, bs_table);
  L.pool_table = AppendTable(&out.upload, pool);
  out.upload.resize(AlignUp(out.upload.size(), 16));  // whole words for the upload kernel

  // Workspace: tables, the index arrays, then scratch; every sub-buffer 256-byte aligned.
  size_t cursor = 0;
  out.descriptors_offset = Reserve(&cursor, out.upload.size());
  out.verticals_offset = Reserve(&cursor, static_cast<size_t>(n_verticals) * sizeof(int32_t));
  out.bands_offset = Reserve(&cursor, static_cast<size_t>(n_bands) * sizeof(DiagonalBand));
  out.key_blocks_offset = Reserve(&cursor, static_cast<size_t>(n_key_blocks) * sizeof(int32_t));
  out.scratch_offset = AlignUp(cursor, kAlign);
  if (L.vs_heads > 0) {
    const size_t rows = static_cast<size_t>(L.vs_slots) * index::kVsRows;
    L.row_partials = Reserve(&cursor, static_cast<size_t>(L.vs_units) * L.chunks * rows * 8);
    L.row_norm = Reserve(&cursor, static_cast<size_t>(L.vs_units) * rows * 4);
    L.scores = Reserve(&cursor, static_cast<size_t>(2 * L.vs_heads) * L.score_stride * 4);
    L.candidates = Reserve(&cursor, static_cast<size_t>(L.select_problems) * 2 * L.candidate_capacity * 8);
    const size_t problems_n = static_cast<size_t>(L.select_problems);
    L.zeroed = AlignUp(cursor, kAlign);
    L.bitmask = Reserve(&cursor, problems_n * L.bitmask_words * 4);
    L.histograms = Reserve(&cursor, index::kSelectPasses * problems_n * index::kSelectBins * 4);
    L.counters = Reserve(&cursor, 2 * index::kSelectPasses * problems_n * 4);
    L.select_state = Reserve(&cursor, problems_n * sizeof(SelectState));
    L.zeroed_bytes = AlignUp(cursor, kAlign) - L.zeroed;
  }
  if (L.bs_heads > 0) {
    const size_t row_bytes = 2 * static_cast<size_t>(dims.head_dim) * 2;
    L.pooled_q = Reserve(&cursor, static_cast<size_t>(L.bs_heads) * query_blocks * row_bytes);
    L.pooled_k = Reserve(&cursor, static_cast<size_t>(L.bs_kv_heads) * query_blocks * row_bytes);
  }
  out.workspace_bytes = AlignUp(cursor, kAlign);
  *plan = std::move(out);
  return cudaSuccess;
}

cudaError_t BuildSparseIndex(const SparseIndexPlan& plan, const __nv_bfloat16* q,
                             const __nv_bfloat16* k, void* workspace, cudaStream_t stream,
                             SparseIndexView* index) {
  const IndexBuildLayout& L = plan.layout;
  if (index == nullptr || workspace == nullptr ||
      reinterpret_cast<uintptr_t>(workspace) % kAlign != 0)
    return cudaErrorInvalidValue;
  if (plan.upload.empty() || static_cast<int>(plan.descriptors.size()) != plan.dims.q_heads)
    return cudaErrorInvalidValue;  // not a plan from PlanSparseIndex
  if ((L.vs_heads > 0 || L.bs_heads > 0) && (q == nullptr || k == nullptr))
    return cudaErrorInvalidValue;
  unsigned char* ws = static_cast<unsigned char*>(workspace);
  unsigned char* tables = ws + plan.descriptors_offset;
  auto* descriptors = reinterpret_cast<HeadDescriptor*>(tables);
  auto* verticals = reinterpret_cast<int32_t*>(ws + plan.verticals_offset);
  auto* bands = reinterpret_cast<DiagonalBand*>(ws + plan.bands_offset);
  auto* key_blocks = reinterpret_cast<int32_t*>(ws + plan.key_blocks_offset);

  cudaError_t err = UploadTables(plan.upload, tables, stream);
  if (err != cudaSuccess) return err;

  if (L.vs_heads > 0) {
    err = cudaMemsetAsync(ws + L.zeroed, 0, L.zeroed_bytes, stream);
    if (err != cudaSuccess) return err;
    index::VsScoreParams vp{};
    vp.q = q;
    vp.k = k;
    vp.units = reinterpret_cast<const VsUnit*>(tables + L.units_table);
    vp.row_partials = reinterpret_cast<float2*>(ws + L.row_partials);
    vp.row_norm = reinterpret_cast<float*>(ws + L.row_norm);
    vp.scores = reinterpret_cast<float*>(ws + L.scores);
    vp.score_stride = L.score_stride;
    vp.tokens = static_cast<int32_t>(plan.dims.tokens);
    vp.last_queries = L.last_queries;
    vp.q_heads = plan.dims.q_heads;
    vp.kv_heads = plan.dims.kv_heads;
    vp.key_tiles = L.key_tiles;
    vp.tiles_per_chunk = L.tiles_per_chunk;
    vp.chunks = L.chunks;
    vp.scale_log2 = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(plan.dims.head_dim)));
    err = index::LaunchVsScoring(vp, plan.dims.head_dim, L.vs_slots, L.vs_units, stream);
    if (err != cudaSuccess) return err;

    index::SelectParams sp{};
    sp.problems = reinterpret_cast<const SelectProblem*>(tables + L.problems_table);
    sp.scores = vp.scores;
    sp.score_stride = L.score_stride;
    sp.candidates = reinterpret_cast<uint64_t*>(ws + L.candidates);
    sp.capacity = L.candidate_capacity;
    sp.bitmask = reinterpret_cast<uint32_t*>(ws + L.bitmask);
    sp.bitmask_words = L.bitmask_words;
    sp.histograms = reinterpret_cast<uint32_t*>(ws + L.histograms);
    sp.arrivals = reinterpret_cast<uint32_t*>(ws + L.counters);
    sp.written = sp.arrivals + index::kSelectPasses * L.select_problems;
    sp.states = reinterpret_cast<SelectState*>(ws + L.select_state);
    sp.tokens = static_cast<int32_t>(plan.dims.tokens);
    sp.num_problems = L.select_problems;
    err = index::LaunchSelect(sp, L.select_ctas, descriptors, verticals, bands, stream);
    if (err != cudaSuccess) return err;
  }

  if (L.bs_heads > 0) {
    index::BsParams bp{};
    bp.q = q;
    bp.k = k;
    bp.pool = reinterpret_cast<const PoolEntry*>(tables + L.pool_table);
    bp.pool_entries = L.bs_heads + L.bs_kv_heads;
    bp.heads = reinterpret_cast<const BsHead*>(tables + L.bs_table);
    bp.bs_heads = L.bs_heads;
    bp.pooled_q = reinterpret_cast<__nv_bfloat16*>(ws + L.pooled_q);
    bp.pooled_k = reinterpret_cast<__nv_bfloat16*>(ws + L.pooled_k);
    bp.key_blocks = key_blocks;
    bp.tokens = static_cast<int32_t>(plan.dims.tokens);
    bp.q_heads = plan.dims.q_heads;
    bp.kv_heads = plan.dims.kv_heads;
    bp.query_blocks = L.query_blocks;
    err = index::LaunchBlockSparse(bp, plan.dims.head_dim, L.bs_rows_per_cta, stream);
    if (err != cudaSuccess) return err;
  }

  index->heads = descriptors;
  index->verticals = verticals;
  index->bands = bands;
  index->key_blocks = key_blocks;
  return cudaSuccess;
}

}  // namespace sparsefill::kernels::cuda
