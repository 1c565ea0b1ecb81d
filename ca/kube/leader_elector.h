// ca/kube/leader_elector.h — the controller's LeaderElector on a Kubernetes Lease
// (`istio-ca-leader` in the storage namespace): only the holder runs the secret controller.
// The Lease logic is k8s/lease.h; this only adapts it to ca/controller/backends.h.
#pragma once

#include <memory>

#include "ca/controller/backends.h"
#include "k8s/lease.h"

namespace istioca::ca {

class KubeLeaderElector final : public LeaderElector {
 public:
  KubeLeaderElector(std::shared_ptr<k8s::Api> api, k8s::LeaseConfig config, const Clock& clock,
                    MetricsRegistry& metrics)
      : lease_(std::move(api), std::move(config), clock, metrics) {}
  Status Start(std::function<void(bool leading)> on_change) override {
    return lease_.Start(std::move(on_change));
  }
  void Stop() override { lease_.Stop(); }
  bool leading() const { return lease_.leading(); }
  // One round without the thread (tests).
  bool TryAcquireOrRenew() { return lease_.TryAcquireOrRenew(); }

 private:
  k8s::LeaseElector lease_;
};

}  // namespace istioca::ca
