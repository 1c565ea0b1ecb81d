// ca/kube_backends.h — the controller's backends on the Kubernetes API (issue 4).
//
//   KubeServiceAccountSource  ServiceAccounts via informers (one per listened namespace, or
//                             one for all namespaces); caches only namespace/name.
//   KubeSecretStore           Secrets `istio.<sa>` of type istio.io/key-and-cert via an informer
//                             with the field selector type=istio.io/key-and-cert; Get() reads
//                             the cache (as client-go listers do), writes go to the API and
//                             are written through to the cache so the next read sees them.
//   KubeCaStore               the Secret `istio-ca-secret` (type istio.io/ca-root).
//   KubeTokenReviewer         TokenReview with --token-audiences; positive answers cached 10 s.
//   KubeLeaderElector         a coordination.k8s.io/v1 Lease `istio-ca-leader` in the storage
//                             namespace; only the holder runs the controller.
//
// Write rules (DESIGN.md, compat §4.6): AlreadyExists on create and NotFound on delete are
// reported with their codes (the controller treats both as done); a Conflict re-reads the
// object into the cache before returning kAborted, so the controller's retry sees the new
// version; an Update whose data equals what is stored writes nothing.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ca/controller/controller.h"
#include "ca/core/ca_store.h"
#include "ca/daemon/daemon.h"
#include "ca/grpc/authn.h"
#include "k8s/api.h"
#include "k8s/informer.h"
#include "k8s/objects.h"

namespace istioca::ca {

// Holds back change notifications until every backend sharing it has completed its first list,
// then replays them all at once: the controller's first pass then sees complete caches instead
// of thousands of "not synced yet" failures (Istio 1.1+ likewise waited for the secret cache
// before starting the service-account informer, PR #10067).
class SyncGate {
 public:
  explicit SyncGate(int members) : waiting_(members) {}
  // Registers what to replay once all members synced; runs it at once if they already have.
  void OnOpen(std::function<void()> replay);
  // A member's first complete list.
  void MemberSynced();
  bool open() const;

 private:
  mutable std::mutex mu_;
  int waiting_;
  std::vector<std::function<void()>> replays_;
};

struct KubeInformerTuning {
  k8s::SteadyDuration resync = std::chrono::minutes(1);
  k8s::SteadyDuration min_backoff = std::chrono::milliseconds(200);
  k8s::SteadyDuration max_backoff = std::chrono::seconds(30);
  int64_t page_size = 500;
};

class KubeServiceAccountSource final : public ServiceAccountSource {
 public:
  // namespaces empty: all.
  KubeServiceAccountSource(std::shared_ptr<k8s::Api> api, std::vector<std::string> namespaces,
                           KubeInformerTuning tuning = {},
                           std::shared_ptr<SyncGate> gate = nullptr);
  ~KubeServiceAccountSource() override;
  void SetHandler(std::function<void(const ServiceAccountKey&)> on_change) override;
  Status Start() override;
  void Stop() override;
  bool HasSynced() const override;
  Result<std::vector<ServiceAccountKey>> List() const override;
  Result<bool> Exists(const ServiceAccountKey& key) const override;

 private:
  struct Handler;
  void Notify(const ServiceAccountKey& key);
  void ReportSynced();
  std::shared_ptr<k8s::Api> api_;
  std::vector<std::string> namespaces_;
  KubeInformerTuning tuning_;
  std::shared_ptr<SyncGate> gate_;
  std::atomic<bool> gate_reported_{false};
  std::function<void(const ServiceAccountKey&)> on_change_;
  mutable std::mutex mu_;
  std::set<ServiceAccountKey> present_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  std::vector<std::unique_ptr<k8s::Informer>> informers_;
  std::vector<std::thread> threads_;
  k8s::Cancellation cancel_;
};

class KubeSecretStore final : public SecretStore {
 public:
  KubeSecretStore(std::shared_ptr<k8s::Api> api, std::vector<std::string> namespaces,
                  KubeInformerTuning tuning = {}, std::shared_ptr<SyncGate> gate = nullptr);
  ~KubeSecretStore() override;
  void SetHandler(std::function<void(const ServiceAccountKey&)> on_change) override;
  Status Start() override;
  void Stop() override;
  bool HasSynced() const override;
  Result<std::vector<ServiceAccountKey>> List() const override;
  Result<WorkloadSecret> Get(const ServiceAccountKey& key) const override;
  Status Create(const ServiceAccountKey& key, const WorkloadSecret& secret) override;
  Status Update(const ServiceAccountKey& key, const WorkloadSecret& secret) override;
  Status Delete(const ServiceAccountKey& key) override;

  // Writes sent to the API (creates + updates), for tests and benchmarks.
  uint64_t writes() const { return writes_.load(); }
  size_t cached() const;
  // Whether any cached field contains `bytes` (tests: no private key is held).
  bool CacheContains(const std::string& bytes) const;

