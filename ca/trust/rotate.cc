// ca/trust/rotate.cc — `istio-ca rotate`'s operations on the CA record.
#include "ca/trust/rotate.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "pki/cert.h"
#include "pki/issue.h"

namespace istioca::ca::trust {
namespace {

using Json = nlohmann::json;

constexpr int kCasAttempts = 5;

struct Loaded {
  TrustState state;
  StoredRecord record;
};

Result<Loaded> Load(const CaStore& store, TimePoint now) {
  auto record = store.LoadRecord();
  if (!record.ok()) {
    if (record.status().code() == Code::kNotFound) {
      return NotFound("no CA is stored there yet (start `istio-ca serve` once to create it)");
    }
    return record.status().WithContext("reading the CA record");
  }
  auto state = ParseTrustState(record->data);
  if (!state.ok() && state.status().code() == Code::kNotFound) {
    state = StateFromIstioRecord(*record, now);
  }
  if (!state.ok()) return state.status().WithContext("the stored CA record");
  return Loaded{std::move(state).value(), std::move(record).value()};
}

CertSummary Summarize(const std::string& pem) {
  CertSummary s;
  auto certs = pki::Certificate::ParsePemChain(pem);
  if (!certs.ok()) {
    s.subject = "<unparsable>";
    return s;
  }
  const pki::CertInfo info = pki::Describe(certs->front());
  s.subject = info.subject;
  s.skid = info.subject_key_id;
  s.serial = info.serial_hex;
  s.not_after = info.not_after;
  return s;
}

RotateStatus Build(const Loaded& loaded, const TrustPolicy& policy, TimePoint now) {
  RotateStatus st;
  st.state = loaded.state;
  st.at = now;
  for (const RootEntry& r : loaded.state.roots) {
    CertSummary c = Summarize(r.cert_pem);
    c.retire_after = r.retire_after;
    c.leaving = r.leaving;
    st.roots.push_back(std::move(c));
  }
  st.active_signer = Summarize(loaded.state.active.cert_pem);
  if (loaded.state.next) st.next_signer = Summarize(loaded.state.next->cert_pem);
  if (loaded.state.previous) st.previous_signer = Summarize(loaded.state.previous->cert_pem);
  auto doc = loaded.record.data.find(kProgressKey);
  if (doc != loaded.record.data.end()) st.progress = ParseProgress(doc->second);
  Publication pub{loaded.state.bundle_generation, 0, 0, std::nullopt};
  if (st.progress && st.progress->generation == loaded.state.bundle_generation) {
    pub = st.progress->publication;
  }
  // Without a recorded count for this generation the objects are unknown: Decide sees 0 of 1.
  if (!st.progress || st.progress->generation != loaded.state.bundle_generation) pub.total = 1;
  // The running daemon's propagation delay, as it recorded it.
  TrustPolicy effective = policy;
  if (st.progress && st.progress->propagation_delay) {
    effective.propagation_delay = *st.progress->propagation_delay;
  }
  st.decision = Decide(loaded.state, pub, now, effective);
  return st;
}

// Reads, transforms, writes with compare-and-swap; retried when a concurrent writer won.
template <typename Fn>
Result<RotateStatus> Update(CaStore& store, const TrustPolicy& policy, TimePoint now, Fn fn) {
  Status last;
  for (int attempt = 0; attempt < kCasAttempts; ++attempt) {
    ASSIGN_OR_RETURN(Loaded loaded, Load(store, now));
    ASSIGN_OR_RETURN(TrustState next, fn(loaded.state));
    std::map<std::string, std::string> record = RecordOf(next);
    auto progress = loaded.record.data.find(kProgressKey);
    if (progress != loaded.record.data.end()) record[kProgressKey] = progress->second;
    last = store.StoreRecord(record, loaded.record.version);
    if (last.ok()) {
      ASSIGN_OR_RETURN(Loaded stored, Load(store, now));
      return Build(stored, policy, now);
    }
    if (last.code() != Code::kAborted) return last.WithContext("writing the CA record");
  }
  return Status(Code::kAborted, "the CA record kept changing under us: " + last.message());
}

std::string Instant(std::optional<TimePoint> t) { return t ? FormatRfc3339(*t) : "-"; }

Json InstantJson(std::optional<TimePoint> t) {
  if (!t) return nullptr;
  return FormatRfc3339(*t);
}

Json SummaryJson(const CertSummary& c) {
  Json j = {{"subject", c.subject},
            {"subject_key_id", c.skid},
            {"serial", c.serial},
            {"not_after", FormatRfc3339(c.not_after)}};
  return j;
}

std::string Line(const CertSummary& c) {
  return "subject=\"" + c.subject + "\" skid=" + (c.skid.empty() ? "-" : c.skid) +
         " not_after=" + FormatRfc3339(c.not_after);
}

// The next transition's name in this stage.
const char* NextTransition(const RotateStatus& st) {
  switch (st.state.stage) {
    case Stage::kPrepared: return "activate";
    case Stage::kActive: return "retire";
    case Stage::kStable:
      for (const RootEntry& r : st.state.roots) {
        if (r.retire_after) return "retire";
      }
      return "none";
  }
  return "none";
}

std::string GateText(const RotateStatus& st) {
  const Decision& d = st.decision;
  std::ostringstream out;
  switch (d.gate) {
    case Gate::kNone: out << "nothing"; break;
    case Gate::kDistribution:
      if (st.progress && st.progress->generation == st.state.bundle_generation) {
        out << "distribution: " << d.objects_updated << " of " << d.objects_total
            << " secrets and ConfigMaps carry bundle generation " << st.state.bundle_generation;
      } else {
        out << "distribution of bundle generation " << st.state.bundle_generation
            << " (no count recorded yet: is the daemon running?)";
      }
      break;
    case Gate::kPropagationDelay:
      out << "the propagation delay after the last bundle write ("
          << Instant(st.progress ? st.progress->publication.last_write : std::nullopt) << ")";
      break;
    case Gate::kCertsWithoutNewRoot:
      out << "certificates handed out without the new root, valid until "
          << Instant(d.outstanding_not_after);
      break;
    case Gate::kPreviousSignerCerts:
      out << "certificates signed under the old root, valid until "
          << Instant(d.outstanding_not_after);
      break;
    case Gate::kActiveSignerExpiry:
      out << "UNSAFE: the active signer expires first; forced activation at "
          << Instant(d.unsafe_at);
      break;
  }
  return out.str();
}

}  // namespace

Result<RotateStatus> ReadStatus(const CaStore& store, const TrustPolicy& policy, TimePoint now) {
  ASSIGN_OR_RETURN(Loaded loaded, Load(store, now));
  return Build(loaded, policy, now);
}

std::string StatusText(const RotateStatus& st) {
  std::ostringstream out;
  out << "stage: " << StageName(st.state.stage) << "\n";
  out << "bundle generation: " << st.state.bundle_generation << " (" << st.roots.size()
      << (st.roots.size() == 1 ? " root" : " roots") << ")\n";
  for (const CertSummary& r : st.roots) {
    out << "  root " << Line(r);
    if (r.leaving) out << " leaving";
    if (r.retire_after) out << " retires_after=" << FormatRfc3339(*r.retire_after);
    out << "\n";
  }
  out << "active signer: " << Line(st.active_signer) << "\n";
  if (st.next_signer) out << "next signer: " << Line(*st.next_signer) << "\n";
  if (st.previous_signer) out << "previous signer: " << Line(*st.previous_signer) << "\n";
  const char* next = NextTransition(st);
  out << "next transition: " << next;
  if (std::string(next) != "none") {
    out << " at "
        << (st.decision.next_transition ? FormatRfc3339(*st.decision.next_transition)
                                        : std::string("(not yet known)"));
    if (st.decision.next_transition && *st.decision.next_transition > st.at) {
      out << " (in " << FormatDuration(*st.decision.next_transition - st.at) << ")";
    } else if (st.decision.next_transition) {
      out << " (due: the running leader acts within a second)";
    }
  }
  out << "\n";
  if (std::string(next) != "none") out << "waiting for: " << GateText(st) << "\n";
  if (st.progress && st.progress->generation == st.state.bundle_generation &&
      st.state.stage != Stage::kStable) {
    out << "distribution: " << st.progress->publication.updated << " of "
        << st.progress->publication.total << " secrets and ConfigMaps carry bundle generation "
        << st.state.bundle_generation << " (last written "
        << Instant(st.progress->publication.last_write) << ", recorded "
        << FormatRfc3339(st.progress->at) << ")\n";
  }
  if (st.state.forced_activation) out << "WARNING: the last activation was forced (unsafe)\n";
  return out.str();
}

std::string StatusJson(const RotateStatus& st) {
  Json roots = Json::array();
  for (const CertSummary& r : st.roots) {
    Json j = SummaryJson(r);
    j["leaving"] = r.leaving;
    j["retire_after"] = InstantJson(r.retire_after);
    roots.push_back(j);
  }
  Json j = {
      {"stage", StageName(st.state.stage)},
      {"bundle_generation", st.state.bundle_generation},
      {"roots", roots},
      {"active_signer", SummaryJson(st.active_signer)},
      {"next_signer", st.next_signer ? SummaryJson(*st.next_signer) : Json(nullptr)},
      {"previous_signer", st.previous_signer ? SummaryJson(*st.previous_signer) : Json(nullptr)},
      {"next_transition",
       {{"name", NextTransition(st)},
        {"at", InstantJson(st.decision.next_transition)},
        {"gate", std::string(NextTransition(st)) == "none" ? GateName(Gate::kNone)
                                                           : GateName(st.decision.gate)},
        {"objects_updated", st.decision.objects_updated},
        {"objects_total", st.decision.objects_total},
        {"outstanding_not_after", InstantJson(st.decision.outstanding_not_after)},
        {"unsafe_at", InstantJson(st.decision.unsafe_at)}}},
      {"recorded",
       {{"latest_issued_not_after", InstantJson(st.state.latest_issued_not_after)},
        {"without_next_root_until", InstantJson(st.state.without_next_root_until)},
        {"previous_signer_until", InstantJson(st.state.previous_signer_until)},
        {"published_generation", st.state.published_generation},
        {"published_at", InstantJson(st.state.published_at)},
        {"stage_entered_at", InstantJson(st.state.stage_entered_at)}}},
      {"forced_activation", st.state.forced_activation},
      {"evaluated_at", FormatRfc3339(st.at)},
  };
  return j.dump(2) + "\n";
}

Result<RotateStatus> StartRotation(CaStore& store, const StartOptions& options,
                                   const TrustPolicy& policy, TimePoint now) {
  return Update(store, policy, now, [&](const TrustState& s) -> Result<TrustState> {
    if (s.stage != Stage::kStable) {
      return FailedPrecondition(std::string("a rotation is already in progress (stage ") +
                                StageName(s.stage) + ")");
    }
    auto active = pki::Certificate::ParsePemChain(s.active.cert_pem);
    if (!active.ok()) return active.status().WithContext("the active signer");
    const pki::Certificate& current = active->front();
    if (!s.active.chain_pem.empty() || !current.IsSelfSigned()) {
      return FailedPrecondition(
          "the active signer is a plugged-in intermediate: rotate it by changing the plugged-in "
          "files (--signing-cert, --root-cert ...); the daemon stages a new root itself");
    }
    const Duration ttl = options.ttl.value_or(
        std::chrono::duration_cast<Duration>(current.NotAfter() - current.NotBefore()));
    const std::string org = OrganizationOf(current, current.Subject());
    ASSIGN_OR_RETURN(pki::PrivateKey key,
                     pki::PrivateKey::Generate(options.key_type.value_or(pki::KeyType::kEcP256)));
    ASSIGN_OR_RETURN(pki::Certificate root, pki::MakeSelfSignedRoot(key, {org, ttl}, now));
    ASSIGN_OR_RETURN(SecretString key_pem, key.ToPem());
    const std::string root_pem = root.ToPem();
    return Prepare(s, {root_pem, key_pem.str(), ""}, root_pem, {s.active.cert_pem}, Issued{}, now);
  });
}

Result<RotateStatus> ForceActivate(CaStore& store, const TrustPolicy& policy, TimePoint now,
                                   std::string& warning) {
  return Update(store, policy, now, [&](const TrustState& s) -> Result<TrustState> {
    if (s.stage != Stage::kPrepared) {
      return FailedPrecondition(std::string("nothing to activate (stage ") + StageName(s.stage) +
                                ")");
    }
    warning =
        "forced activation: workloads still holding a bundle without the new root (certificates "
        "handed out until " +
        Instant(s.without_next_root_until) +
        ", or a secret/ConfigMap not yet propagated) reject peers signed by the new signer until "
        "they receive the new bundle";
    return Activate(s, Issued{}, now, /*forced=*/true);
  });
}

Result<RotateStatus> ForceRetire(CaStore& store, const TrustPolicy& policy, TimePoint now,
                                 std::string& warning) {
  return Update(store, policy, now, [&](const TrustState& s) -> Result<TrustState> {
    if (s.stage != Stage::kActive) {
      return FailedPrecondition(std::string("nothing to retire (stage ") + StageName(s.stage) +
                                ")");
    }
    warning = "forced retirement: certificates signed under the old root (valid until " +
              Instant(s.previous_signer_until) +
              ") no longer verify anywhere the new bundle has reached";
    TrustState forced = s;
    const TimePoint past = now - std::chrono::seconds(2);
    forced.previous_signer_until = past;
    for (RootEntry& r : forced.roots) {
      if (r.retire_after || r.leaving) r.retire_after = past;
    }
    return Retire(forced, now);
  });
}

}  // namespace istioca::ca::trust
