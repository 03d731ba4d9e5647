// The CUDA KV encoders (kernels/kvcodec/cuda/kvcodec_cuda.h) against the CPU encoders, on a GPU
// box; each test skips with a message where there is no GPU.
//
// The contract is byte equality: for every codec with a GPU encoder (RAW_BF16, FP8_E4M3, INT8,
// INT4, and LOSSLESS's byte planes, compressed on the host), float32 and bf16 input, a chunk in
// the middle of the layer's token and head ranges and a whole layer cut into chunks as the
// server cuts it, the GPU payload equals the CPU payload byte for byte. Inputs are random KV
// with outlier channels plus the golden model's KV. Output buffers are poisoned first and the
// bytes after the payload must survive.
#include "kernels/kvcodec/cuda/kvcodec_cuda.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/kvcodec/kv_codec.h"
#include "kernels/kvcodec/lossless_codec.h"
#include "kernels/ops/numeric.h"
#include "tests/kernels/gpu/gpu_test_util.h"
#include "tests/kernels/kv_test_data.h"
#include "worker/safetensors.h"
#include "worker/weight_source.h"

namespace sparsefill::kernels {
namespace {

using testing::DeviceBuffer;

constexpr uint8_t kPoison = 0xa5;

// tests/data: SPARSEFILL_TEST_DATA_DIR from the environment (a binary carried to a GPU box runs
// in another checkout), else the build's.
std::string TestDataDir() {
  const char* env = std::getenv("SPARSEFILL_TEST_DATA_DIR");
  return env != nullptr && *env != '\0' ? env : SPARSEFILL_TEST_DATA_DIR;
}
constexpr int kGuardBytes = 64;

struct HostLayer {
  int64_t tokens;
  int heads, dim;
  std::vector<float> k, v;       // float32 values
  std::vector<uint16_t> kb, vb;  // the same rounded to bf16 (the bf16-input case)

