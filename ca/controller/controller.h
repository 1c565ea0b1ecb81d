// ca/controller.h — the workload secret controller and the two backends it is generic over.
//
// The controller gives every service account a secret `istio.<sa>` holding cert-chain.pem,
// key.pem and root-cert.pem, and keeps it fresh (DESIGN.md "Kubernetes objects → Controller"):
//   SA exists, no secret            → create
//   SA gone, secret exists          → delete (also secrets orphaned while we were down)
//   secret in its grace period, expired, not yet valid, unparsable, for another identity, or
//   whose root-cert.pem differs from the current roots → refresh (new key, new cert)
// It is level-triggered: notifications only say "look at this key soon"; every pass re-reads
// the current state, and a periodic full resync repairs anything a missed event left behind.
// What to do is decided by pure functions (ca/rotation.h, DecideAction below); the loop only
// gathers inputs, calls them, and acts. Store errors are retried per key with capped
// exponential backoff and logged once per failure streak; they are never fatal.
//
// The backends are the only things that differ between local-directory mode
// (ca/local_backend.h) and Kubernetes (k8s informers + API client).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/metrics.h"
#include "base/status.h"
#include "base/time.h"
#include "ca/controller/backends.h"
#include "ca/core/authority.h"
#include "ca/core/events.h"
#include "ca/core/rotation.h"

namespace istioca::ca {

// What the controller does about one key. Pure function of the observed state.
enum class SecretAction { kNone, kCreate, kRefresh, kDelete };
const char* SecretActionName(SecretAction action);

struct ObservedSecret {
  bool sa_exists = false;
  bool secret_exists = false;
  // Only meaningful when secret_exists.
  RotationDecision rotation;
};
SecretAction DecideAction(const ObservedSecret& observed);

// DNS SANs for a service account's workload certificate: Istio's webhook table when
// --append-dns-names (only in the CA storage namespace: `<svc>.<ns>.svc` and `<svc>.<ns>`), then
// --custom-dns-names entries keyed "sa.ns" (Istio 1.0.6+ key; 0.8 used "sa.sa", a bug).
std::vector<std::string> WorkloadDnsNames(const IssuancePolicy& policy,
                                          const std::string& storage_namespace,
                                          const ServiceAccountKey& key);

struct ControllerOptions {
  RotationPolicy rotation;
  Duration workload_ttl = std::chrono::hours(24);
  std::string storage_namespace = "istio-system";
  // Full level-triggered pass (Istio: 1 minute informer resync).
  Duration resync_period = std::chrono::minutes(1);
  // Per-key retry after a store/signing error: initial * 2^(n-1), capped (base/backoff.h,
  // without jitter: retries are spread by when each key failed).
  Duration backoff_initial = std::chrono::seconds(1);
  Duration backoff_max = std::chrono::minutes(5);
  // Threads that generate keys, sign and write (the box has 2 cores).
  int workers = 2;
  // secret_created / secret_refreshed / secret_deleted (ca/core/events.h); borrowed, may be null.
  EventSink* events = nullptr;
};

// One workload certificate the controller manages, as last seen or written.
struct ManagedCert {
  ServiceAccountKey key;
  std::string serial_hex;
  TimePoint not_before{};
  TimePoint not_after{};
  TimePoint refresh_at{};  // when the controller will refresh it (grace period, jittered)
};

struct SyncStats {
  int created = 0;
  int refreshed = 0;
  int deleted = 0;
  int failed = 0;
  int skipped_backoff = 0;
  int unchanged = 0;
};

class Controller {
 public:
  Controller(Authority& authority, ServiceAccountSource& service_accounts, SecretStore& secrets,
             const Clock& clock, MetricsRegistry& metrics, ControllerOptions options);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // One full pass over every service account and every secret, at clock.Now(). Synchronous:
  // returns when all work (including the worker pool's) is done. Tests call this directly.
  SyncStats SyncAll();
  // Reconciles the given keys only (what notifications trigger).
  SyncStats SyncKeys(const std::vector<ServiceAccountKey>& keys);

  // Runs the loop on a thread: notifications → SyncKeys soon; due rotations → SyncKeys at
  // their time; every resync_period → SyncAll. Stop() waits for in-flight writes to finish.
  void Start();
  void Stop();
  // Wakes the loop for `key` (wire backends' handlers to this).
  void Notify(const ServiceAccountKey& key);
  // Forces a full pass soon (e.g. after the CA bundle changed).
  void RequestResync();

  // True after the first full pass that started with both backends synced has completed. The
  // loop runs such a pass as soon as it sees both synced, whichever came first: leadership
  // (Start) or the backends' first lists.
  bool Synced() const;
  // Earliest NotAfter among the certificates the controller manages (for the
  // "seconds until the first managed certificate expires" gauge).
  std::optional<TimePoint> EarliestExpiry() const;
  size_t ManagedCount() const;
  // Every managed certificate, in key order (for the status page).
  std::vector<ManagedCert> Managed() const;
  // How many managed secrets carry `roots_pem` as their root-cert.pem (of how many), and when the
  // last of those was written; a secret found already carrying it (after a restart) counts as
  // written when first seen, which is never earlier than the real write. `generation` is left 0
  // for the caller; `synced` is Synced().
  BundleProgress BundleCarried(const std::string& roots_pem) const;

 private:
  struct Known {            // what we last saw/wrote for a key
    size_t chain_hash = 0;  // of cert-chain.pem: unchanged content is not parsed again
    PublishedLeaf leaf;
    TimePoint refresh_at{};
    size_t roots_hash = 0;      // of root-cert.pem
    TimePoint carried_since{};  // when we wrote, or first saw, that root-cert.pem
  };
  struct Failure {
    int count = 0;
    TimePoint retry_at{};
  };
  struct Work {
    ServiceAccountKey key;
    SecretAction action;
    std::string version;  // for Update
    RotationReason reason;
  };
  SyncStats Reconcile(const std::vector<ServiceAccountKey>& keys, bool full);
  std::optional<Work> Plan(const ServiceAccountKey& key, bool sa_exists, TimePoint now,
                           const std::string& roots_pem, SyncStats& stats);
  Status Execute(const Work& work);
  // Plans and executes every key on the worker pool (reads, parsing and crypto all in parallel).
  void RunWorkers(const std::vector<ServiceAccountKey>& keys,
                  const std::set<ServiceAccountKey>* sa_set, TimePoint now,
                  const std::string& roots_pem, SyncStats& stats);
  void RecordFailure(const ServiceAccountKey& key, const Status& status, TimePoint now);
  void RecordSuccess(const ServiceAccountKey& key);
  void Loop();
  bool BackendsSynced() const;

  Authority& authority_;
  ServiceAccountSource& service_accounts_;
  SecretStore& secrets_;
  const Clock& clock_;
  const ControllerOptions options_;

  Counter& created_count_;
  Counter& deleted_count_;
  Counter& secret_deleted_count_;
  Counter& csr_err_count_;
  MetricsRegistry& metrics_;
  Histogram& issue_latency_;

  mutable std::mutex mu_;  // guards everything below
  std::map<ServiceAccountKey, Known> known_;
  std::map<ServiceAccountKey, Failure> failures_;
  std::set<ServiceAccountKey> pending_;
  bool resync_requested_ = false;
  std::atomic<bool> synced_{false};  // written under mu_; read without it
  bool stopping_ = false;
  // Lets Stop() cut a long pass short: workers finish the secret in hand, then leave.
  std::atomic<bool> abort_pass_{false};
  std::condition_variable cv_;
  std::thread loop_;
  std::mutex sync_mu_;  // one pass at a time
};

}  // namespace istioca::ca
