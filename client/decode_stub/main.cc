// sparsefill-decode-stub: a reference decode node. It has a sparsefill server prefill a prompt,
// receives the KV cache, pulled (the Prefill stream) or pushed (it runs a KvReceiver and names
// itself in PrefillRequest.kv_push), decoded from any codec, then runs one decode step of the same
// model on the CPU backend with that KV and prints the next token: the proof that the delivered
// KV is usable. With --check it also prefills prompt + first token locally (float32, the exact
// KV) and exits 3 when the next tokens differ.
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/cli/arg_parser.h"
#include "client/cli/rpc_common.h"
#include "client/cli/token_file.h"
#include "client/kv_receiver.h"
#include "client/prefill_client.h"
#include "grpcpp/grpcpp.h"
#include "worker/backend_factory.h"
#include "worker/model.h"

namespace sparsefill::decode_stub {
namespace {

const std::vector<cli::FlagSpec>& Flags() {
  static const std::vector<cli::FlagSpec> specs = {
      {"server", "HOST:PORT", "the sparsefill server", ""},
      {"tokens", "FILE",
       "prompt: safetensors with an int32 input_ids tensor, or whitespace-separated ids", ""},
      {"model", "DIR",
       "the model the server serves, loaded here for the decode step (CPU backend); empty: the "
       "embedded model",
       ""},
      {"codec", "NAME", "KV codec: raw_fp32, raw_bf16, lossless, fp8_e4m3, int8 or int4",
       "lossless"},
      {"push", "",
       "receive the KV by push: run a KvReceiver and name it in the request (else pull it from "
       "the Prefill stream)",
       ""},
      {"listen", "HOST:PORT", "with --push: where the KvReceiver listens", "127.0.0.1:0"},
      {"advertise", "HOST:PORT",
       "with --push: the endpoint the server connects to (default: 127.0.0.1 and the listening "
       "port)",
       ""},
      {"inject-drops", "K",
       "with --push: the receiver drops the connection once before chunk 1 and every K-th chunk "
       "after it (to show delivery resuming)",
       ""},
      {"check", "",
       "also prefill prompt + first token locally (exact float32 KV); exit 3 if the next tokens "
       "differ",
       ""},
      {"timeout", "SECONDS", "deadline for the prefill and the delivery", "none"},
  };
  return specs;
}

constexpr char kUsage[] =
    "sparsefill-decode-stub --server HOST:PORT --tokens FILE [--model DIR] [--codec NAME] "
    "[--push [--listen HOST:PORT] [--advertise HOST:PORT] [--inject-drops K]] [--check] "
    "[--timeout SECONDS]";
constexpr char kDescription[] =
    "A reference decode node: the server prefills the prompt, the KV cache arrives (pulled, or\n"
    "pushed to this process's KvReceiver) and is decoded, and one decode step of the model on\n"
    "the CPU backend over that KV prints the next token.";

int Fail(const std::string& message) {
  std::fprintf(stderr, "sparsefill-decode-stub: %s\n", message.c_str());
  return 1;
}

int Main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  int exit_code = 0;
  const std::optional<cli::ParsedFlags> flags = cli::ParseCommandFlags(
      {"decode-stub", kUsage, kDescription, Flags(), {"server", "tokens"}}, args, &exit_code);
  if (!flags) return exit_code;
  auto usage_error = [](const std::string& m) { return cli::UsageError("decode-stub", m); };

  v1::KvCodec codec = v1::KV_CODEC_UNSPECIFIED;
  if (const std::string name = flags->Get("codec");
      !v1::KvCodec_Parse(absl::StrCat("KV_CODEC_", absl::AsciiStrToUpper(name)), &codec) ||
      codec == v1::KV_CODEC_UNSPECIFIED || name != absl::AsciiStrToLower(name)) {
    return usage_error(absl::StrCat("--codec: unknown codec '", name, "'"));
  }
  absl::StatusOr<absl::Duration> timeout =
      cli::ParseTimeoutFlag(flags->Has("timeout") ? flags->Get("timeout") : "");
  if (!timeout.ok()) return usage_error(std::string(timeout.status().message()));
  const bool push = flags->Has("push") && flags->Get("push") != "false";
  const bool check = flags->Has("check") && flags->Get("check") != "false";

  absl::StatusOr<std::vector<int32_t>> tokens = cli::ReadTokenFile(flags->Get("tokens"));
  if (!tokens.ok()) return Fail(std::string(tokens.status().message()));
  auto backend = worker::MakeBackend("cpu");
  if (!backend.ok()) return Fail(std::string(backend.status().message()));
  auto model =
      worker::Model::Load(worker::ModelLoadOptions{flags->Get("model"), ""}, *std::move(backend));
  if (!model.ok()) return Fail(absl::StrCat("--model: ", model.status().message()));
  const worker::ModelConfig& c = (*model)->config();