  KvLayerView View(bool bf16) const {
    return bf16 ? KvLayerView{kb.data(), vb.data(), ScalarType::kBFloat16, heads, tokens}
                : KvLayerView{k.data(), v.data(), ScalarType::kFloat32, heads, tokens};
  }
};

HostLayer MakeHostLayer(int64_t tokens, int heads, int dim, std::vector<float> k,
                        std::vector<float> v) {
  HostLayer l{tokens, heads, dim, std::move(k), std::move(v), {}, {}};
  for (float x : l.k) l.kb.push_back(FloatToBf16(x));
  for (float x : l.v) l.vb.push_back(FloatToBf16(x));
  return l;
}

// The layer on the device, in float32 or bf16.
struct DeviceLayer {
  DeviceBuffer<float> kf, vf;
  DeviceBuffer<uint16_t> kb, vb;
  explicit DeviceLayer(const HostLayer& h)
      : kf(h.k.size()), vf(h.v.size()), kb(h.kb.size()), vb(h.vb.size()) {
    kf.Upload(h.k);
    vf.Upload(h.v);
    kb.Upload(h.kb);
    vb.Upload(h.vb);
  }
  cuda::KvDeviceLayer View(const HostLayer& h, bool bf16) const {
    return bf16 ? cuda::KvDeviceLayer{kb.get(), vb.get(), true, h.heads, h.tokens}
                : cuda::KvDeviceLayer{kf.get(), vf.get(), false, h.heads, h.tokens};
  }
};

// What the CPU produces for one chunk: the payload, or for LOSSLESS the byte planes.
std::string CpuBytes(KvCodecId codec, const HostLayer& h, bool bf16, const KvChunkExtent& e,
                     int group) {
  std::string out;
  if (codec == KvCodecId::kLossless) {
    out.resize(4 * static_cast<size_t>(e.elements_per_tensor()));
    EXPECT_TRUE(SplitBf16Planes(h.View(bf16), e, reinterpret_cast<uint8_t*>(out.data())).ok());
    return out;
  }
  KvEncodeOptions options;
  options.int4_group_tokens = group;
  const absl::Status s = EncodeKvChunk(codec, h.View(bf16), e, options, &out);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// Encodes tokens [t0, t1) x heads [h0, h1) on the GPU in chunks of `tpc` tokens and compares every
// chunk with the CPU encoder's bytes.
void CompareRange(KvCodecId codec, const HostLayer& h, bool bf16, int64_t t0, int64_t t1,
                  int64_t tpc, int h0, int h1, int group) {
  SCOPED_TRACE(std::string(KvCodecName(codec)) + (bf16 ? " bf16" : " f32") + " tokens [" +
               std::to_string(t0) + "," + std::to_string(t1) + ") per chunk " +
               std::to_string(tpc) + " heads [" + std::to_string(h0) + "," + std::to_string(h1) +
               ") G " + std::to_string(group));
  const DeviceLayer d(h);
  const size_t stride = cuda::KvEncodedBytesCuda(codec, {0, tpc, h0, h1, h.dim}, group);
  ASSERT_GT(stride, 0u);
  const int64_t chunks = (t1 - t0 + tpc - 1) / tpc;
  DeviceBuffer<uint8_t> out(chunks * stride + kGuardBytes);
  SF_CUDA_ASSERT(out.Fill(kPoison));
  SF_CUDA_ASSERT(cuda::EncodeKvLayerCuda(codec, d.View(h, bf16), t0, t1, tpc, h0, h1, h.dim, group,
                                         out.get(), nullptr));
  SF_CUDA_ASSERT(cudaDeviceSynchronize());
  const std::vector<uint8_t> got = out.Download();
  size_t end = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const KvChunkExtent e{t0 + c * tpc, std::min(t1, t0 + (c + 1) * tpc), h0, h1, h.dim};
    const std::string want = CpuBytes(codec, h, bf16, e, group);
    ASSERT_EQ(want.size(), cuda::KvEncodedBytesCuda(codec, e, group));
    const uint8_t* g = got.data() + c * stride;
    size_t mismatches = 0, first = want.size();
    for (size_t i = 0; i < want.size(); ++i) {
      if (g[i] != static_cast<uint8_t>(want[i])) {
        if (mismatches++ == 0) first = i;
      }
    }
    EXPECT_EQ(mismatches, 0u) << "chunk " << c << ": " << mismatches << " of " << want.size()
                              << " bytes differ, first at byte " << first;
    end = c * stride + want.size();
  }
  for (size_t i = end; i < got.size(); ++i) {
    if (got[i] != kPoison) {
      ADD_FAILURE() << "byte " << i << " after the last payload was written";
      break;
    }
  }
  if (codec == KvCodecId::kLossless && chunks == 1) {
    // The host half of the GPU path: zstd over the GPU planes gives the CPU payload.
    std::string from_gpu, from_cpu;
    const KvChunkExtent e{t0, t1, h0, h1, h.dim};
    ASSERT_TRUE(CompressBf16Planes(got.data(), 4 * e.elements_per_tensor(), 1, &from_gpu).ok());
    ASSERT_TRUE(EncodeKvChunk(KvCodecId::kLossless, h.View(bf16), e, {}, &from_cpu).ok());
    EXPECT_TRUE(from_gpu == from_cpu);
  }
}

constexpr KvCodecId kGpuCodecs[] = {KvCodecId::kRawBf16, KvCodecId::kLossless, KvCodecId::kFp8E4m3,
                                    KvCodecId::kInt8, KvCodecId::kInt4};

TEST(KvCodecCuda, RandomKvWithOutlierChannelsMatchesTheCpuBytes) {
  SF_SKIP_WITHOUT_GPU();
  const testing::RandomKv kv = testing::MakeOutlierKv(1000, 8, 128, 21);
  const HostLayer h = MakeHostLayer(kv.tokens, kv.kv_heads, kv.head_dim, kv.k, kv.v);
  for (KvCodecId codec : kGpuCodecs) {
    for (bool bf16 : {true, false}) {
      // One chunk in the middle of both ranges (token count not a multiple of the group).
      CompareRange(codec, h, bf16, 37, 611, 611 - 37, 2, 7, 64);
      // A whole layer as the server cuts it: 3 full chunks and a short one, all heads.
      CompareRange(codec, h, bf16, 0, 1000, 320, 0, 8, 64);
      if (codec == KvCodecId::kInt4) {
        CompareRange(codec, h, bf16, 0, 1000, 320, 0, 8, 7);   // groups not dividing chunks
        CompareRange(codec, h, bf16, 0, 1000, 1000, 0, 8, 1);  // per-token keys
        CompareRange(codec, h, bf16, 5, 45, 40, 0, 8, 4096);   // one group per chunk
      }
    }
  }
}

TEST(KvCodecCuda, SpecialValuesMatchTheCpuBytes) {
  SF_SKIP_WITHOUT_GPU();
  // Zero rows, constant rows, ties, tiny and huge magnitudes, signed zeros.
  const int T = 16, H = 2, D = 8;
  std::vector<float> k(T * H * D), v(T * H * D);
  for (int i = 0; i < T * H * D; ++i) {
    const int row = i / D;
    k[i] = row % 4 == 0 ? 0.0f : (row % 4 == 1 ? 3.0f : (i % 2 ? 1e-30f : -2.5e30f));
    v[i] = row % 3 == 0 ? -0.0f : static_cast<float>((i * 37) % 17) - 8.0f;
  }
  k[D + 1] = 448.0f, k[D + 2] = -1.0625f, k[3 * D] = 0x1p-10f;
  const HostLayer h = MakeHostLayer(T, H, D, k, v);
  for (KvCodecId codec : kGpuCodecs) {
    for (bool bf16 : {true, false}) CompareRange(codec, h, bf16, 0, T, 5, 0, H, 3);
  }
}

TEST(KvCodecCuda, GoldenModelKvMatchesTheCpuBytes) {
  SF_SKIP_WITHOUT_GPU();
  auto golden = worker::SafetensorsFile::Open(TestDataDir() + "/tiny-llama3/golden.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status();
  for (int l = 0; l < 3; ++l) {
    const worker::TensorView* kt = (*golden)->Find("layer." + std::to_string(l) + ".k");
    const worker::TensorView* vt = (*golden)->Find("layer." + std::to_string(l) + ".v");
    ASSERT_TRUE(kt != nullptr && vt != nullptr);
    const int64_t T = kt->shape[0];
    const int H = static_cast<int>(kt->shape[1]), D = static_cast<int>(kt->shape[2]);
    const HostLayer h =
        MakeHostLayer(T, H, D, worker::ToFloat32(*kt).value(), worker::ToFloat32(*vt).value());
    for (KvCodecId codec : kGpuCodecs) {
      for (bool bf16 : {true, false}) CompareRange(codec, h, bf16, 0, T, 256, 0, H, 32);
    }
  }
}

TEST(KvCodecCuda, RejectsWhatItCannotEncode) {
  SF_SKIP_WITHOUT_GPU();
  DeviceBuffer<uint16_t> k(64), v(64);
  DeviceBuffer<uint8_t> out(1024);
  const cuda::KvDeviceLayer layer{k.get(), v.get(), true, 2, 4};
  EXPECT_EQ(
      cuda::EncodeKvLayerCuda(KvCodecId::kInt8, layer, 0, 4, 4, 0, 2, 6, 0, out.get(), nullptr),
      cudaErrorInvalidValue)
      << "head_dim not a multiple of 4";
  EXPECT_EQ(
      cuda::EncodeKvLayerCuda(KvCodecId::kInt4, layer, 0, 4, 4, 0, 2, 8, 0, out.get(), nullptr),
      cudaErrorInvalidValue)
      << "INT4 group 0";
  EXPECT_EQ(
      cuda::EncodeKvLayerCuda(KvCodecId::kRawFp32, layer, 0, 4, 4, 0, 2, 8, 1, out.get(), nullptr),
      cudaErrorInvalidValue)
      << "no RAW_FP32 kernel";
  EXPECT_EQ(
      cuda::EncodeKvLayerCuda(KvCodecId::kInt8, layer, 0, 5, 4, 0, 2, 8, 1, out.get(), nullptr),
      cudaErrorInvalidValue)
      << "tokens outside the layer";
  (void)cudaGetLastError();
}

}  // namespace
}  // namespace sparsefill::kernels