  // The Secret istio-ca writes for `key` (DESIGN.md: type, annotation, three data keys).
  static k8s::Secret BuildSecret(const ServiceAccountKey& key, const WorkloadSecret& secret);

 private:
  struct Handler;
  struct Cached {
    uint64_t rv = 0;
    std::string rv_text;
    std::string chain;
    // Not the private key: its digest (to see that an update would change nothing) and the
    // result of the controller's structural check (what Get() reports instead of key.pem).
    std::string key_digest;
    bool key_looks_valid = false;
    std::shared_ptr<const std::string> root;  // shared: every secret holds the same roots
    std::map<std::string, std::string> labels;
    std::map<std::string, std::string> annotations;
  };
  // Stores `s` unless the cache already holds a newer version. Returns true when stored.
  bool Remember(const k8s::Secret& s);
  void Notify(const ServiceAccountKey& key);
  void ReportSynced();
  void Forget(const std::string& ns, const std::string& name, uint64_t rv);
  bool InScope(const std::string& ns) const;

  std::shared_ptr<k8s::Api> api_;
  std::vector<std::string> namespaces_;
  KubeInformerTuning tuning_;
  std::shared_ptr<SyncGate> gate_;
  std::atomic<bool> gate_reported_{false};
  std::function<void(const ServiceAccountKey&)> on_change_;
  mutable std::mutex mu_;
  std::map<ServiceAccountKey, Cached> cache_;
  std::shared_ptr<const std::string> last_root_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  std::vector<std::unique_ptr<k8s::Informer>> informers_;
  std::vector<std::thread> threads_;
  k8s::Cancellation cancel_;
  std::atomic<uint64_t> writes_{0};
};

class KubeCaStore final : public CaStore {
 public:
  KubeCaStore(std::shared_ptr<k8s::Api> api, std::string ns)
      : api_(std::move(api)), ns_(std::move(ns)) {}
  Result<StoredCa> Load() const override;
  Status Create(const StoredCa& ca) override;

 private:
  std::shared_ptr<k8s::Api> api_;
  std::string ns_;
};

class KubeTokenReviewer final : public TokenReviewer {
 public:
  KubeTokenReviewer(std::shared_ptr<k8s::Api> api, std::vector<std::string> audiences,
                    const Clock& clock, Duration cache_ttl = std::chrono::seconds(10));
  Result<pki::ServiceAccountRef> Review(const std::string& bearer_token) override;

 private:
  std::shared_ptr<k8s::Api> api_;
  std::vector<std::string> audiences_;
  const Clock& clock_;
  Duration ttl_;
  std::mutex mu_;
  std::map<std::string, std::pair<pki::ServiceAccountRef, TimePoint>>
      cache_;  // sha256 → (sa, expiry)
};

// Parses "system:serviceaccount:<ns>:<sa>" (a TokenReview username).
std::optional<pki::ServiceAccountRef> ParseServiceAccountUser(const std::string& username);

// ---- Leader election -------------------------------------------------------------------

struct LeaseConfig {
  std::string ns = "istio-system";
  std::string name = "istio-ca-leader";
  std::string identity;  // unique per replica
  Duration lease_duration = std::chrono::seconds(15);
  Duration renew_deadline = std::chrono::seconds(10);
  Duration retry_period = std::chrono::seconds(2);
};

enum class LeaseStep { kCreate, kRenew, kTakeOver, kWait };

// Pure decision over the lease as read: `observed_at` is when *we* first saw the lease's
// current renewTime/holder (our clock), so that a skewed clock on another replica cannot make
// us think a live lease expired (client-go does the same).
LeaseStep DecideLeaseStep(const std::optional<k8s::Lease>& current, TimePoint observed_at,
                          const std::string& identity, TimePoint now);

class KubeLeaderElector final : public LeaderElector {
 public:
  KubeLeaderElector(std::shared_ptr<k8s::Api> api, LeaseConfig config, const Clock& clock,
                    MetricsRegistry& metrics);
  ~KubeLeaderElector() override;
  Status Start(std::function<void(bool leading)> on_change) override;
  void Stop() override;
  bool leading() const { return leading_.load(); }
  // One round: read, decide, write. Returns whether we lead afterwards. Exposed for tests.
  bool TryAcquireOrRenew();

 private:
  void Loop();
  void SetLeading(bool leading);

  std::shared_ptr<k8s::Api> api_;
  LeaseConfig config_;
  const Clock& clock_;
  Gauge& leader_gauge_;
  std::function<void(bool)> on_change_;
  std::atomic<bool> leading_{false};
  TimePoint last_renew_{};
  std::string observed_key_;  // holder + renewTime last seen
  TimePoint observed_at_{};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// The Backends the daemon uses without --local-dir: kubeconfig (--kube-config) or in-cluster.
Result<Backends> MakeKubernetesBackends(const DaemonOptions& options, MetricsRegistry& metrics);

}  // namespace istioca::ca