  // Push: a KvReceiver in this process, named in the request.
  absl::Mutex mu;
  std::optional<client::KvReceiverService::Session> pushed;
  std::unique_ptr<client::KvReceiverService> receiver;
  std::unique_ptr<grpc::Server> receiver_server;
  std::string endpoint;
  if (push) {
    client::KvReceiverService::Options options;
    options.on_complete = [&](client::KvReceiverService::Session s) {
      absl::MutexLock lock(&mu);
      pushed = std::move(s);
    };
    if (flags->Has("inject-drops")) {
      int every = 0;
      if (!absl::SimpleAtoi(flags->Get("inject-drops"), &every) || every < 1) {
        return usage_error("--inject-drops must be a positive integer");
      }
      auto dropped = std::make_shared<std::set<uint64_t>>();
      options.drop_before_chunk = [every, dropped, &mu](const std::string&, uint64_t sequence) {
        absl::MutexLock lock(&mu);
        if (sequence % static_cast<uint64_t>(every) != 1 % static_cast<uint64_t>(every) ||
            !dropped->insert(sequence).second) {
          return false;
        }
        std::fprintf(stderr, "decode-stub: dropping the connection before chunk %llu\n",
                     static_cast<unsigned long long>(sequence));
        return true;
      };
    }
    receiver = std::make_unique<client::KvReceiverService>(std::move(options));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(flags->Get("listen"), grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(receiver.get());
    receiver_server = builder.BuildAndStart();
    if (receiver_server == nullptr || port == 0) {
      return Fail(absl::StrCat("cannot listen on ", flags->Get("listen")));
    }
    endpoint = flags->Has("advertise") ? flags->Get("advertise") : absl::StrCat("127.0.0.1:", port);
  }

  client::PrefillCall call;
  call.request = client::MakePrefillRequest(*tokens, codec, v1::ATTENTION_MODE_DENSE);
  call.timeout = *timeout;
  if (push) {
    call.request.mutable_kv_push()->set_endpoint(endpoint);
    call.request.mutable_kv_push()->set_session_id(
        absl::StrCat("decode-stub-", absl::ToUnixNanos(absl::Now())));
  }
  const std::string server = flags->Get("server");
  client::PrefillClient prefill_client(server);
  absl::StatusOr<client::PrefillReply> reply = prefill_client.Prefill(call);
  if (!reply.ok()) return Fail(cli::DescribeRpcError(reply.status(), server));

  std::vector<client::KvLayer> layers;
  if (push) {
    // The server sends the result only after the receiver acknowledged everything.
    absl::MutexLock lock(&mu);
    if (!pushed.has_value()) return Fail("the push completed but no session arrived");
    layers = std::move(pushed->layers);
  } else {
    layers = std::move(reply->layers);
  }
  if (static_cast<int>(layers.size()) != c.num_layers || layers.empty() ||
      layers[0].kv_heads != c.num_kv_heads || layers[0].head_dim != c.head_dim) {
    return Fail("the server's KV does not have this model's shape (is --model the server's?)");
  }
  std::vector<worker::PastKvLayer> past;
  for (const client::KvLayer& l : layers) past.push_back({l.k.data(), l.v.data()});
  const int32_t first = reply->result.first_token();
  const int64_t n = static_cast<int64_t>(tokens->size());
  absl::StatusOr<worker::DecodeStepOutput> step = (*model)->DecodeStep(past, n, first);
  if (!step.ok()) return Fail(std::string(step.status().message()));

  std::printf("received   KV of %lld tokens x %d layers, %s, %s, %.2f MiB on the wire\n",
              static_cast<long long>(n), c.num_layers, push ? "pushed" : "pulled",
              cli::CodecName(codec).c_str(), reply->result.kv_bytes_sent() / (1024.0 * 1024.0));
  std::printf("first      token %d (the server's prefill)\n", first);
  std::printf("next       token %d (logit %.4f; one decode step over the received KV, cpu)\n",
              step->next_token, step->next_token_logit);
  if (check) {
    std::vector<int32_t> longer = *tokens;
    longer.push_back(first);
    auto reference = (*model)->Prefill(longer, worker::PrefillOptions{});
    if (!reference.ok()) return Fail(std::string(reference.status().message()));
    const bool same = reference->first_token == step->next_token;
    std::printf("reference  token %d (local float32 prefill of prompt + first token): %s\n",
                reference->first_token, same ? "match" : "MISMATCH");
    if (!same) return 3;
  }
  return 0;
}

}  // namespace
}  // namespace sparsefill::decode_stub

int main(int argc, char** argv) { return sparsefill::decode_stub::Main(argc, argv); }
