// ca/kube/root_cert_publisher.h — the trust bundle as Istio publishes it for istio-agent: the
// ConfigMap `istio-ca-root-cert` (data key root-cert.pem, label istio.io/config=true, the shape
// of ca/trust/distribution.h) in every namespace in scope, created, kept equal, re-created when
// deleted.
//
// Scope: the listened namespaces (the list the secret store gets). An empty list means every
// namespace: then a Namespace informer tells which exist, and Terminating ones are skipped (as
// Istio's namespace controller does). A listed namespace that does not exist, or is being
// deleted, answers the create with 404 / 403 NamespaceTerminating: it is left out of the
// progress count until it is seen again (an event for its ConfigMap, or the next Publish).
//
// How (Istio's InsertDataToConfigMap): an informer on ConfigMaps named istio-ca-root-cert keeps
// each namespace's current root-cert.pem; one worker writes only where it differs from the
// bundle: a create, or a read-modify-write that sets root-cert.pem and our label and keeps
// every other key, label and field (a Conflict re-reads and retries). A ConfigMap edited or
// deleted by someone else is repaired from its watch event; every informer resync re-checks
// all. Failures are retried after a capped exponential backoff (base/backoff.h); the worker
// waits out that backoff before its next write, so a failing API server is not hammered.
//
// Not promised: annotations, binaryData or anything else of ours in the ConfigMap (there is
// none); deleting ConfigMaps when the CA stops (Istio leaves them too).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/time.h"
#include "ca/controller/backends.h"
#include "ca/kube/informer_cache.h"
#include "k8s/api.h"

namespace istioca::ca {

struct RootCertPublisherTuning {
  KubeInformerTuning informers;
  std::chrono::milliseconds min_backoff{200};
  std::chrono::milliseconds max_backoff{30000};
};

class KubeRootCertPublisher final : public BundlePublisher {
 public:
  // `clock` stamps Progress().last_write and must outlive the publisher.
  KubeRootCertPublisher(std::shared_ptr<k8s::Api> api, std::vector<std::string> namespaces,
                        const Clock& clock, RootCertPublisherTuning tuning = {});
  ~KubeRootCertPublisher() override;
  KubeRootCertPublisher(const KubeRootCertPublisher&) = delete;
  KubeRootCertPublisher& operator=(const KubeRootCertPublisher&) = delete;

  void Publish(const std::string& bundle_pem, uint64_t generation) override;
  // updated/total count the namespaces in scope whose ConfigMap, as last seen, carries the
  // bundle. last_write: when this publisher last wrote the current bundle (unset while it has
  // written none: every ConfigMap already carried it).
  BundleProgress Progress() const override;
  // Idempotent; Start after Stop lists everything afresh (leadership can come back).
  Status Start() override;
  // Idempotent; returns once the informer and worker threads have ended.
  void Stop() override;

  // Creates and updates sent to the API (tests).
  uint64_t writes() const { return writes_.load(); }

 private:
  class Watch;
  struct ConfigMapState {
    uint64_t rv = 0;
    std::string root;  // its root-cert.pem
  };
  struct NamespaceState {
    bool active = true;  // exists and is not Terminating (as far as known)
    bool gone = false;   // a create answered 404 / NamespaceTerminating
  };

  // From the informer threads.
  void OnConfigMap(const k8s::Json& object);
  void OnConfigMapDeleted(const std::string& ns);
  void OnNamespace(const k8s::Json& object);
  void OnNamespaceDeleted(const std::string& name);
  void OnWatchSynced();
  void EnqueueAllLocked();
  void EnqueueLocked(const std::string& ns);
  bool InScopeLocked(const std::string& ns) const;

  void Run();
  // Makes one namespace's ConfigMap carry the bundle (no request when it already does).
  Status SyncOne(const std::string& ns);
  void Remember(const k8s::Json& object);

  const std::shared_ptr<k8s::Api> api_;
  const std::vector<std::string> listed_;  // empty: every namespace
  const Clock& clock_;
  const RootCertPublisherTuning tuning_;

  std::mutex lifecycle_mu_;  // Start/Stop
  bool running_ = false;
  std::unique_ptr<Watch> config_maps_;
  std::unique_ptr<Watch> namespaces_watch_;  // only when listed_ is empty
  std::thread worker_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool synced_ = false;
  std::string bundle_;
  uint64_t generation_ = 0;
  std::optional<TimePoint> last_write_;
  std::map<std::string, NamespaceState> namespaces_;
  std::map<std::string, ConfigMapState> config_map_state_;
  std::deque<std::string> queue_;
  std::set<std::string> queued_;
  std::atomic<uint64_t> writes_{0};
};

}  // namespace istioca::ca
