// ca/kube/service_account_source.h — ServiceAccounts via informers (one per listened
// namespace, or one for all namespaces); caches only namespace/name.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "ca/controller/backends.h"
#include "ca/kube/informer_cache.h"

namespace istioca::ca {

class KubeServiceAccountSource final : public ServiceAccountSource, private InformerCache {
 public:
  // namespaces empty: all.
  KubeServiceAccountSource(std::shared_ptr<k8s::Api> api, std::vector<std::string> namespaces,
                           KubeInformerTuning tuning = {},
                           std::shared_ptr<SyncGate> gate = nullptr);
  ~KubeServiceAccountSource() override;
  void SetHandler(std::function<void(const ServiceAccountKey&)> on_change) override {
    SetChangeHandler(std::move(on_change));
  }
  Status Start() override { return StartInformers(); }
  void Stop() override { StopInformers(); }
  bool HasSynced() const override { return InformersSynced(); }
  Result<std::vector<ServiceAccountKey>> List() const override;
  Result<bool> Exists(const ServiceAccountKey& key) const override;

 private:
  void OnUpsert(const k8s::Json& object) override;
  void OnDelete(const std::string& ns, const std::string& name) override;
  std::vector<ServiceAccountKey> CachedKeys() const override;

  mutable std::mutex mu_;
  std::set<ServiceAccountKey> present_;
};

}  // namespace istioca::ca
