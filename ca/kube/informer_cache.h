// ca/kube/informer_cache.h — what the Kubernetes service-account source and secret store share:
// one informer per listened namespace (or one over all) on its own thread, feeding the derived
// class's cache; the controller's change handler, held back by the sync gate until every backend
// has listed once; then a replay of every cached key.
//
// A derived class implements OnUpsert/OnDelete (keep its cache, call Notify) and CachedKeys
// (what to replay), and must call StopInformers() in its own destructor: the informer threads
// call its overrides.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "ca/controller/backends.h"
#include "ca/kube/sync_gate.h"
#include "k8s/api.h"
#include "k8s/informer.h"

namespace istioca::ca {

struct KubeInformerTuning {
  k8s::SteadyDuration resync = std::chrono::minutes(1);
  k8s::SteadyDuration min_backoff = std::chrono::milliseconds(200);
  k8s::SteadyDuration max_backoff = std::chrono::seconds(30);
  int64_t page_size = 500;
  // When resyncs are due (the daemon's clock). Null: the system clock.
  const Clock* clock = nullptr;
};

// A resourceVersion as a number, to drop events older than what a cache holds; 0 when it is not
// one (then the event is taken).
uint64_t ParseResourceVersion(const std::string& rv);

class InformerCache {
 protected:
  // namespaces empty: all. gate null: notifications are passed on from the start.
  InformerCache(std::shared_ptr<k8s::Api> api, std::vector<std::string> namespaces,
                k8s::Resource resource, std::string field_selector, KubeInformerTuning tuning,
                std::shared_ptr<SyncGate> gate);
  virtual ~InformerCache();
  InformerCache(const InformerCache&) = delete;
  InformerCache& operator=(const InformerCache&) = delete;

  void SetChangeHandler(std::function<void(const ServiceAccountKey&)> on_change);
  Status StartInformers();
  void StopInformers();
  // Every informer has completed its first list.
  bool InformersSynced() const;

  // Called from the informer threads.
  virtual void OnUpsert(const k8s::Json& object) = 0;
  virtual void OnDelete(const std::string& ns, const std::string& name) = 0;
  // The keys to replay when the gate opens.
  virtual std::vector<ServiceAccountKey> CachedKeys() const = 0;
  // After any list (first or relist) once every informer has listed, and every resync period:
  // for a derived class that re-checks everything itself (level-triggered repair).
  virtual void OnInformersSynced() {}
  virtual void OnInformersResync() {}

  // Tells the controller `key` may have changed (unless the gate still holds notifications
  // back: the replay covers them).
  void Notify(const ServiceAccountKey& key);
  bool InScope(const std::string& ns) const;
  k8s::Api& api() const { return *api_; }

 private:
  struct Handler;
  void ReportSynced();

  std::shared_ptr<k8s::Api> api_;
  const std::vector<std::string> namespaces_;
  const k8s::Resource resource_;
  const std::string field_selector_;
  const KubeInformerTuning tuning_;
  std::shared_ptr<SyncGate> gate_;
  std::atomic<bool> gate_reported_{false};
  std::function<void(const ServiceAccountKey&)> on_change_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  std::vector<std::unique_ptr<k8s::Informer>> informers_;
  std::vector<std::thread> threads_;
  k8s::Cancellation cancel_;
};

}  // namespace istioca::ca
