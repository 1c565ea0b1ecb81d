// ca/kube/secret_store.h — workload Secrets `istio.<sa>` of type istio.io/key-and-cert via an
// informer with the field selector type=istio.io/key-and-cert. Get() reads the cache (as
// client-go listers do); writes go to the API and are written through to the cache so the next
// read sees them.
//
// Write rules (DESIGN.md, compat §4.6): AlreadyExists on create and NotFound on delete are
// reported with their codes (the controller treats both as done); a Conflict re-reads the
// object into the cache before returning kAborted, so the controller's retry sees the new
// version; an Update whose data equals what is stored writes nothing.
//
// The cache holds no private key: only a digest of key.pem (to see that an update would change
// nothing) and whether it looked like a key (what Get() reports instead).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ca/controller/backends.h"
#include "ca/kube/informer_cache.h"
#include "k8s/objects.h"

namespace istioca::ca {

class KubeSecretStore final : public SecretStore, private InformerCache {
 public:
  KubeSecretStore(std::shared_ptr<k8s::Api> api, std::vector<std::string> namespaces,
                  KubeInformerTuning tuning = {}, std::shared_ptr<SyncGate> gate = nullptr);
  ~KubeSecretStore() override;
  void SetHandler(std::function<void(const ServiceAccountKey&)> on_change) override {
    SetChangeHandler(std::move(on_change));
  }
  Status Start() override { return StartInformers(); }
  void Stop() override { StopInformers(); }
  bool HasSynced() const override { return InformersSynced(); }
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
  struct Cached {
    uint64_t rv = 0;
    std::string rv_text;
    std::string chain;
    // Not the private key: its digest and the result of the controller's structural check.
    std::string key_digest;
    bool key_looks_valid = false;
    std::shared_ptr<const std::string> root;  // shared: every secret holds the same roots
    std::map<std::string, std::string> labels;
    std::map<std::string, std::string> annotations;
  };
  void OnUpsert(const k8s::Json& object) override;
  void OnDelete(const std::string& ns, const std::string& name) override;
  std::vector<ServiceAccountKey> CachedKeys() const override;
  // Stores `s` unless the cache already holds a newer version. Returns true when stored.
  bool Remember(const k8s::Secret& s);
  // Reads the secret from the API into the cache (after a conflict or AlreadyExists).
  void RememberCurrent(const ServiceAccountKey& key);
  void Forget(const std::string& ns, const std::string& name);

  mutable std::mutex mu_;
  std::map<ServiceAccountKey, Cached> cache_;
  std::shared_ptr<const std::string> last_root_;
  std::atomic<uint64_t> writes_{0};
};

}  // namespace istioca::ca
