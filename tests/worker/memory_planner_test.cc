// The device-memory planner's arithmetic: what fits, the chunk sizes, and the error's numbers.
#include <gtest/gtest.h>

#include "worker/memory_planner.h"
#include "worker/named_models.h"

namespace sparsefill::worker {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(MemoryPlanner, CountsActivationsAndChunkScratch) {
  const ModelConfig c = NamedModelConfig("llama3-8b").value();
  PrefillMemoryInputs in;
  in.free_bytes = 64 * kGiB;
  // hidden 4096 + Q 4096 + 2 sets x (K 1024 + V 1024) bf16 = 24 KiB per token.
  EXPECT_EQ(PrefillActivationBytes(c, 1, in), 12288 * 2 + 4 + 128256 * 4);
  // normed + projected (2 x 4096) + gate + up (2 x 14336), bf16.
  EXPECT_EQ(PrefillChunkBytesPerToken(c, in), (2 * 4096 + 2 * 14336) * 2);
  in.double_buffered_kv = false;
  EXPECT_EQ(PrefillActivationBytes(c, 1, in), 8192 * 2 + 2048 * 2 + 4 + 128256 * 4);
}

TEST(MemoryPlanner, MillionTokensOfLlama3_8BFitAnH100AfterWeights) {
  const ModelConfig c = NamedModelConfig("llama3-8b").value();
  PrefillMemoryInputs in;
  in.free_bytes = 62 * kGiB;  // ~79 GiB card minus 16 GiB of bf16 weights and the context
  in.attention_workspace_bytes = 2 * kGiB;
  auto plan = PlanPrefillMemory(c, 1 << 20, in);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->activation_bytes / kGiB, 24);  // 24 KiB x 1M tokens (+ small change)
  EXPECT_EQ(plan->chunk_tokens, 16384);          // capped: bigger chunks gain nothing
  EXPECT_EQ(plan->chunk_tokens % 64, 0);
  EXPECT_LE(plan->total_bytes + in.reserve_bytes, in.free_bytes);
}

TEST(MemoryPlanner, ChunkShrinksToWhatIsLeftInMultiplesOf64) {
  const ModelConfig c = NamedModelConfig("llama3-8b").value();
  PrefillMemoryInputs in;
  const int64_t tokens = 1 << 20;
  const int64_t activations = PrefillActivationBytes(c, tokens, in);
  const int64_t per_token = PrefillChunkBytesPerToken(c, in);
  in.free_bytes = in.reserve_bytes + activations + 1000 * per_token + 17;  // room for 1000 tokens
  auto plan = PlanPrefillMemory(c, tokens, in);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->chunk_tokens, 960);
  // Short prompts are one chunk.
  EXPECT_EQ(PlanPrefillMemory(c, 100, in)->chunk_tokens, 100);
}

TEST(MemoryPlanner, TooLongPromptIsOutOfRangeWithTheNumbers) {
  const ModelConfig c = NamedModelConfig("llama3-8b").value();
  PrefillMemoryInputs in;
  in.free_bytes = 20 * kGiB;
  auto plan = PlanPrefillMemory(c, 1 << 20, in);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kOutOfRange);
  const std::string message(plan.status().message());
  EXPECT_NE(message.find("1048576-token prompt"), std::string::npos) << message;
  EXPECT_NE(message.find("24.0 GiB of activations"), std::string::npos) << message;
  EXPECT_NE(message.find("20.0 GiB of device memory is free"), std::string::npos) << message;
}

TEST(MemoryPlanner, FormatsBytes) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(3 * kGiB / 2), "1.5 GiB");
}

}  // namespace
}  // namespace sparsefill::worker
