#include "ca/core/authority.h"

#include <utility>

#include "pki/verify.h"

namespace istioca::ca {

bool CaBundle::SignerIsRoot() const {
  for (const pki::Certificate& root : roots) {
    if (root == signer.cert) return true;
  }
  return false;
}

std::vector<pki::Certificate> CaBundle::Intermediates() const {
  std::vector<pki::Certificate> out;
  if (!SignerIsRoot()) out.push_back(signer.cert);
  out.insert(out.end(), chain.begin(), chain.end());
  return out;
}

std::string CaBundle::RootsPem() const {
  std::string out;
  for (const pki::Certificate& root : roots) out += root.ToPem();
  return out;
}

Status CaBundle::Validate(TimePoint now) const {
  if (signer.cert.get() == nullptr || signer.key.get() == nullptr) {
    return FailedPrecondition("the CA bundle has no signing certificate or key");
  }
  if (roots.empty()) return FailedPrecondition("the CA bundle has no root certificate");
  if (!pki::SamePublicKey(signer.cert.PublicKey(), signer.key.get())) {
    return FailedPrecondition("the signing key does not match the signing certificate");
  }
  const pki::CertInfo info = pki::Describe(signer.cert);
  if (!info.is_ca)
    return FailedPrecondition("the signing certificate is not a CA (CA:TRUE missing)");
  bool cert_sign = false;
  for (const auto& ku : info.key_usage) cert_sign |= ku == "keyCertSign";
  if (!info.key_usage.empty() && !cert_sign) {
    return FailedPrecondition("the signing certificate lacks keyUsage keyCertSign");
  }
  auto path = pki::VerifyChain(signer.cert, chain, roots, now);
  if (!path.ok()) {
    return FailedPrecondition("the signing certificate does not verify against the roots: " +
                              path.status().message());
  }
  return OkStatus();
}

std::string IssuedCert::CertChainPem() const {
  std::string out = leaf.ToPem();
  for (const pki::Certificate& c : intermediates) out += c.ToPem();
  return out;
}

std::string IssuedCert::RootCertPem() const {
  std::string out;
  for (const pki::Certificate& c : roots) out += c.ToPem();
  return out;
}

void Authority::SetBundle(std::shared_ptr<const CaBundle> bundle) {
  auto next = std::make_shared<Slot>();
  next->bundle = std::move(bundle);
  std::unique_lock<std::mutex> lock(mu_);
  std::shared_ptr<Slot> old = std::exchange(slot_, std::move(next));
  drained_.wait(lock, [&] { return old->in_flight == 0; });
}

std::shared_ptr<const CaBundle> Authority::Bundle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slot_->bundle;
}

Result<Duration> Authority::EffectiveTtl(Duration requested_ttl) const {
  if (requested_ttl < Duration::zero()) return InvalidArgument("requested TTL is negative");
  if (requested_ttl == Duration::zero()) return policy_.default_ttl;
  if (requested_ttl > policy_.max_ttl) {
    return InvalidArgument("requested TTL " + FormatDuration(requested_ttl) +
                           " is greater than the max allowed TTL " +
                           FormatDuration(policy_.max_ttl));
  }
  return requested_ttl;
}

Result<IssuedCert> Authority::Sign(EVP_PKEY* subject_key, const std::vector<std::string>& uris,
                                   const std::vector<std::string>& dns_names,
                                   Duration requested_ttl) const {
  ASSIGN_OR_RETURN(Duration ttl, EffectiveTtl(requested_ttl));
  if (guard_) {
    const TimePoint needed = clock_.Now() + std::chrono::duration_cast<TimePoint::duration>(ttl);
    if (needed.time_since_epoch().count() > bound_us_.load(std::memory_order_acquire)) {
      guard_(needed);
    }
  }
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    slot = slot_;
    ++slot->in_flight;
  }
  // Leaves the slot (waking a SetBundle waiting for it) once the NotAfter below is recorded.
  struct Leave {
    const Authority& a;
    Slot& s;
    ~Leave() {
      std::lock_guard<std::mutex> lock(a.mu_);
      if (--s.in_flight == 0) a.drained_.notify_all();
    }
  } leave{*this, *slot};
  std::shared_ptr<const CaBundle> bundle = slot->bundle;
  if (bundle == nullptr) return Unavailable("the CA is not ready");
  auto leaf = pki::IssueLeaf(bundle->signer, subject_key, {uris, dns_names, ttl}, clock_.Now());
  if (!leaf.ok()) {
    // An unusable signer is the CA's state, not the caller's fault.
    if (leaf.status().code() == Code::kFailedPrecondition) {
      return Unavailable("the CA cannot sign: " + leaf.status().message());
    }
    return leaf.status();
  }
  const int64_t not_after_us = leaf->NotAfter().time_since_epoch().count();
  int64_t seen = latest_not_after_us_.load(std::memory_order_relaxed);
  while (not_after_us > seen && !latest_not_after_us_.compare_exchange_weak(
                                    seen, not_after_us, std::memory_order_acq_rel)) {
  }
  return IssuedCert{std::move(leaf).value(), bundle->Intermediates(), bundle->roots};
}

void Authority::SetIssuanceGuard(IssuanceGuard guard) { guard_ = std::move(guard); }

void Authority::SetIssuanceBound(std::optional<TimePoint> bound) {
  bound_us_.store(bound ? bound->time_since_epoch().count() : INT64_MIN, std::memory_order_release);
}

std::optional<TimePoint> Authority::LatestIssuedNotAfter() const {
  const int64_t us = latest_not_after_us_.load(std::memory_order_acquire);
  if (us == INT64_MIN) return std::nullopt;
  return TimePoint(TimePoint::duration(us));
}

}  // namespace istioca::ca
