// ca/daemon/grpc_component.cc — the gRPC CSR server (ca/grpc/server.h) as a daemon component.
//
// The adapter lives with the daemon so that ca/grpc does not depend on it: the server is a plain
// class with its own options, and this file maps the daemon's flags and context onto them.
#include <memory>

#include "ca/daemon/daemon.h"
#include "ca/daemon/liveness.h"
#include "ca/grpc/server.h"

namespace istioca::ca {

namespace {

class GrpcComponent final : public DaemonComponent {
 public:
  explicit GrpcComponent(DaemonContext& ctx) : ctx_(ctx) {}
  std::string Name() const override { return "grpc"; }
  Status Start() override {
    GrpcServerOptions options;
    options.listen_address = "0.0.0.0:" + std::to_string(ctx_.options.grpc_port);
    options.host_identities = ctx_.options.grpc_host_identities;
    options.storage_namespace = ctx_.options.storage_namespace;
    options.events = &ctx_.events;
    options.limits.per_identity_qps = ctx_.options.csr_rate_limit_qps;
    options.limits.per_identity_burst = ctx_.options.csr_rate_limit_burst;
    options.limits.max_queued_calls = static_cast<size_t>(ctx_.options.csr_queue_size);
    options.limits.signing_threads = ctx_.options.csr_signing_threads;
    options.limits.token_review_threads = ctx_.options.token_review_threads;
    ASSIGN_OR_RETURN(server_, GrpcServer::Start(ctx_.authority, ctx_.token_reviewer, options,
                                                ctx_.metrics, ctx_.clock));
    return OkStatus();
  }
  void Stop() override {
    if (server_) server_->Stop();
  }
  bool Ready() const override { return server_ != nullptr && server_->Ready(); }
  // As Istio's checker: a CSR over TLS to our own port, under an identity of the CA's own.
  Status LivenessCheck(Duration timeout) override {
    if (!server_) return Unavailable("the gRPC server is not running");
    return server_->SelfCheck(
        LivenessIdentity(ctx_.options.trust_domain, ctx_.options.storage_namespace), timeout);
  }

 private:
  DaemonContext& ctx_;
  std::unique_ptr<GrpcServer> server_;
};

}  // namespace

Result<std::unique_ptr<DaemonComponent>> MakeGrpcComponent(DaemonContext& ctx) {
  if (ctx.options.grpc_port == 0) return std::unique_ptr<DaemonComponent>();
  return std::unique_ptr<DaemonComponent>(std::make_unique<GrpcComponent>(ctx));
}

}  // namespace istioca::ca
