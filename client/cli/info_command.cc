// `sparsefill info`: what a sparsefill server serves (its ModelInfo), for people: the model's
// shape, limits, codecs and attention modes.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/arg_parser.h"
#include "client/cli/commands.h"
#include "client/cli/rpc_common.h"
#include "client/prefill_client.h"

namespace sparsefill::cli {
namespace {

const std::vector<FlagSpec>& InfoFlags() {
  static const std::vector<FlagSpec> specs = {
      {"server", "HOST:PORT", "the sparsefill server", ""},
      {"timeout", "SECONDS", "deadline for the call", "10"},
  };
  return specs;
}

constexpr char kUsage[] = "sparsefill info --server HOST:PORT [--timeout SECONDS]";
constexpr char kDescription[] =
    "Prints the model a sparsefill server serves: name, shape, vocabulary, the longest prompt it\n"
    "accepts, and the KV codecs and attention modes it supports.";

}  // namespace

int InfoCommand(const std::vector<std::string>& args) {
  int exit_code = 0;
  const std::optional<ParsedFlags> flags =
      ParseCommandFlags({"info", kUsage, kDescription, InfoFlags(), {"server"}}, args, &exit_code);
  if (!flags) return exit_code;
  auto usage_error = [](absl::string_view message) { return UsageError("info", message); };
  absl::StatusOr<absl::Duration> timeout = ParseTimeoutFlag(flags->Get("timeout"));
  if (!timeout.ok()) return usage_error(timeout.status().message());

  const std::string server = flags->Get("server");
  client::PrefillClient client(server);
  absl::StatusOr<v1::ModelInfoResponse> info = client.ModelInfo(*timeout);
  if (!info.ok()) {
    std::fprintf(stderr, "sparsefill info: %s\n", DescribeRpcError(info.status(), server).c_str());
    return 1;
  }

  std::vector<std::string> codecs, modes;
  for (int c : info->supported_codecs()) codecs.push_back(CodecName(static_cast<v1::KvCodec>(c)));
  for (int m : info->supported_attention_modes()) {
    modes.push_back(AttentionName(static_cast<v1::AttentionMode>(m)));
  }
  std::printf("server       %s\n", server.c_str());
  std::printf("model        %s (%s)\n", info->model_name().c_str(), info->model_type().c_str());
  std::printf("backend      %s\n", info->backend().c_str());
  std::printf("layers       %u\n", info->num_layers());
  std::printf("heads        %u query, %u KV, head_dim %u (hidden %u)\n",
              info->num_attention_heads(), info->num_kv_heads(), info->head_dim(),
              info->hidden_size());
  std::printf("vocab        %u\n", info->vocab_size());
  std::printf("max prompt   %llu tokens\n",
              static_cast<unsigned long long>(info->max_prompt_tokens()));
  std::printf("KV codecs    %s\n", absl::StrJoin(codecs, ", ").c_str());
  std::printf("attention    %s\n", absl::StrJoin(modes, ", ").c_str());
  std::printf("patterns     %zu bytes of sparse pattern config (attention model_sparse)\n",
              info->model_pattern_config().size());
  // KV per token, both codecs, so an operator can size a decode node's cache at a glance.
  const double kv_elements_per_token =
      2.0 * info->num_layers() * info->num_kv_heads() * info->head_dim();
  std::printf("KV size      %.1f KiB/token as raw_bf16, %.1f KiB/token as raw_fp32\n",
              kv_elements_per_token * 2 / 1024, kv_elements_per_token * 4 / 1024);
  return 0;
}

}  // namespace sparsefill::cli
