// ca/authority.h — the CA: a swappable signing bundle plus the workload issuance policy.
//
// Authority is what every front end (secret controller, gRPC service, liveness self-check)
// signs through. It owns no storage: where the bundle comes from (self-signed and persisted,
// or plugged-in files) is decided by its loader, which swaps in a validated bundle with
// SetBundle(). Sign() is thread-safe and never blocks on a reload: it takes a snapshot.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/issue.h"
#include "pki/key.h"

namespace istioca::ca {

// One immutable CA generation.
struct CaBundle {
  pki::Signer signer;                   // the certificate that signs workloads, and its key
  std::vector<pki::Certificate> chain;  // from the signer's issuer up to (excluding) the root
  std::vector<pki::Certificate> roots;  // every trusted root, all published

  bool SignerIsRoot() const;
  // Leaf-side chain to publish after a leaf: the signer (unless it is a root) and `chain`.
  std::vector<pki::Certificate> Intermediates() const;
  std::string RootsPem() const;
  // Checks the bundle at `now`: the signer chains to a root through `chain`, the key matches,
  // the signer is a CA with keyCertSign, and it is within its validity. Errors name the problem.
  Status Validate(TimePoint now) const;
};

struct IssuancePolicy {
  std::string trust_domain = "cluster.local";
  Duration default_ttl = std::chrono::hours(24);
  Duration max_ttl = std::chrono::hours(2160);
  pki::KeyType workload_key_type = pki::KeyType::kEcP256;
  // --append-dns-names (default true, as in Istio): a service account named in Istio's webhook
  // table (e.g. istio-sidecar-injector-service-account → istio-sidecar-injector) in the storage
  // namespace also gets the DNS names <service>.<ns>.svc and <service>.<ns>; see
  // WorkloadDnsNames in ca/controller/controller.h.
  bool append_dns_names = true;
  // --custom-dns-names "sa.ns:domain": extra DNS names for one service account, keyed "sa.ns".
  std::map<std::string, std::vector<std::string>> custom_dns_names;
};

struct IssuedCert {
  pki::Certificate leaf;
  std::vector<pki::Certificate> intermediates;  // signer (if not a root) and its chain
  std::vector<pki::Certificate> roots;

  std::string CertChainPem() const;  // leaf + intermediates: Istio's cert-chain.pem
  std::string RootCertPem() const;   // every root: Istio's root-cert.pem
};

class Authority {
 public:
  Authority(IssuancePolicy policy, const Clock& clock)
      : policy_(std::move(policy)), clock_(clock) {}

  // Replaces the bundle (the caller has validated it). Returns once every Sign that took the old
  // bundle has finished, so LatestIssuedNotAfter() read afterwards covers all of them.
  void SetBundle(std::shared_ptr<const CaBundle> bundle);
  // Null until a bundle has been set.
  std::shared_ptr<const CaBundle> Bundle() const;
  const IssuancePolicy& policy() const { return policy_; }
  const Clock& clock() const { return clock_; }

  // Signs `subject_key` for exactly `uris` and `dns_names`. requested_ttl 0 means the policy
  // default; above the policy max is InvalidArgument (an error, not a clamp, as Istio does);
  // negative is InvalidArgument. Unavailable when no bundle is loaded.
  Result<IssuedCert> Sign(EVP_PKEY* subject_key, const std::vector<std::string>& uris,
                          const std::vector<std::string>& dns_names, Duration requested_ttl) const;
  // The same for the key of a parsed CSR (pki::IssueLeaf copies its SubjectPublicKeyInfo as
  // received instead of encoding it again): what the CSR service calls.
  Result<IssuedCert> Sign(const pki::Csr& csr, const std::vector<std::string>& uris,
                          const std::vector<std::string>& dns_names, Duration requested_ttl) const;

  // The TTL that Sign would use, or InvalidArgument.
  Result<Duration> EffectiveTtl(Duration requested_ttl) const;

  // The latest NotAfter of any certificate this Authority has signed (unset before the first).
  // The trust lifecycle reads it to know until when certificates handed out with a bundle, or
  // under a signer, stay valid (DESIGN "Trust lifecycle" rules 2 and 3). Raised before Sign
  // returns, so a reader that swapped the bundle and then reads it covers everything signed
  // under the old bundle.
  std::optional<TimePoint> LatestIssuedNotAfter() const;

  // Write-ahead record of issuance (the trust lifecycle, ca/trust/manager.h). With a guard set,
  // no certificate whose NotAfter is past the issuance bound is handed out until the guard has
  // recorded a later bound (and called SetIssuanceBound with it): so whatever the CA handed out
  // is covered by its record even if the process dies right after. The guard is called outside
  // any lock of this class with the NotAfter needed. When it cannot record (the store is
  // unreachable) it reports that itself and the certificate is still issued: an unwritable record
  // must not stop issuance, and the manager records the truth at its next pass. Set the guard
  // before signing starts and clear it (nullptr) after signing stops. No guard: no bound.
  using IssuanceGuard = std::function<void(TimePoint needed)>;
  void SetIssuanceGuard(IssuanceGuard guard);
  // Unset: nothing is recorded yet (the next Sign asks the guard).
  void SetIssuanceBound(std::optional<TimePoint> bound);

 private:
  const IssuancePolicy policy_;
  const Clock& clock_;
  // The bundle in service and how many Signs are still using it. SetBundle swaps in the other
  // slot and waits for the old slot's count to reach zero; new Signs take the new slot
  // meanwhile, so the swap never waits on a stream of new signs (a reader-preferring rwlock
  // would starve it). Signs touch no lock: Enter() counts itself in the current slot with one
  // atomic add, then checks that the slot is still current (seq_cst on both sides: either
  // SetBundle sees the count, or the Sign sees the swap and retries). The two slots live as
  // long as the Authority, so a Sign holding a stale slot pointer never touches freed memory;
  // a slot is refilled only after it drained, and a late Sign that counts itself into it then
  // finds it not current and leaves without reading it.
  struct Slot {
    std::shared_ptr<const CaBundle> bundle;  // written only while the slot is not current
    std::atomic<int> in_flight{0};
    std::atomic<bool> retired{false};  // a SetBundle may be waiting for in_flight == 0
  };
  Slot* Enter() const;
  void Leave(Slot* slot) const;
  template <class Issue>
  Result<IssuedCert> SignWith(Duration requested_ttl, const Issue& issue) const;

  Slot slots_[2];
  std::atomic<Slot*> current_{&slots_[0]};
  std::mutex swap_mu_;           // one SetBundle at a time
  mutable std::mutex drain_mu_;  // only for SetBundle's wait and the last Sign's wake-up
  mutable std::condition_variable drained_;
  // Microseconds since the epoch of the latest NotAfter signed; INT64_MIN: none yet.
  mutable std::atomic<int64_t> latest_not_after_us_{INT64_MIN};
  IssuanceGuard guard_;  // set before signing starts (see SetIssuanceGuard)
  // Microseconds since the epoch of the recorded issuance bound; INT64_MIN: none recorded.
  std::atomic<int64_t> bound_us_{INT64_MIN};
};

}  // namespace istioca::ca
