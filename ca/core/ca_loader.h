// ca/ca_loader.h — where the CA bundle comes from: self-signed (created once, persisted through
// a CaStore, reused after restarts) or plugged-in files (validated, watched, reloaded).
//
// Every bundle is checked with CaBundle::Validate before it is used; errors name the problem
// and the file. A plugged-in bundle that changes is re-read, validated, and only then swapped
// into the Authority; a bad new bundle leaves the old one serving, logs one line per bad
// content, and shows in istio_ca_ca_bundle_reload_failures_total and
// istio_ca_ca_bundle_reload_failing.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/metrics.h"
#include "base/periodic.h"
#include "base/status.h"
#include "base/time.h"
#include "ca/core/authority.h"
#include "ca/core/ca_store.h"
#include "pki/key.h"

namespace istioca::ca {

struct SelfSignedOptions {
  std::string organization;
  Duration ttl = std::chrono::hours(87600);
  pki::KeyType key_type = pki::KeyType::kEcP256;
};

// Parses a stored CA (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) and validates it.
Result<std::shared_ptr<const CaBundle>> BundleFromStored(const StoredCa& stored, TimePoint now);

// Loads the CA from `store`, or makes a self-signed root and stores it. If another replica
// stored one first (AlreadyExists), that one is loaded and used. A stored CA that fails
// validation (e.g. expired) is an error: it is never silently replaced.
Result<std::shared_ptr<const CaBundle>> LoadOrCreateSelfSigned(CaStore& store,
                                                               const SelfSignedOptions& options,
                                                               TimePoint now);

struct PluggedCaFiles {
  std::string signing_cert;
  std::string signing_key;
  std::string root_cert;   // may hold several roots; all trusted and published
  std::string cert_chain;  // optional: intermediates between the signing cert and the root
};
Result<std::shared_ptr<const CaBundle>> LoadPluggedCa(const PluggedCaFiles& files, TimePoint now);
// SHA-256 per file (or why it could not be read): identifies the files' content without keeping
// it (the signing key's bytes never stay in memory for change detection).
std::string PluggedFilesFingerprint(const PluggedCaFiles& files);

// Watches plugged-in CA files and swaps validated bundles into `authority`.
class CaReloader {
 public:
  CaReloader(Authority& authority, PluggedCaFiles files, const Clock& clock,
             MetricsRegistry& metrics, std::function<void()> on_swap);
  ~CaReloader();
  // The first load: an error here stops the daemon from starting.
  Status LoadInitial();
  // Compares the files' digests with those of the bundle serving; when they changed (or with
  // `force`, e.g. SIGHUP, even a change rejected before) loads and validates the files, and
  // swaps the new bundle in if it is valid and the content differs from the serving one. A
  // forced check of unchanged files re-validates them but swaps nothing. Returns true when a new
  // bundle was swapped in.
  bool CheckNow(bool force = false);
  // What identifies the content now serving: SHA-256 digests of the files, never their bytes.
  std::string fingerprint() const;
  void Start(Duration interval = std::chrono::seconds(1));
  void Stop();

 private:
  Authority& authority_;
  const PluggedCaFiles files_;
  const Clock& clock_;
  std::function<void()> on_swap_;
  Counter& reloads_;
  Counter& failures_;
  Gauge& failing_;
  mutable std::mutex check_mu_;
  std::string current_fingerprint_;   // digests of the files now serving
  std::string rejected_fingerprint_;  // digests of the content last rejected (logged once)
  PeriodicThread poller_;
};

}  // namespace istioca::ca
