// PrefillServer: assembles the gRPC server (service, health, reflection), the worker pool and the
// metrics exporter, and runs the shutdown sequence (see prefill_server.h).
#include "server/prefill_server.h"


#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/logger.h"
#include "server/metrics_http_server.h"
#include "server/prefill_call.h"
#include "server/prefill_service.h"
#include "server/server_metrics.h"
#include "server/worker_pool.h"

namespace sparsefill::server {
namespace {

constexpr char kServiceName[] = "sparsefill.v1.PrefillService";

absl::Status CheckOptions(const ServerOptions& o) {
  auto bad = [](absl::string_view field, int64_t value, absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is ", value, "; it must be ", rule));
  };
  if (o.max_prompt_tokens < 1) return bad("max_prompt_tokens", o.max_prompt_tokens, "at least 1");
  if (o.max_queued_requests < 0)
    return bad("max_queued_requests", o.max_queued_requests, "0 or more");
  if (o.num_workers < 1) return bad("num_workers", o.num_workers, "at least 1");
  if (o.max_concurrent_per_worker < 1) {
    return bad("max_concurrent_per_worker", o.max_concurrent_per_worker, "at least 1");
  }
  if (o.max_buffered_bytes_per_call < 0) {
    return bad("max_buffered_bytes_per_call", o.max_buffered_bytes_per_call, "0 or more");
  }
  return absl::OkStatus();
}

class PrefillServerImpl final : public PrefillServer {
 public:
  PrefillServerImpl(std::vector<std::shared_ptr<const worker::Model>> models,
                    const ServerOptions& options)
      : options_(options),
        metrics_(options.num_workers),
        pool_(WorkerPool::Options{options.num_workers, options.max_concurrent_per_worker,
                                  options.max_queued_requests}) {
    const worker::ModelConfig& c = models.front()->config();
    env_.model = models.front();
    env_.worker_models = std::move(models);
    env_.limits = RequestLimits{c.vocab_size, options.max_prompt_tokens, c.num_layers, c.num_heads,
                                c.head_dim};
    env_.max_buffered_bytes_per_call = options.max_buffered_bytes_per_call;
    env_.pool = &pool_;
    env_.metrics = &metrics_;
    service_ = std::make_unique<PrefillServiceImpl>(&env_);
  }

  ~PrefillServerImpl() override { Shutdown(absl::ZeroDuration()); }

  absl::Status Init();

  int port() const override { return port_; }
  int metrics_port() const override { return metrics_port_; }

  ServerStats stats() const override {
    ServerStats s;
    s.queued = pool_.queued();
    s.running = pool_.running();
    s.waiting_on_client = env_.waiting_on_client.load();
    return s;
  }

  void Shutdown(absl::Duration grace) override;

 private:
  const ServerOptions options_;
  Logger log_{"server"};
  // Destroyed in reverse order: the exporter and the gRPC server go first (the server waits for
  // every call's OnDone), then the service, the calls' environment, the pool and the metrics.
  ServerMetrics metrics_;
  WorkerPool pool_;
  CallEnvironment env_;
  std::unique_ptr<PrefillServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsHttpServer> exposer_;
  int port_ = 0;
  int metrics_port_ = 0;

  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

absl::Status PrefillServerImpl::Init() {
  if (!options_.metrics_address.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> exposer =
        MetricsHttpServer::Start(options_.metrics_address, metrics_.registry());
    if (!exposer.ok()) return exposer.status();
    exposer_ = *std::move(exposer);
    metrics_port_ = exposer_->port();
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen_address, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(service_.get());
  // Let the largest valid request through gRPC so validation, not a transport limit, answers
  // (with the field named): up to 10 bytes per packed token id (negative ids are 10-byte varints),
  // plus the inline config.
  const int64_t max_request = std::min<int64_t>(options_.max_prompt_tokens, int64_t{1} << 30) * 10 +
                              int64_t{2} * kMaxInlinePatternConfigBytes;
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::clamp<int64_t>(max_request, 4 << 20, INT32_MAX)));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen_address));
  }
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(true);
    health->SetServingStatus(kServiceName, true);
  }
  log_.Info(
      "", absl::StrCat(
              "serving ", env_.model->name(), " (", env_.model->config().Summary(), ") on ",
              env_.model->backend_name(), ": gRPC port ", port_,
              metrics_port_ != 0 ? absl::StrCat(", metrics port ", metrics_port_) : ", no metrics",
              "; ", options_.num_workers, " worker(s) x ", options_.max_concurrent_per_worker,
              ", queue ", options_.max_queued_requests));
  return absl::OkStatus();
}

void PrefillServerImpl::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  env_.shutting_down.store(true);
  if (server_ != nullptr) {
    log_.Info("", absl::StrCat("shutting down: ", pool_.running(), " running, ", pool_.queued(),
                               " queued; grace ", absl::FormatDuration(grace)));
    if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
        health != nullptr) {
      health->SetServingStatus(false);
      health->SetServingStatus(kServiceName, false);
    }
    // Stops accepting, waits for calls in flight (queued ones keep running on the pool) until
    // the deadline, then cancels the rest, whose workers stop at their next layer boundary; it
    // returns once every call is done.
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  }
  pool_.Shutdown();
  // The exporter goes last so the drain stays observable (it stops within its 200 ms poll).
  exposer_.reset();
  if (server_ != nullptr) log_.Info("", "stopped");
}

}  // namespace

absl::StatusOr<std::unique_ptr<PrefillServer>> PrefillServer::Start(
    std::shared_ptr<const worker::Model> model, const ServerOptions& options) {
  if (model == nullptr) return absl::InvalidArgumentError("no model");
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  // Every worker shares the one model (the CPU backend runs prefills concurrently).
  std::vector<std::shared_ptr<const worker::Model>> models(options.num_workers, model);
  auto server = std::make_unique<PrefillServerImpl>(std::move(models), options);
  if (absl::Status s = server->Init(); !s.ok()) return s;
  return server;
}

absl::StatusOr<std::unique_ptr<PrefillServer>> PrefillServer::Start(
    std::vector<std::shared_ptr<const worker::Model>> models, ServerOptions options) {
  if (models.empty()) return absl::InvalidArgumentError("no model");
  for (const auto& m : models) {
    if (m == nullptr) return absl::InvalidArgumentError("no model");
    if (m->config().Summary() != models.front()->config().Summary()) {
      return absl::InvalidArgumentError("the workers' models differ");
    }
  }
  options.num_workers = static_cast<int>(models.size());
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  auto server = std::make_unique<PrefillServerImpl>(std::move(models), options);
  if (absl::Status s = server->Init(); !s.ok()) return s;
  return server;
}

}  // namespace sparsefill::server
