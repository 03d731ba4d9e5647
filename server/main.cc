// sparsefill-server: serves prefills of one model over gRPC (sparsefill.v1.PrefillService) with
// Prometheus metrics. Parses flags, loads the model, starts the server, waits for SIGTERM or
// SIGINT, drains within the grace period and exits 0.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/logger.h"
#include "server/prefill_server.h"
#include "worker/backend_factory.h"
#include "worker/cuda_backend.h"
#include "worker/embedded_model.h"
#include "worker/model.h"

ABSL_FLAG(
    std::string, model, "",
    "Hugging Face Llama-family checkpoint folder (config.json + safetensors), gguf:FILE (a GGUF "
    "model; deploy/fetch_models.sh fetches SmolLM2-135M) or random:SHAPE (seeded random "
    "weights); empty serves the built-in model " +
        std::string(sparsefill::worker::kEmbeddedModelName));
ABSL_FLAG(std::string, pattern_config, "",
          "the model's sparse pattern config (sparsefill or MInference JSON) for "
          "ATTENTION_MODE_MODEL_SPARSE; empty: <model>/sparsefill_patterns.json if present, else "
          "vertical_slash 1000/6096 on every head");
ABSL_FLAG(std::string, listen, "0.0.0.0:50051", "gRPC listen address (port 0 picks a free port)");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9400",
          "Prometheus /metrics listen address; empty disables the exporter");
ABSL_FLAG(std::string, backend, "auto",
          "compute backend: auto (CUDA when a GPU is present, else CPU), cpu or cuda");
ABSL_FLAG(int64_t, max_prompt_tokens, 32768, "longest prompt accepted, in tokens");
ABSL_FLAG(int32_t, max_queued_requests, 16,
          "admitted requests that may wait for a worker; one more gets RESOURCE_EXHAUSTED at once");
ABSL_FLAG(int32_t, max_concurrent_per_worker, 1, "prefills each worker runs at a time");
ABSL_FLAG(
    double, shutdown_grace_seconds, 30,
    "on SIGTERM/SIGINT: how long requests in flight and queued may take to finish before they "
    "are cancelled");
ABSL_FLAG(std::string, port_file, "",
          "write the bound gRPC port to this file once listening (for scripts and tests)");
ABSL_FLAG(std::string, metrics_port_file, "",
          "write the bound /metrics port to this file once listening (for scripts and tests)");

namespace sparsefill::server {
namespace {

// Writes the port to a temporary file and renames it, so a reader never sees a partial file.
bool WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out.good()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

int Main(int argc, char** argv, const sigset_t& stop_signals) {
  Logger log("main");
  absl::FlagsUsageConfig usage;
  // Show this binary's flags in --help (absl shows only "main"-named files by default).
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "serves long-context prefills over gRPC (sparsefill.v1.PrefillService) with Prometheus "
      "metrics.\nUsage: sparsefill-server [--model DIR] [--listen ADDR] [--metrics_listen ADDR] "
      "...");
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::fprintf(stderr, "sparsefill-server: unexpected argument '%s' (see --help)\n",
                 positional[1]);
    return 2;
  }

  ServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_listen);
  options.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  options.max_queued_requests = absl::GetFlag(FLAGS_max_queued_requests);
  options.max_concurrent_per_worker = absl::GetFlag(FLAGS_max_concurrent_per_worker);
  const double grace_seconds = absl::GetFlag(FLAGS_shutdown_grace_seconds);
  if (!(grace_seconds >= 0)) {
    std::fprintf(stderr, "sparsefill-server: --shutdown_grace_seconds must be 0 or more\n");
    return 2;
  }

  // One model per GPU (each worker owns a device), or one shared CPU model.
  const std::string backend_name = absl::GetFlag(FLAGS_backend);
  const bool use_cuda =
      backend_name == "cuda" || (backend_name == "auto" && worker::CudaDeviceAvailable());
  const int model_copies = use_cuda ? std::max(1, worker::CudaDeviceCount()) : 1;
  worker::ModelLoadOptions load;
  load.model_dir = absl::GetFlag(FLAGS_model);
  load.pattern_config_path = absl::GetFlag(FLAGS_pattern_config);
  std::vector<std::shared_ptr<const worker::Model>> models;
  for (int device = 0; device < model_copies; ++device) {
    absl::StatusOr<std::unique_ptr<worker::Backend>> backend =
        use_cuda ? worker::MakeCudaBackend(worker::CudaBackendOptions{device})
                 : worker::MakeBackend(backend_name);
    if (!backend.ok()) {
      std::fprintf(stderr, "sparsefill-server: --backend %s: %s\n", backend_name.c_str(),
                   std::string(backend.status().message()).c_str());
      return 1;
    }
    log.Info("", absl::StrCat("loading ",
                              load.model_dir.empty() ? worker::kEmbeddedModelName : load.model_dir,
                              " on ", (*backend)->name(), use_cuda ? absl::StrCat(" ", device) : ""));
    absl::StatusOr<std::unique_ptr<worker::Model>> model =
        worker::Model::Load(load, *std::move(backend));
    if (!model.ok()) {
      std::fprintf(stderr, "sparsefill-server: cannot load the model: %s\n",
                   std::string(model.status().message()).c_str());
      return 1;
    }
    models.push_back(*std::move(model));
  }

  absl::StatusOr<std::unique_ptr<PrefillServer>> server =
      use_cuda ? PrefillServer::Start(std::move(models), options)
               : PrefillServer::Start(models.front(), options);
  if (!server.ok()) {
    std::fprintf(stderr, "sparsefill-server: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  log.Info("", absl::StrCat("listening: gRPC ", options.listen_address, " (port ",
                            (*server)->port(), ")",
                            options.metrics_address.empty()
                                ? ", metrics disabled"
                                : absl::StrCat(", metrics http://", options.metrics_address,
                                               "/metrics (port ", (*server)->metrics_port(), ")")));
  // The metrics port first: a script that waits for --port_file then finds both.
  for (const auto& [flag, path, port] :
       {std::tuple{"--metrics_port_file", absl::GetFlag(FLAGS_metrics_port_file),
                   (*server)->metrics_port()},
        std::tuple{"--port_file", absl::GetFlag(FLAGS_port_file), (*server)->port()}}) {
    if (!path.empty() && !WritePortFile(path, port)) {
      std::fprintf(stderr, "sparsefill-server: cannot write %s %s\n", flag, path.c_str());
      (*server)->Shutdown(absl::ZeroDuration());
      return 1;
    }
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  log.Info("", absl::StrCat("received ", signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
                            "; draining for up to ", grace_seconds, " s"));
  (*server)->Shutdown(absl::Seconds(grace_seconds));
  log.Info("", "exiting");
  return 0;
}

}  // namespace
}  // namespace sparsefill::server

int main(int argc, char** argv) {
  // Block the stop signals before any thread exists (threads inherit the mask), so they are
  // delivered only to sigwait in the main thread, never to a random gRPC or worker thread.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return sparsefill::server::Main(argc, argv, stop_signals);
}
