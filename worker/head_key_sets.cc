#include "worker/head_key_sets.h"

#include "kernels/attention/block_sparse_ref.h"
#include "kernels/attention/vertical_slash_ref.h"

namespace sparsefill::worker {

kernels::HeadKeySet EstimateHeadKeySet(const HeadPattern& p, const float* q, const float* k,
                                       const kernels::AttentionShape& shape, int q_head) {
  switch (p.type) {
    case HeadPattern::Type::kDense:
      break;
    case HeadPattern::Type::kAShape:
      return kernels::HeadKeySet::AShape(p.n_init, p.n_local);
    case HeadPattern::Type::kVerticalSlash: {
      kernels::VerticalSlashParams params;
      params.vertical = p.vertical;
      params.slash = p.slash;
      return kernels::EstimateVerticalSlashRef(q, k, shape, q_head, params);
    }
    case HeadPattern::Type::kBlockSparse: {
      kernels::BlockSparseParams params;
      params.top_k = p.top_k;
      return kernels::EstimateBlockSparseRef(q, k, shape, q_head, params);
    }
  }
  return kernels::HeadKeySet::Dense();
}

}  // namespace sparsefill::worker
