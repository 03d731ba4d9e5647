// `sparsefill prefill`: a prefill through a sparsefill server, the remote twin of `sparsefill
// run`. Same --tokens and --save-kv formats, and with the default flags (dense attention, raw
// float32 KV) the same bytes in OUT: `prefill --save-kv A` and `run --save-kv B` on the same
// model and tokens give identical files. The KV is written layer by layer as it arrives, so the
// client never holds more than one layer.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>
#include <span>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/arg_parser.h"
#include "client/cli/commands.h"
#include "client/cli/kv_file.h"
#include "client/cli/progress_line.h"
#include "client/cli/rpc_common.h"
#include "client/cli/token_file.h"
#include "client/prefill_client.h"
#include "worker/model_config.h"

namespace sparsefill::cli {
namespace {

const std::vector<FlagSpec>& PrefillFlags() {
  static const std::vector<FlagSpec> specs = {
      {"server", "HOST:PORT", "the sparsefill server", ""},
      {"tokens", "FILE",
       "prompt: safetensors with an int32 input_ids tensor, or whitespace-separated ids", ""},
      {"save-kv", "OUT",
       "write layer.{i}.k/v, logits_last and first_token as float32 safetensors (as `run` does)",
       ""},
      {"codec", "NAME",
       "KV codec on the wire, decoded here to float32: raw_fp32 (bit-exact); raw_bf16 (half the "
       "bytes; the server's default when a client names none); lossless (bit-exact with "
       "raw_bf16, ~1.3x smaller, zstd); fp8_e4m3 or int8 (~1.9x smaller than raw_bf16, a scale "
       "per token and KV head); int4 (~3.7x smaller, KIVI: keys per channel over --int4-group "
       "tokens, values per token)",
       "raw_fp32"},
      {"int4-group", "TOKENS",
       "with --codec int4: tokens per key quantization group, 1-65535 (the header of every "
       "chunk carries it)",
       "64"},
      {"attention", "MODE",
       "dense, sparse (the server's model pattern config; the server's default when a client "
       "names none) or a pattern-config JSON file sent inline",
       "dense"},
      {"timeout", "SECONDS", "deadline for the whole call; the server stops at the next layer",
       "none"},
      {"request-id", "ID", "request id echoed by the server and in its logs", "random"},
      {"progress", "",
       "ask the server for progress events (shown on the progress line; printed one per line "
       "when stderr is not a terminal)",
       ""},
  };
  return specs;
}

constexpr char kUsage[] =
    "sparsefill prefill --server HOST:PORT --tokens FILE [--save-kv OUT] "
    "[--codec raw_fp32|raw_bf16|lossless|fp8_e4m3|int8|int4] [--int4-group TOKENS] "
    "[--attention dense|sparse|CONFIG.json] [--timeout SECONDS] "
    "[--request-id ID] [--progress]";
constexpr char kDescription[] =
    "Sends the prompt to a sparsefill server, receives its KV cache layer by layer (checksums,\n"
    "order and completeness verified) and prints a summary (tokens, server and client time,\n"
    "tokens/s, KV bytes received, first token). With --save-kv, writes the same file as\n"
    "`sparsefill run --save-kv`; with the defaults here (dense, raw_fp32) the bytes are "
    "identical.\n"
    "The defaults differ from the server's own (model sparse attention, raw_bf16 KV) on purpose.";

int Fail(const std::string& message) {
  std::fprintf(stderr, "sparsefill prefill: %s\n", message.c_str());
  return 1;
}

}  // namespace

int PrefillCommand(const std::vector<std::string>& args) {
  int exit_code = 0;
  const std::optional<ParsedFlags> flags = ParseCommandFlags(
      {"prefill", kUsage, kDescription, PrefillFlags(), {"server", "tokens"}}, args, &exit_code);
  if (!flags) return exit_code;
  auto usage_error = [](absl::string_view message) { return UsageError("prefill", message); };
  const std::string server = flags->Get("server");

  v1::KvCodec codec = v1::KV_CODEC_UNSPECIFIED;
  if (const std::string name = flags->Get("codec");
      !v1::KvCodec_Parse(absl::StrCat("KV_CODEC_", absl::AsciiStrToUpper(name)), &codec) ||
      codec == v1::KV_CODEC_UNSPECIFIED || name != absl::AsciiStrToLower(name)) {
    return usage_error(absl::StrCat(
        "--codec must be raw_fp32, raw_bf16, lossless, fp8_e4m3, int8 or int4, got '", name, "'"));
  }
  uint32_t int4_group = 0;
  if (flags->Has("int4-group")) {
    if (!absl::SimpleAtoi(flags->Get("int4-group"), &int4_group) || int4_group < 1 ||
        int4_group > 65535) {
      return usage_error(absl::StrCat("--int4-group must be an integer in [1, 65535], got '",
                                      flags->Get("int4-group"), "'"));
    }
    if (codec != v1::KV_CODEC_INT4) return usage_error("--int4-group needs --codec int4");
  }
  absl::StatusOr<absl::Duration> timeout =
      ParseTimeoutFlag(flags->Has("timeout") ? flags->Get("timeout") : "");
  if (!timeout.ok()) return usage_error(timeout.status().message());
  const bool want_progress = flags->Has("progress") && flags->Get("progress") != "false";

  absl::StatusOr<std::vector<int32_t>> tokens = ReadTokenFile(flags->Get("tokens"));
  if (!tokens.ok()) return Fail(std::string(tokens.status().message()));

  client::PrefillCall call;
  const std::string attention = flags->Get("attention");
  if (attention == "dense") {
    call.request = client::MakePrefillRequest(*tokens, codec, v1::ATTENTION_MODE_DENSE);
  } else if (attention == "sparse") {
    call.request = client::MakePrefillRequest(*tokens, codec, v1::ATTENTION_MODE_MODEL_SPARSE);
  } else {
    // A config file travels inline; the server parses and validates it (one parser, one set of
    // error messages, whichever client sent it).
    absl::StatusOr<std::string> json = worker::ReadTextFile(attention);
    if (!json.ok()) return Fail(absl::StrCat("--attention: ", json.status().message()));
    call.request = client::MakeInlinePatternRequest(*tokens, *std::move(json), codec);
  }
  call.request.set_kv_int4_group_tokens(int4_group);
  call.request.set_request_id(flags->Has("request-id") ? flags->Get("request-id") : "");
  call.request.set_return_logits(true);  // OUT holds logits_last, as `run` writes it
  call.request.set_progress(want_progress);

  // ModelInfo first: OUT's header needs every shape before the first layer arrives. It counts
  // against --timeout like the rest of the call.
  const absl::Time start = absl::Now();
  client::PrefillClient prefill_client(server);
  absl::StatusOr<v1::ModelInfoResponse> model =
      prefill_client.ModelInfo(*timeout == absl::InfiniteDuration() ? absl::Seconds(30) : *timeout);
  if (!model.ok()) return Fail(DescribeRpcError(model.status(), server));
  call.timeout = *timeout == absl::InfiniteDuration() ? *timeout : *timeout - (absl::Now() - start);

  std::unique_ptr<KvFileWriter> kv_file;
  if (flags->Has("save-kv")) {
    const KvFileLayout layout{
        static_cast<int>(model->num_layers()), static_cast<int64_t>(tokens->size()),
        static_cast<int>(model->num_kv_heads()), static_cast<int>(model->head_dim()),
        static_cast<int64_t>(model->vocab_size())};
    absl::StatusOr<std::unique_ptr<KvFileWriter>> writer =
        KvFileWriter::Create(flags->Get("save-kv"), layout);
    if (!writer.ok()) return Fail(std::string(writer.status().message()));
    kv_file = *std::move(writer);
  }

  // Both callbacks run on one gRPC thread at a time (see PrefillCallbacks), so the progress line
  // and the file need no lock.
  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  const int num_layers = static_cast<int>(model->num_layers());
  ProgressLine progress;
  absl::Status file_error;  // tells a local write failure apart from a stream failure
  client::PrefillCallbacks callbacks;
  callbacks.on_progress = [&](const v1::Progress& event) {
    const std::string text =
        absl::StrFormat("prefill: layer %d/%d computed (%.2f s)", event.layers_done(),
                        event.num_layers(), event.elapsed_seconds());
    if (terminal) {
      progress.Update(text);
    } else {
      std::fprintf(stderr, "%s\n", text.c_str());
    }
  };
  callbacks.on_layer = [&](client::KvLayer layer) -> absl::Status {
    progress.Update(absl::StrFormat("prefill: layer %d/%d received", layer.layer + 1, num_layers));
    if (kv_file == nullptr) return absl::OkStatus();
    worker::LayerKv kv;
    kv.layer = layer.layer;
    kv.tokens = layer.tokens;
    kv.kv_heads = layer.kv_heads;
    kv.head_dim = layer.head_dim;
    kv.dtype = kernels::ScalarType::kFloat32;
    kv.k = layer.k.data();
    kv.v = layer.v.data();
    file_error = kv_file->OnLayerKv(kv);
    return file_error;
  };

  std::unique_ptr<client::PrefillStream> stream =
      prefill_client.StartPrefill(call, std::move(callbacks));
  const absl::Status status = stream->Await();
  progress.Clear();
  if (!file_error.ok()) return Fail(std::string(file_error.message()));
  if (status.code() == absl::StatusCode::kDeadlineExceeded && flags->Has("timeout")) {
    // The SDK's message counts from the Prefill call; the user set the whole command's budget.
    return Fail(absl::StrCat(DescribeRpcError(status, server), " [--timeout ",
                             flags->Get("timeout"), " s]"));
  }
  if (!status.ok()) return Fail(DescribeRpcError(status, server));
  const v1::PrefillResult& result = stream->result();
  if (kv_file != nullptr) {
    const std::span<const float> logits(result.logits_last().data(),
                                        static_cast<size_t>(result.logits_last_size()));
    if (absl::Status s = kv_file->Finish(logits, result.first_token()); !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }
  const double wall_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const client::PrefillStats stats = stream->stats();

  const auto& densities = result.attention_density();
  const double density =
      densities.empty()
          ? 1.0
          : std::accumulate(densities.begin(), densities.end(), 0.0) / densities.size();
  const v1::Timings& t = result.timings();
  std::printf("server     %s: model %s (%s, %u layers, %u query / %u KV heads x %u) on %s\n",
              server.c_str(), model->model_name().c_str(), model->model_type().c_str(),
              model->num_layers(), model->num_attention_heads(), model->num_kv_heads(),
              model->head_dim(), model->backend().c_str());
  std::printf("prefill    %zu tokens, %u layers, attention %s, mean density %.4f\n", tokens->size(),
              result.num_layers(), AttentionName(result.attention_mode()).c_str(), density);
  std::printf(
      "time       server compute %.3f s, queue %.3f s, total %.3f s; client wall %.3f s "
      "(%.0f tokens/s)\n",
      t.compute_seconds(), t.queue_seconds(), t.total_seconds(), wall_seconds,
      tokens->size() / std::max(wall_seconds, 1e-9));
  std::printf("received   KV %.2f MiB in %llu chunks (%s), first chunk after %.3f s\n",
              stats.kv_payload_bytes / (1024.0 * 1024.0),
              static_cast<unsigned long long>(stats.kv_chunks), CodecName(codec).c_str(),
              stats.first_kv_seconds);
  std::printf("first      token %d (logit %.4f)\n", result.first_token(),
              result.first_token_logit());
  if (kv_file != nullptr) {
    std::printf("saved      %s (%.1f MiB)\n", flags->Get("save-kv").c_str(),
                kv_file->bytes_written() / (1024.0 * 1024.0));
  }
  return 0;
}

}  // namespace sparsefill::cli
