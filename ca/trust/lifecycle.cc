// ca/trust/lifecycle.cc — the trust lifecycle's decisions, transitions and trigger classification.
#include "ca/trust/lifecycle.h"

#include <algorithm>
#include <cmath>

#include "pki/cert.h"
#include "pki/verify.h"

namespace istioca::ca::trust {
namespace {

// X.509 validity includes NotAfter (RFC 5280 4.1.2.5; OpenSSL accepts a certificate at exactly
// that second), and certificate times have one-second resolution: the first instant at which a
// certificate is expired is NotAfter + 1 s.
constexpr Duration kPastNotAfter = std::chrono::seconds(1);
std::optional<TimePoint> PastNotAfter(std::optional<TimePoint> not_after) {
  if (!not_after) return std::nullopt;
  return *not_after + kPastNotAfter;
}

std::optional<TimePoint> Later(std::optional<TimePoint> a, std::optional<TimePoint> b) {
  if (!a) return b;
  if (!b) return a;
  return std::max(*a, *b);
}

// When every object carried the current generation (the last write), if it is known.
std::optional<TimePoint> PublishedAt(const TrustState& s, const Publication& p) {
  if (s.published_generation == s.bundle_generation && s.published_at) return s.published_at;
  if (p.generation == s.bundle_generation && p.updated >= p.total) {
    // No object to write (total 0): the bundle was "published" when the stage began.
    return p.last_write ? p.last_write : s.stage_entered_at;
  }
  return std::nullopt;
}

std::optional<TimePoint> EarliestRetire(const TrustState& s) {
  std::optional<TimePoint> t;
  for (const RootEntry& r : s.roots) {
    if (r.retire_after && (!t || *r.retire_after < *t)) t = r.retire_after;
  }
  return t;
}

std::optional<TimePoint> NotAfterOf(const std::string& pem) {
  auto certs = pki::Certificate::ParsePemChain(pem);
  if (!certs.ok()) return std::nullopt;
  return certs->front().NotAfter();
}

}  // namespace

const char* ActionName(Action action) {
  switch (action) {
    case Action::kNone: return "none";
    case Action::kPublishBundle: return "publish-bundle";
    case Action::kActivate: return "activate";
    case Action::kForceActivateUnsafe: return "force-activate-unsafe";
    case Action::kRetire: return "retire";
  }
  return "unknown";
}

const char* GateName(Gate gate) {
  switch (gate) {
    case Gate::kNone: return "none";
    case Gate::kDistribution: return "distribution";
    case Gate::kPropagationDelay: return "propagation-delay";
    case Gate::kCertsWithoutNewRoot: return "certificates-without-new-root";
    case Gate::kPreviousSignerCerts: return "previous-signer-certificates";
    case Gate::kActiveSignerExpiry: return "active-signer-expiry";
  }
  return "unknown";
}

const char* SignerChangeName(SignerChange change) {
  switch (change) {
    case SignerChange::kNone: return "none";
    case SignerChange::kSameRootRenewal: return "same-root-renewal";
    case SignerChange::kNewRoot: return "new-root";
  }
  return "unknown";
}

Decision Decide(const TrustState& s, const Publication& p, TimePoint now,
                const TrustPolicy& policy) {
  Decision d;
  const bool counts_current = p.generation == s.bundle_generation;
  d.objects_total = p.total;
  d.objects_updated = counts_current ? p.updated : 0;
  const std::optional<TimePoint> published_at = PublishedAt(s, p);
  const bool distributed = published_at.has_value();

  // Rule 3 first: a root whose certificates have all expired may go, whatever else is pending
  // (dropping it never makes a valid certificate unverifiable).
  const std::optional<TimePoint> retire_until =
      s.stage == Stage::kActive ? s.previous_signer_until : EarliestRetire(s);
  const std::optional<TimePoint> retire_at = PastNotAfter(retire_until);
  if (s.stage != Stage::kPrepared && retire_at && now >= *retire_at) {
    d.action = Action::kRetire;
    d.next_transition = retire_at;
    d.outstanding_not_after = retire_until;
    return d;
  }

  if (s.stage == Stage::kPrepared) {
    // Rule 2's safe instant: the later of (last write + propagation delay) and the first instant
    // past the latest certificate handed out with a bundle lacking the next root. Unknown while
    // distribution is incomplete; it cannot come before `earliest`.
    const std::optional<TimePoint> certs = PastNotAfter(s.without_next_root_until);
    std::optional<TimePoint> safe;
    TimePoint earliest = std::max(now + policy.propagation_delay, certs.value_or(now));
    if (distributed) {
      const TimePoint propagated = *published_at + policy.propagation_delay;
      safe = std::max(propagated, certs.value_or(propagated));
      earliest = *safe;
      d.gate = certs && *certs > propagated ? Gate::kCertsWithoutNewRoot : Gate::kPropagationDelay;
    } else {
      d.gate = Gate::kDistribution;
    }
    if (certs && *certs > now) d.outstanding_not_after = s.without_next_root_until;
    if (safe && now >= *safe) {
      d.action = Action::kActivate;
      d.next_transition = safe;
      return d;
    }
    // The unsafe path: the active signer expires before rule 2 can hold.
    if (s.active_signer_not_after) {
      const TimePoint forced_at = *s.active_signer_not_after - policy.unsafe_activation_lead;
      if (forced_at < earliest) {
        d.unsafe_at = forced_at;
        d.next_transition = forced_at;
        if (distributed || now >= forced_at) d.gate = Gate::kActiveSignerExpiry;
        if (now >= forced_at) {
          d.action = Action::kForceActivateUnsafe;
          return d;
        }
        d.action = distributed ? Action::kNone : Action::kPublishBundle;
        return d;
      }
    }
    d.action = distributed ? Action::kNone : Action::kPublishBundle;
    d.next_transition = safe;
    return d;
  }

  // stable or active: keep the bundle distributed; the next transition is a retirement.
  d.action = distributed ? Action::kNone : Action::kPublishBundle;
  if (!distributed) d.gate = Gate::kDistribution;
  if (retire_at) {
    d.next_transition = retire_at;
    d.outstanding_not_after = retire_until;
    if (distributed) d.gate = Gate::kPreviousSignerCerts;
  }
  return d;
}

Result<TrustState> Prepare(const TrustState& state, const SignerPem& next,
                           const std::string& next_root_pem,
                           const std::vector<std::string>& leaving_roots, const Issued& issued,
                           TimePoint now) {
  if (state.stage != Stage::kStable) {
    return FailedPrecondition(std::string("a rotation is in progress (stage ") +
                              StageName(state.stage) + ")");
  }
  if (!pki::Certificate::ParsePemChain(next_root_pem).ok()) {
    return InvalidArgument("the next root does not parse as a certificate");
  }
  TrustState s = state;
  bool present = false;
  for (RootEntry& r : s.roots) {
    if (SameCertificate(r.cert_pem, next_root_pem)) {
      present = true;
      r.retire_after.reset();  // a root coming back stays
      r.leaving = false;
    }
    for (const std::string& leaving : leaving_roots) {
      if (SameCertificate(r.cert_pem, leaving)) r.leaving = true;
    }
  }
  if (!present) {
    s.roots.push_back({next_root_pem, std::nullopt, false});
    ++s.bundle_generation;
  }
  s.stage = Stage::kPrepared;
  s.next = next;
  s.next_root_pem = next_root_pem;
  // Everything issued so far went out with the bundle that lacked the next root. Nothing issued:
  // no certificate holds the old bundle, rule 2 waits for distribution only.
  s.without_next_root_until =
      Later(issued.latest_not_after, state.latest_issued_not_after).value_or(now);
  s.stage_entered_at = now;
  s.forced_activation = false;
  return s;
}

Result<TrustState> Activate(const TrustState& state, const Issued& issued, TimePoint now,
                            bool forced) {
  if (state.stage != Stage::kPrepared || !state.next) {
    return FailedPrecondition(std::string("nothing to activate (stage ") + StageName(state.stage) +
                              ")");
  }
  const std::optional<TimePoint> next_not_after = NotAfterOf(state.next->cert_pem);
  if (!next_not_after) return InvalidArgument("the next signer's certificate does not parse");
  TrustState s = state;
  s.previous = s.active;
  s.active = *s.next;
  s.next.reset();
  s.previous_signer_until =
      Later(issued.latest_not_after, state.latest_issued_not_after).value_or(now);
  for (RootEntry& r : s.roots) {
    if (r.leaving) r.retire_after = s.previous_signer_until;
  }
  // Kept: it bounds what any replica hands out under either signer until the next write (a
  // replica that passed the bound check just before the swap signs with the new signer).
  s.active_signer_not_after = next_not_after;
  s.stage = Stage::kActive;
  s.stage_entered_at = now;
  s.forced_activation = forced;
  return s;
}

Result<TrustState> Retire(const TrustState& state, TimePoint now) {
  TrustState s = state;
  bool changed = false;
  if (s.stage == Stage::kActive) {
    if (!s.previous_signer_until || now < *s.previous_signer_until + kPastNotAfter) {
      return FailedPrecondition("certificates signed under the previous signer are still valid");
    }
    s.previous.reset();
    s.previous_signer_until.reset();
    s.without_next_root_until.reset();
    s.next_root_pem.clear();
    s.stage = Stage::kStable;
    s.stage_entered_at = now;
    s.forced_activation = false;
    changed = true;
  } else if (s.stage == Stage::kPrepared) {
    return FailedPrecondition("a prepared rotation retires nothing");
  }
  const size_t before = s.roots.size();
  std::erase_if(s.roots, [&](const RootEntry& r) {
    return r.retire_after && now >= *r.retire_after + kPastNotAfter;
  });
  if (s.roots.size() != before) {
    ++s.bundle_generation;
    changed = true;
  }
  if (s.roots.empty()) return Internal("retiring would empty the trust bundle");
  for (RootEntry& r : s.roots) r.leaving = false;
  if (!changed) return FailedPrecondition("no root may retire yet");
  return s;
}

Result<TrustState> SwapSigner(const TrustState& state, const SignerPem& signer) {
  const std::optional<TimePoint> not_after = NotAfterOf(signer.cert_pem);
  if (!not_after) return InvalidArgument("the new signer's certificate does not parse");
  TrustState s = state;
  s.active = signer;
  s.active_signer_not_after = not_after;
  return s;
}

Result<TrustState> ReissueRoot(const TrustState& state, const SignerPem& reissued_root) {
  const std::optional<TimePoint> not_after = NotAfterOf(reissued_root.cert_pem);
  if (!not_after) return InvalidArgument("the re-issued root does not parse");
  TrustState s = state;
  bool replaced = false;
  for (RootEntry& r : s.roots) {
    if (SameCertificate(r.cert_pem, state.active.cert_pem)) {
      r.cert_pem = reissued_root.cert_pem;
      replaced = true;
    }
  }
  if (!replaced) return FailedPrecondition("the active signer is not a root of the bundle");
  s.active = reissued_root;
  s.active_signer_not_after = not_after;
  ++s.bundle_generation;
  return s;
}

Result<TrustState> ScheduleRootRemoval(const TrustState& state, const std::string& root_pem,
                                       TimePoint until) {
  TrustState s = state;
  for (RootEntry& r : s.roots) {
    if (SameCertificate(r.cert_pem, root_pem)) {
      r.retire_after = Later(r.retire_after, until);
      return s;
    }
  }
  return NotFound("the root is not in the bundle");
}

TrustState RecordIssued(const TrustState& state, TimePoint not_after) {
  TrustState s = state;
  s.latest_issued_not_after = Later(s.latest_issued_not_after, not_after);
  return s;
}

TrustState RecordPublished(const TrustState& state, uint64_t generation, TimePoint last_write) {
  if (generation != state.bundle_generation) return state;
  TrustState s = state;
  s.published_generation = generation;
  s.published_at = last_write;
  return s;
}

TimePoint RootReissueAt(TimePoint not_before, TimePoint not_after, double percentile) {
  const double life = std::chrono::duration<double>(not_after - not_before).count();
  const double grace = life * std::clamp(percentile, 0.0, 100.0) / 100.0;
  return not_after - std::chrono::duration_cast<TimePoint::duration>(
                         std::chrono::duration<double>(std::floor(grace)));
}

bool RootReissueDue(TimePoint not_before, TimePoint not_after, double percentile, TimePoint now) {
  return now >= RootReissueAt(not_before, not_after, percentile);
}

bool SameCertificate(const std::string& a_pem, const std::string& b_pem) {
  if (a_pem == b_pem) return true;
  auto a = pki::Certificate::ParsePemChain(a_pem);
  auto b = pki::Certificate::ParsePemChain(b_pem);
  return a.ok() && b.ok() && a->front() == b->front();
}

Result<PluggedChange> ClassifyPluggedChange(const TrustState& state, const PluggedFiles& files,
                                            TimePoint now) {
  auto signer = pki::Certificate::ParsePemChain(files.signer_cert_pem);
  if (!signer.ok()) return InvalidArgument("signing certificate: " + signer.status().message());
  std::vector<pki::Certificate> chain;
  if (!files.chain_pem.empty()) {
    auto parsed = pki::Certificate::ParsePemChain(files.chain_pem);
    if (!parsed.ok()) return InvalidArgument("certificate chain: " + parsed.status().message());
    chain = std::move(parsed).value();
  }
  auto roots = pki::Certificate::ParsePemChain(files.roots_pem);
  if (!roots.ok()) return InvalidArgument("root certificates: " + roots.status().message());

  PluggedChange change;
  const pki::Certificate& leaf = signer->front();
  for (const pki::Certificate& root : *roots) {
    if (pki::VerifyChain(leaf, chain, {root}, now).ok()) {
      change.anchor_root_pem = root.ToPem();
      break;
    }
  }
  if (change.anchor_root_pem.empty()) {
    return InvalidArgument("the signing certificate does not chain to any root of root-cert.pem");
  }
  for (const pki::Certificate& root : *roots) {
    const std::string pem = root.ToPem();
    bool known = false;
    for (const RootEntry& r : state.roots) known = known || SameCertificate(r.cert_pem, pem);
    if (!known) change.added_roots.push_back(pem);
  }
  for (const RootEntry& r : state.roots) {
    bool kept = false;
    for (const pki::Certificate& root : *roots)
      kept = kept || SameCertificate(r.cert_pem, root.ToPem());
    if (!kept) change.removed_roots.push_back(r.cert_pem);
  }
  bool anchor_in_bundle = false;
  for (const RootEntry& r : state.roots) {
    anchor_in_bundle = anchor_in_bundle || SameCertificate(r.cert_pem, change.anchor_root_pem);
  }
  if (SameCertificate(state.active.cert_pem, files.signer_cert_pem)) {
    change.signer = SignerChange::kNone;
  } else {
    change.signer = anchor_in_bundle ? SignerChange::kSameRootRenewal : SignerChange::kNewRoot;
  }
  return change;
}

}  // namespace istioca::ca::trust
