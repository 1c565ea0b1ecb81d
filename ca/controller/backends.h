// ca/controller/backends.h — what the secret controller is generic over: where service
// accounts come from, where workload secrets live, and who may run the controller.
//
// Implementations: ca/local/ (a directory) and ca/kube/ (the Kubernetes API). Only ca/daemon/
// names a concrete one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/secret.h"
#include "base/status.h"
#include "base/time.h"

namespace istioca::ca {

// A service account, and therefore the secret `istio.<name>` in namespace `ns`.
struct ServiceAccountKey {
  std::string ns;
  std::string name;

  std::string SecretName() const { return "istio." + name; }
  std::string ToString() const { return ns + "/" + name; }
  auto operator<=>(const ServiceAccountKey&) const = default;
};

// Istio's secret data keys (type istio.io/key-and-cert).
inline constexpr const char* kCertChainKey = "cert-chain.pem";
inline constexpr const char* kPrivateKeyKey = "key.pem";
inline constexpr const char* kRootCertKey = "root-cert.pem";
inline constexpr const char* kSecretNamePrefix = "istio.";
inline constexpr const char* kWorkloadSecretType = "istio.io/key-and-cert";
inline constexpr const char* kServiceAccountAnnotation = "istio.io/service-account.name";

// The content of one workload secret. Move-only, as its key is: Clone() is the one way to copy.
struct WorkloadSecret {
  std::string cert_chain_pem;
  SecretString key_pem;
  std::string root_cert_pem;
  // Opaque version of what was read (Kubernetes resourceVersion; the local generation
  // directory). Update() succeeds only if the stored version still equals it (optimistic
  // concurrency); Get() fills it; Create() ignores it.
  std::string version;
  // Stores that keep no private key in memory (the Kubernetes cache) answer Get() with an
  // empty key_pem and say here whether the stored key.pem looked like a private key
  // (LooksLikePrivateKeyPem). Unset: key_pem is the stored content.
  std::optional<bool> stored_key_looks_valid;

  // Whether the stored key.pem is usable as far as the controller checks.
  bool KeyLooksValid() const;
  // A copy, key included (for fakes and tests that keep what they were given).
  WorkloadSecret Clone() const {
    WorkloadSecret out{cert_chain_pem, SecretString(std::string(key_pem.str())), root_cert_pem,
                       version};
    out.stored_key_looks_valid = stored_key_looks_valid;
    return out;
  }
};

// Cheap structural check of key.pem: parsing keys is slow in OpenSSL 3 and serialises threads,
// so the controller never decodes a published key; it only checks there is one.
inline bool LooksLikePrivateKeyPem(const std::string& pem) {
  return pem.find("-----BEGIN ") != std::string::npos &&
         pem.find("PRIVATE KEY-----") != std::string::npos;
}

inline bool WorkloadSecret::KeyLooksValid() const {
  return stored_key_looks_valid.value_or(LooksLikePrivateKeyPem(key_pem.str()));
}

// Where service accounts come from. Implementations: local directory, Kubernetes informer.
// Thread-safe. The handler may be called from any thread, must be cheap, and carries the key
// that may have changed (added or deleted); the controller re-reads the state itself.
class ServiceAccountSource {
 public:
  virtual ~ServiceAccountSource() = default;
  // Called once, before Start().
  virtual void SetHandler(std::function<void(const ServiceAccountKey&)> on_change) = 0;
  // Begins watching. Returns quickly; HasSynced() turns true after the first complete list.
  virtual Status Start() = 0;
  virtual void Stop() = 0;
  virtual bool HasSynced() const = 0;
  // Every service account in scope (the listened namespaces), from the current cache.
  virtual Result<std::vector<ServiceAccountKey>> List() const = 0;
  virtual Result<bool> Exists(const ServiceAccountKey& key) const = 0;
};

// Where workload secrets live. Implementations: local directory, Kubernetes API (+ informer).
// Thread-safe (the controller writes from a small worker pool). Error codes are the contract:
//   Get:    kNotFound when absent. Content is returned as stored even if it does not parse.
//   Create: kAlreadyExists when present.
//   Update: kNotFound when absent; kAborted (conflict) when the stored version != secret.version.
//   Delete: kNotFound when absent (the controller treats it as success).
//   other codes (kUnavailable, kPermissionDenied, kInternal, ...) are retried with backoff.
class SecretStore {
 public:
  virtual ~SecretStore() = default;
  // Called once, before Start(). Notified when a secret is changed or deleted by anyone.
  virtual void SetHandler(std::function<void(const ServiceAccountKey&)> on_change) = 0;
  virtual Status Start() = 0;
  virtual void Stop() = 0;
  virtual bool HasSynced() const = 0;
  // The service accounts of every workload secret in scope (to find orphans).
  virtual Result<std::vector<ServiceAccountKey>> List() const = 0;
  virtual Result<WorkloadSecret> Get(const ServiceAccountKey& key) const = 0;
  virtual Status Create(const ServiceAccountKey& key, const WorkloadSecret& secret) = 0;
  virtual Status Update(const ServiceAccountKey& key, const WorkloadSecret& secret) = 0;
  virtual Status Delete(const ServiceAccountKey& key) = 0;
};

// How far one bundle generation has been published by a BundlePublisher.
struct BundleProgress {
  uint64_t generation = 0;              // the generation last passed to Publish (0: none yet)
  size_t updated = 0;                   // objects carrying it
  size_t total = 0;                     // objects that must carry it
  std::optional<TimePoint> last_write;  // when the last of the `updated` objects was written
  bool synced = false;                  // every object in scope has been listed at least once
};

// Where the trust bundle is published besides the workload secrets. Kubernetes: the ConfigMap
// `istio-ca-root-cert` (data key `root-cert.pem`, label istio.io/config=true) in every listened
// namespace, created, kept equal and re-created when deleted (ca/kube/root_cert_publisher.h).
// Local mode has none (the trust loop writes DIR/ca/root-cert.pem itself). Thread-safe. Runs on
// the leader only: Start() when leadership is acquired, Stop() when lost.
class BundlePublisher {
 public:
  virtual ~BundlePublisher() = default;
  // The bundle every object must carry from now on. Returns at once; the writes happen in the
  // background, one per object whose content differs, at the client's QPS limit, retried with
  // backoff. May be called before Start().
  virtual void Publish(const std::string& bundle_pem, uint64_t generation) = 0;
  virtual BundleProgress Progress() const = 0;
  virtual Status Start() = 0;
  virtual void Stop() = 0;
};

// Runs the secret controller only while leading (Kubernetes Lease). Absent: always leading.
class LeaderElector {
 public:
  virtual ~LeaderElector() = default;
  // on_change(true) when leadership is acquired, on_change(false) when lost. Called from the
  // elector's own thread.
  virtual Status Start(std::function<void(bool leading)> on_change) = 0;
  virtual void Stop() = 0;
};

}  // namespace istioca::ca
