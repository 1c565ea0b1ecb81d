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

Authority::Slot* Authority::Enter() const {
  for (;;) {
    Slot* slot = current_.load(std::memory_order_seq_cst);
    slot->in_flight.fetch_add(1, std::memory_order_seq_cst);
    if (current_.load(std::memory_order_seq_cst) == slot) return slot;
    Leave(slot);  // swapped meanwhile: the swap may not have seen this count
  }
}

void Authority::Leave(Slot* slot) const {
  if (slot->in_flight.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
      slot->retired.load(std::memory_order_seq_cst)) {
    // Under the mutex, so the wake-up cannot fall between SetBundle's check and its wait.
    std::lock_guard<std::mutex> lock(drain_mu_);
    drained_.notify_all();
  }
}

void Authority::SetBundle(std::shared_ptr<const CaBundle> bundle) {
  std::lock_guard<std::mutex> swap(swap_mu_);
  Slot* old = current_.load(std::memory_order_seq_cst);
  Slot* next = old == &slots_[0] ? &slots_[1] : &slots_[0];
  // `next` drained when it was retired; Signs that count themselves into it from now until it
  // is current find it not current and leave without reading the bundle.
  next->bundle = std::move(bundle);
  next->retired.store(false, std::memory_order_seq_cst);
  old->retired.store(true, std::memory_order_seq_cst);
  current_.store(next, std::memory_order_seq_cst);
  {
    std::unique_lock<std::mutex> lock(drain_mu_);
    drained_.wait(lock, [&] { return old->in_flight.load(std::memory_order_seq_cst) == 0; });
  }
  old->bundle.reset();  // the retired bundle's key goes when its last user does
}

std::shared_ptr<const CaBundle> Authority::Bundle() const {
  Slot* slot = Enter();
  std::shared_ptr<const CaBundle> bundle = slot->bundle;
  Leave(slot);
  return bundle;
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

template <class Issue>
Result<IssuedCert> Authority::SignWith(Duration requested_ttl, const Issue& issue) const {
  ASSIGN_OR_RETURN(Duration ttl, EffectiveTtl(requested_ttl));
  if (guard_) {
    const TimePoint needed = clock_.Now() + std::chrono::duration_cast<TimePoint::duration>(ttl);
    if (needed.time_since_epoch().count() > bound_us_.load(std::memory_order_acquire)) {
      guard_(needed);
    }
  }
  // Leaves the slot (waking a SetBundle waiting for it) once the NotAfter below is recorded.
  struct InSlot {
    const Authority& a;
    Slot* s;
    ~InSlot() { a.Leave(s); }
  } in{*this, Enter()};
  const CaBundle* bundle = in.s->bundle.get();  // kept alive by the slot until Leave
  if (bundle == nullptr) return Unavailable("the CA is not ready");
  Result<pki::Certificate> leaf = issue(bundle->signer, ttl, clock_.Now());
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

Result<IssuedCert> Authority::Sign(EVP_PKEY* subject_key, const std::vector<std::string>& uris,
                                   const std::vector<std::string>& dns_names,
                                   Duration requested_ttl) const {
  return SignWith(requested_ttl, [&](const pki::Signer& signer, Duration ttl, TimePoint now) {
    return pki::IssueLeaf(signer, subject_key, {uris, dns_names, ttl}, now);
  });
}

Result<IssuedCert> Authority::Sign(const pki::Csr& csr, const std::vector<std::string>& uris,
                                   const std::vector<std::string>& dns_names,
                                   Duration requested_ttl) const {
  return SignWith(requested_ttl, [&](const pki::Signer& signer, Duration ttl, TimePoint now) {
    return pki::IssueLeaf(signer, csr, {uris, dns_names, ttl}, now);
  });
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
