#include "ca/kube/service_account_source.h"

#include "k8s/objects.h"

namespace istioca::ca {

KubeServiceAccountSource::KubeServiceAccountSource(std::shared_ptr<k8s::Api> api,
                                                   std::vector<std::string> namespaces,
                                                   KubeInformerTuning tuning,
                                                   std::shared_ptr<SyncGate> gate)
    : InformerCache(std::move(api), std::move(namespaces), k8s::kServiceAccounts, "", tuning,
                    std::move(gate)) {}

KubeServiceAccountSource::~KubeServiceAccountSource() { StopInformers(); }

void KubeServiceAccountSource::OnUpsert(const k8s::Json& o) {
  k8s::ObjectMeta m = k8s::MetaFromJson(o);
  ServiceAccountKey key{m.ns, m.name};
  bool added;
  {
    std::lock_guard<std::mutex> lock(mu_);
    added = present_.insert(key).second;
  }
  // Only existence matters to the controller: label changes are not news.
  if (added) Notify(key);
}

void KubeServiceAccountSource::OnDelete(const std::string& ns, const std::string& name) {
  ServiceAccountKey key{ns, name};
  {
    std::lock_guard<std::mutex> lock(mu_);
    present_.erase(key);
  }
  Notify(key);
}

std::vector<ServiceAccountKey> KubeServiceAccountSource::CachedKeys() const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::vector<ServiceAccountKey>(present_.begin(), present_.end());
}

Result<std::vector<ServiceAccountKey>> KubeServiceAccountSource::List() const {
  return CachedKeys();
}

Result<bool> KubeServiceAccountSource::Exists(const ServiceAccountKey& key) const {
  bool synced = HasSynced();
  std::lock_guard<std::mutex> lock(mu_);
  if (present_.contains(key)) return true;
  // Absence means something only once the first list is complete.
  if (!synced) return Unavailable("service account cache not synced yet");
  return false;
}

}  // namespace istioca::ca
