// ca/trust/manager.cc — the trust lifecycle's loop: gather, decide, persist, apply.
#include "ca/trust/manager.h"

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/log.h"
#include "ca/trust/distribution.h"
#include "pki/cert.h"
#include "pki/issue.h"
#include "pki/key.h"

namespace istioca::ca::trust {
namespace {

using Json = nlohmann::json;

std::optional<TimePoint> Later(std::optional<TimePoint> a, std::optional<TimePoint> b) {
  if (!a) return b;
  if (!b) return a;
  return std::max(*a, *b);
}

std::string Rfc(std::optional<TimePoint> t) { return t ? FormatRfc3339(*t) : "-"; }

Json InstantJson(std::optional<TimePoint> t) {
  if (!t) return nullptr;
  return t->time_since_epoch().count();
}

std::optional<TimePoint> InstantFrom(const Json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_number_integer()) return std::nullopt;
  return TimePoint(Duration(j[name].get<int64_t>()));
}

// What the Authority serves for a state: changes exactly when the signer or the roots change.
std::string AppliedKey(const TrustState& s) {
  std::string k = s.active.cert_pem + s.active.chain_pem;
  for (const RootEntry& r : s.roots) k += r.cert_pem;
  return k;
}

std::vector<std::string> SplitPem(const std::string& pem) {
  std::vector<std::string> out;
  auto certs = pki::Certificate::ParsePemChain(pem);
  if (!certs.ok()) return out;
  for (const pki::Certificate& c : *certs) out.push_back(c.ToPem());
  return out;
}

}  // namespace

std::string OrganizationOf(const pki::Certificate& cert, const std::string& fallback) {
  const std::string subject = cert.Subject();
  if (subject.rfind("O=", 0) == 0 && subject.find(',') == std::string::npos) {
    return subject.substr(2);
  }
  return fallback;
}

std::string BundleOf(const TrustState& state) {
  std::vector<std::string> roots;
  for (const RootEntry& r : state.roots) {
    for (std::string& pem : SplitPem(r.cert_pem)) roots.push_back(std::move(pem));
  }
  return BundlePem(roots);
}

Result<std::shared_ptr<const CaBundle>> SigningBundleOf(const TrustState& state, TimePoint now) {
  StoredCa stored{state.active.cert_pem, state.active.key_pem, BundleOf(state),
                  state.active.chain_pem};
  return BundleFromStored(stored, now);
}

Result<TrustState> StateFromIstioRecord(const StoredRecord& record, TimePoint now) {
  auto get = [&](const char* k) {
    auto it = record.data.find(k);
    return it == record.data.end() ? std::string() : it->second;
  };
  TrustState s;
  s.active.cert_pem = get(kCaCertKey);
  s.active.key_pem = get(kCaKeyKey);
  if (s.active.cert_pem.empty() || s.active.key_pem.empty()) {
    return FailedPrecondition("the stored CA lacks ca-cert.pem or ca-key.pem");
  }
  std::string roots_pem = get("root-cert.pem");
  if (roots_pem.find("-----BEGIN") == std::string::npos) roots_pem = s.active.cert_pem;
  for (std::string& pem : SplitPem(roots_pem)) s.roots.push_back({std::move(pem), std::nullopt});
  if (s.roots.empty()) return FailedPrecondition("the stored root-cert.pem does not parse");
  const std::string chain = get("cert-chain.pem");
  if (chain.find("-----BEGIN") != std::string::npos) s.active.chain_pem = chain;
  ASSIGN_OR_RETURN(auto bundle, SigningBundleOf(s, now));
  s.active_signer_not_after = bundle->signer.cert.NotAfter();
  s.stage_entered_at = now;
  return s;
}

std::map<std::string, std::string> RecordOf(const TrustState& state) {
  StateMap m = SerializeTrustState(state);
  // Istio's views of the same record: the bundle and the active signer's chain.
  m["root-cert.pem"] = BundleOf(state);
  m["cert-chain.pem"] = state.active.chain_pem;
  return m;
}

std::string ProgressJson(const Decision& d, const Publication& p, uint64_t generation, TimePoint at,
                         const TrustPolicy& policy) {
  Json j = {{"generation", generation},
            {"propagation_delay_micros", policy.propagation_delay.count()},
            {"objects_updated", d.objects_updated},
            {"objects_total", d.objects_total},
            {"last_write_unix_micros", InstantJson(p.last_write)},
            {"action", ActionName(d.action)},
            {"gate", GateName(d.gate)},
            {"next_transition_unix_micros", InstantJson(d.next_transition)},
            {"outstanding_not_after_unix_micros", InstantJson(d.outstanding_not_after)},
            {"unsafe_at_unix_micros", InstantJson(d.unsafe_at)},
            {"decided_at_unix_micros", InstantJson(at)}};
  return j.dump(2) + "\n";
}

std::optional<StoredProgress> ParseProgress(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("generation") || !j["generation"].is_number_unsigned()) {
    return std::nullopt;
  }
  StoredProgress p;
  p.generation = j["generation"].get<uint64_t>();
  if (j.contains("propagation_delay_micros") && j["propagation_delay_micros"].is_number_integer()) {
    p.propagation_delay = Duration(j["propagation_delay_micros"].get<int64_t>());
  }
  auto size = [&](const char* k) -> size_t {
    return j.contains(k) && j[k].is_number_unsigned() ? j[k].get<size_t>() : 0;
  };
  p.decision.objects_updated = size("objects_updated");
  p.decision.objects_total = size("objects_total");
  p.publication = {p.generation, p.decision.objects_updated, p.decision.objects_total,
                   InstantFrom(j, "last_write_unix_micros")};
  for (Gate g :
       {Gate::kNone, Gate::kDistribution, Gate::kPropagationDelay, Gate::kCertsWithoutNewRoot,
        Gate::kPreviousSignerCerts, Gate::kActiveSignerExpiry}) {
    if (j.value("gate", "") == GateName(g)) p.decision.gate = g;
  }
  p.decision.next_transition = InstantFrom(j, "next_transition_unix_micros");
  p.decision.outstanding_not_after = InstantFrom(j, "outstanding_not_after_unix_micros");
  p.decision.unsafe_at = InstantFrom(j, "unsafe_at_unix_micros");
  p.at = InstantFrom(j, "decided_at_unix_micros").value_or(TimePoint{});
  return p;
}

TrustManager::TrustManager(Authority& authority, CaStore& store, const Clock& clock,
                           MetricsRegistry& metrics, ManagerOptions options, ManagerHooks hooks)
    : authority_(authority),
      store_(store),
      clock_(clock),
      metrics_(metrics),
      options_(std::move(options)),
      hooks_(std::move(hooks)) {}

TrustManager::~TrustManager() { Stop(); }

Status TrustManager::Init() {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(LoadAndApply(/*initial=*/true));
  authority_.SetIssuanceGuard([this](TimePoint needed) { ReserveIssuance(needed); });
  UpdateMetrics();
  return OkStatus();
}

TimePoint TrustManager::IssuanceBoundFor(TimePoint needed, TimePoint now) const {
  const Duration ttl = authority_.policy().default_ttl;
  return std::max(needed, now + std::chrono::duration_cast<TimePoint::duration>(ttl)) +
         std::chrono::duration_cast<TimePoint::duration>(options_.issued_headroom);
}

void TrustManager::ReserveIssuance(TimePoint needed) {
  std::lock_guard<std::mutex> lock(mu_);
  Status result;
  for (int attempt = 0; attempt < 3; ++attempt) {
    result = LoadAndApply(/*initial=*/false);
    if (!result.ok()) break;
    if (state_.latest_issued_not_after && *state_.latest_issued_not_after >= needed) {
      result = OkStatus();
      break;
    }
    result =
        Persist(RecordIssued(state_, IssuanceBoundFor(needed, clock_.Now())), "issuance bound");
    if (result.ok() || result.code() != Code::kAborted) break;
  }
  if (!result.ok()) {
    metrics_
        .GetCounter("istio_ca_trust_unrecorded_issuance_total",
                    "Certificates issued before their NotAfter could be recorded in the CA record "
                    "(the record was unwritable); recorded at the next successful pass.")
        .Inc();
    if (!reserve_failing_) {
      Logger("trust")->error(
          "cannot record the issuance bound before issuing; issuing anyway, recorded at the next "
          "successful pass error=\"{}\"",
          result.ToString());
      reserve_failing_ = true;
    }
  } else if (reserve_failing_) {
    Logger("trust")->info("the issuance bound is recorded again");
    reserve_failing_ = false;
  }
}

Status TrustManager::LoadAndApply(bool initial) {
  auto log = Logger("trust");
  const TimePoint now = clock_.Now();
  auto record = store_.LoadRecord();
  if (!record.ok() && record.status().code() == Code::kNotFound) {
    // Nothing stored: the first start of this CA.
    TrustState fresh;
    if (options_.self_signed) {
      const SelfSignedOptions& o = options_.self_signed_options;
      ASSIGN_OR_RETURN(pki::PrivateKey key, pki::PrivateKey::Generate(o.key_type));
      ASSIGN_OR_RETURN(pki::Certificate root,
                       pki::MakeSelfSignedRoot(key, {o.organization, o.ttl}, now));
      ASSIGN_OR_RETURN(SecretString key_pem, key.ToPem());
      fresh.active = {root.ToPem(), key_pem.str(), ""};
      fresh.roots = {{root.ToPem(), std::nullopt}};
      fresh.active_signer_not_after = root.NotAfter();
      log->info("created a self-signed CA org={} key={} serial={} not_after={}", o.organization,
                pki::KeyTypeName(o.key_type), root.SerialHex(), FormatRfc3339(root.NotAfter()));
    } else {
      ASSIGN_OR_RETURN(auto bundle, LoadPluggedCa(options_.plugged, now));
      ASSIGN_OR_RETURN(std::string cert, ReadFileToString(options_.plugged.signing_cert));
      ASSIGN_OR_RETURN(std::string key, ReadFileToString(options_.plugged.signing_key));
      ASSIGN_OR_RETURN(std::string roots, ReadFileToString(options_.plugged.root_cert));
      std::string chain;
      if (!options_.plugged.cert_chain.empty()) {
        ASSIGN_OR_RETURN(chain, ReadFileToString(options_.plugged.cert_chain));
      }
      fresh.active = {cert, key, chain};
      Cleanse(key.data(), key.size());
      for (std::string& pem : SplitPem(roots)) fresh.roots.push_back({std::move(pem), {}});
      fresh.active_signer_not_after = bundle->signer.cert.NotAfter();
      files_fingerprint_ = PluggedFilesFingerprint(options_.plugged);
      log->info("loaded plugged-in CA signer_serial={} roots={} not_after={}",
                bundle->signer.cert.SerialHex(), bundle->roots.size(),
                FormatRfc3339(bundle->signer.cert.NotAfter()));
    }
    fresh.stage_entered_at = now;
    Status stored = store_.StoreRecord(RecordOf(fresh), "");
    if (!stored.ok() && stored.code() != Code::kAborted) {
      return stored.WithContext("storing the new CA record");
    }
    if (stored.code() == Code::kAborted) {
      log->info("another instance stored a CA first; using it");
    }
    record = store_.LoadRecord();
  }
  if (!record.ok()) return record.status().WithContext("loading the CA record");
  if (record->version == version_ && !version_.empty() && !initial) return OkStatus();

  auto parsed = ParseTrustState(record->data);
  if (!parsed.ok() && parsed.status().code() == Code::kNotFound) {
    // A CA stored before the trust lifecycle (Istio's keys only): the same signer, stable.
    ASSIGN_OR_RETURN(TrustState s, StateFromIstioRecord(*record, now));
    if (!options_.self_signed && files_fingerprint_.empty()) {
      files_fingerprint_ = "<from an earlier record>";
    }
    Status stored = store_.StoreRecord(RecordOf(s), record->version);
    if (!stored.ok() && stored.code() != Code::kAborted) {
      return stored.WithContext("upgrading the stored CA record");
    }
    log->info("upgraded the stored CA record to the trust lifecycle (stage stable)");
    return LoadAndApply(initial);
  }
  if (!parsed.ok()) return parsed.status().WithContext("the stored CA record");
  Status applied = Apply(*parsed, initial);
  if (!applied.ok()) return applied;
  version_ = record->version;
  auto progress = record->data.find(kProgressKey);
  progress_written_ = progress == record->data.end() ? "" : progress->second;
  return OkStatus();
}

namespace {

// What moved between two applied records, as istio_ca_trust_transitions_total names it; empty
// when nothing an operator audits changed (e.g. only the recorded issuance instants).
std::string TransitionName(const TrustState& before, const TrustState& after, bool self_signed) {
  if (before.stage != after.stage) {
    if (after.stage == Stage::kPrepared) return "prepare";
    if (after.stage == Stage::kActive) return "activate";
    if (after.stage == Stage::kStable) return "retire";
  }
  if (before.active.cert_pem != after.active.cert_pem) {
    return self_signed && before.active.key_pem == after.active.key_pem ? "reissue-root"
                                                                        : "swap-signer";
  }
  if (before.bundle_generation != after.bundle_generation) return "bundle-changed";
  return "";
}

}  // namespace

Status TrustManager::Apply(const TrustState& state, bool initial) {
  const std::string key = AppliedKey(state);
  if (key != applied_) {
    auto bundle = SigningBundleOf(state, clock_.Now());
    if (!bundle.ok()) return bundle.status().WithContext("the stored signer");
    authority_.SetBundle(*bundle);
    // SetBundle waited for every sign on the old bundle: this covers all of them.
    latest_at_swap_ = authority_.LatestIssuedNotAfter();
    applied_ = key;
    Logger("trust")->info(
        "{} signer serial={} not_after={} stage={} roots={} bundle_generation={} "
        "latest_issued_at_swap={} without_next_root_until={}",
        initial ? "serving" : "now serving", (*bundle)->signer.cert.SerialHex(),
        FormatRfc3339((*bundle)->signer.cert.NotAfter()), StageName(state.stage),
        state.roots.size(), state.bundle_generation, Rfc(latest_at_swap_),
        Rfc(state.without_next_root_until));
    if (!initial && hooks_.on_change) hooks_.on_change();
    if (options_.events != nullptr) {
      options_.events->Record(
          CaEvent{clock_.Now(),
                  "ca_changed",
                  {{"signer_serial", (*bundle)->signer.cert.SerialHex()},
                   {"signer_not_after", FormatRfc3339((*bundle)->signer.cert.NotAfter())},
                   {"stage", StageName(state.stage)},
                   {"roots", std::to_string(state.roots.size())},
                   {"bundle_generation", std::to_string(state.bundle_generation)},
                   {"reason", initial ? "loaded" : "changed"}}});
    }
  }
  if (!initial && options_.events != nullptr && !(state == state_)) {
    const std::string transition = TransitionName(state_, state, options_.self_signed);
    if (!transition.empty()) {
      options_.events->Record(CaEvent{
          clock_.Now(),
          "trust_transition",
          {{"transition", transition},
           {"stage", StageName(state.stage)},
           {"previous_stage", StageName(state_.stage)},
           {"bundle_generation", std::to_string(state.bundle_generation)},
           {"signer_serial",
            authority_.Bundle() ? authority_.Bundle()->signer.cert.SerialHex() : std::string()}}});
    }
  }
  state_ = state;
  // What the record covers is what this replica may hand out without writing first.
  authority_.SetIssuanceBound(state.latest_issued_not_after);
  return OkStatus();
}

Status TrustManager::Persist(const TrustState& next, const std::string& why) {
  std::map<std::string, std::string> record = RecordOf(next);
  if (!progress_written_.empty()) record[kProgressKey] = progress_written_;
  Status s = store_.StoreRecord(record, version_);
  for (auto& [k, v] : record) Cleanse(v.data(), v.size());
  if (!s.ok()) {
    // A concurrent writer (`istio-ca rotate`, another replica): re-read; decide again next tick.
    return s.WithContext("persisting the trust state (" + why + ")");
  }
  version_.clear();  // force the read-back
  return LoadAndApply(/*initial=*/false);
}

void TrustManager::SetLeading(bool leading) {
  std::lock_guard<std::mutex> lock(mu_);
  leading_ = leading;
  published_generation_call_ = 0;  // a new term publishes the current generation again
}

void TrustManager::ForceFileCheck() {
  std::lock_guard<std::mutex> lock(mu_);
  force_file_check_ = true;
}

Status TrustManager::Tick() {
  std::lock_guard<std::mutex> lock(mu_);
  auto log = Logger("trust");
  const TimePoint now = clock_.Now();
  Status loaded = LoadAndApply(/*initial=*/false);
  if (!loaded.ok()) {
    log->error("cannot read the CA record; serving the last good one error=\"{}\"",
               loaded.ToString());
  }
  Status result = loaded;
  if (loaded.ok()) {
    // The instants that must cover every certificate handed out before this replica's last swap
    // (rules 2 and 3). A follower raises them too: it signed with the old bundle or signer until
    // it followed the record, which the leader cannot see. A raise is monotone and happens once
    // per swap, within a tick of it, long before the instant it raises can come.
    TrustState s = state_;
    if (latest_at_swap_) {
      if (s.stage == Stage::kPrepared && s.without_next_root_until &&
          *latest_at_swap_ > *s.without_next_root_until) {
        log->info(
            "certificates handed out before the new root was served expire at {}: "
            "activation waits past it (was {})",
            Rfc(latest_at_swap_), Rfc(s.without_next_root_until));
        s.without_next_root_until = latest_at_swap_;
      }
      if (s.stage == Stage::kActive && s.previous_signer_until &&
          *latest_at_swap_ > *s.previous_signer_until) {
        s.previous_signer_until = latest_at_swap_;
        for (RootEntry& r : s.roots) {
          if (r.retire_after) r.retire_after = Later(r.retire_after, latest_at_swap_);
        }
      }
    }
    // The issuance bound, extended ahead of what this replica issues (every replica signs) so
    // that Sign rarely has to wait for a write: about once per half headroom while issuing.
    const std::optional<TimePoint> issued = authority_.LatestIssuedNotAfter();
    if (issued && (!s.latest_issued_not_after ||
                   *issued + options_.issued_headroom / 2 > *s.latest_issued_not_after)) {
      s = RecordIssued(s, IssuanceBoundFor(*issued, now));
    }
    if (!(s == state_)) result = Persist(s, "issued certificates");
    if (leading_) {
      if (result.ok() && !options_.self_signed) result = CheckPluggedFiles(now);
      if (result.ok() && options_.self_signed) result = CheckRootAge(now);
      if (result.ok()) result = DecideAndAct(now);
    } else {
      snapshot_.state = state_;
      snapshot_.record_version = version_;
      snapshot_.at = now;
    }
    if (!result.ok()) {
      log->warn("trust lifecycle pass failed; retrying error=\"{}\"", result.ToString());
    }
  }
  UpdateMetrics();
  return result;
}

Status TrustManager::CheckPluggedFiles(TimePoint now) {
  auto log = Logger("trust");
  const std::string fp = PluggedFilesFingerprint(options_.plugged);
  const bool forced = force_file_check_;
  force_file_check_ = false;
  if (!forced && (fp == files_fingerprint_ || fp == rejected_fingerprint_)) return OkStatus();
  Counter& failures =
      metrics_.GetCounter("istio_ca_ca_bundle_reload_failures_total",
                          "Plugged-in CA bundle changes rejected (the old bundle keeps serving).");
  Gauge& failing = metrics_.GetGauge("istio_ca_ca_bundle_reload_failing",
                                     "1 while the plugged-in CA files on disk are rejected.");
  auto reject = [&](const Status& why) {
    failures.Inc();
    failing.Set(1);
    rejected_fingerprint_ = fp;
    log->error("rejected the changed plugged-in CA; keeping the current signer error=\"{}\"",
               why.ToString());
    return OkStatus();
  };
  auto validated = LoadPluggedCa(options_.plugged, now);
  if (!validated.ok()) return reject(validated.status());
  auto read = [](const std::string& path) -> std::string {
    if (path.empty()) return "";
    auto r = ReadFileToString(path);
    return r.ok() ? std::move(r).value() : std::string();
  };
  PluggedFiles files{read(options_.plugged.signing_cert), read(options_.plugged.cert_chain),
                     read(options_.plugged.root_cert)};
  // The files already staged (a restart in prepared) are not a new change.
  if (state_.stage == Stage::kPrepared && state_.next &&
      SameCertificate(state_.next->cert_pem, files.signer_cert_pem)) {
    files_fingerprint_ = fp;
    failing.Set(0);
    return OkStatus();
  }
  auto change = ClassifyPluggedChange(state_, files, now);
  if (!change.ok()) return reject(change.status());
  if (change->signer == SignerChange::kSameRootRenewal) {
    // A signer under a root that is leaving (e.g. the old CA's files put back mid-rotation) would
    // sign under a root that rule 3 is about to drop.
    for (const RootEntry& r : state_.roots) {
      if ((r.leaving || r.retire_after) && SameCertificate(r.cert_pem, change->anchor_root_pem)) {
        return reject(FailedPrecondition(
            "the new signer chains to a root that is leaving the bundle; finish the rotation "
            "first (istio-ca rotate --status)"));
      }
    }
  }
  failing.Set(0);
  rejected_fingerprint_.clear();

  TrustState s = state_;
  for (const std::string& root : change->added_roots) {
    if (change->signer == SignerChange::kNewRoot &&
        SameCertificate(root, change->anchor_root_pem)) {
      continue;  // Prepare adds it
    }
    s.roots.push_back({root, std::nullopt});
    ++s.bundle_generation;
  }
  std::string what = "roots";
  switch (change->signer) {
    case SignerChange::kNone: break;
    case SignerChange::kSameRootRenewal: {
      std::string key = read(options_.plugged.signing_key);
      ASSIGN_OR_RETURN(s, SwapSigner(s, {files.signer_cert_pem, key, files.chain_pem}));
      Cleanse(key.data(), key.size());
      what = "same-root signer renewal (swapped at once)";
      break;
    }
    case SignerChange::kNewRoot: {
      if (state_.stage != Stage::kStable) {
        if (last_log_ != fp) {
          log->warn(
              "the plugged-in CA moved to a new root while a rotation is in progress "
              "(stage {}); it is staged once the rotation ends",
              StageName(state_.stage));
          last_log_ = fp;
        }
        return OkStatus();  // the fingerprint stays unseen: retried every tick
      }
      std::string key = read(options_.plugged.signing_key);
      Issued issued{authority_.LatestIssuedNotAfter()};
      auto prepared = Prepare(s, {files.signer_cert_pem, key, files.chain_pem},
                              change->anchor_root_pem, change->removed_roots, issued, now);
      Cleanse(key.data(), key.size());
      if (!prepared.ok()) return prepared.status();
      s = std::move(prepared).value();
      what = "new root (staged: prepared)";
      break;
    }
  }
  for (const std::string& root : change->removed_roots) {
    if (change->signer == SignerChange::kNewRoot) continue;  // leaving: retired by rule 3
    auto scheduled = ScheduleRootRemoval(s, root, Later(s.previous_signer_until, now).value());
    if (scheduled.ok()) s = std::move(scheduled).value();
  }
  log->info("plugged-in CA files changed: {} added_roots={} removed_roots={}", what,
            change->added_roots.size(), change->removed_roots.size());
  files_fingerprint_ = fp;
  if (s == state_) return OkStatus();
  Status persisted = Persist(s, "plugged-in files changed");
  // Not recorded (e.g. a concurrent writer won the compare-and-swap): the files are classified
  // again next tick against the record as it then is, instead of being taken as seen.
  if (!persisted.ok()) files_fingerprint_.clear();
  return persisted;
}

Status TrustManager::CheckRootAge(TimePoint now) {
  if (next_root_check_ && now < *next_root_check_) return OkStatus();
  next_root_check_ = now + options_.root_check_interval;
  if (state_.stage != Stage::kStable || !state_.active.chain_pem.empty()) return OkStatus();
  auto cert = pki::Certificate::ParsePemChain(state_.active.cert_pem);
  if (!cert.ok() || !cert->front().IsSelfSigned()) return OkStatus();
  const pki::Certificate& root = cert->front();
  if (!RootReissueDue(root.NotBefore(), root.NotAfter(), options_.policy.root_grace_percentile,
                      now)) {
    return OkStatus();
  }
  ASSIGN_OR_RETURN(pki::PrivateKey key, pki::PrivateKey::FromPem(state_.active.key_pem));
  const std::string org = OrganizationOf(root, options_.self_signed_options.organization);
  const Duration ttl = options_.self_signed_options.ttl;
  ASSIGN_OR_RETURN(pki::Certificate reissued, pki::MakeSelfSignedRoot(key, {org, ttl}, now));
  ASSIGN_OR_RETURN(TrustState s,
                   ReissueRoot(state_, {reissued.ToPem(), state_.active.key_pem, ""}));
  Logger("trust")->info(
      "self-signed root within its grace period: re-issued with the same key old_not_after={} "
      "new_serial={} new_not_after={}",
      FormatRfc3339(root.NotAfter()), reissued.SerialHex(), FormatRfc3339(reissued.NotAfter()));
  metrics_
      .GetCounter("istio_ca_trust_transitions_total", "Trust lifecycle transitions.",
                  {{"transition", "reissue-root"}})
      .Inc();
  Status persisted = Persist(s, "self-signed root re-issued");
  if (!persisted.ok()) next_root_check_.reset();  // retried next tick, not next interval
  return persisted;
}

Status TrustManager::DecideAndAct(TimePoint now) {
  auto log = Logger("trust");
  const std::string bundle = BundleOf(state_);
  const uint64_t generation = state_.bundle_generation;
  if (published_generation_call_ != generation && hooks_.publish) {
    hooks_.publish(bundle, generation);
    published_generation_call_ = generation;
  }
  Publication pub{generation, 0, 0, std::nullopt};
  if (hooks_.progress) pub = hooks_.progress(bundle, generation);
  pub.generation = generation;
  const Decision d = Decide(state_, pub, now, options_.policy);
  snapshot_ = {state_, d, pub, now, version_};

  auto transition = [&](const char* name) {
    metrics_
        .GetCounter("istio_ca_trust_transitions_total", "Trust lifecycle transitions.",
                    {{"transition", name}})
        .Inc();
  };
  TrustState s = state_;
  switch (d.action) {
    case Action::kNone:
    case Action::kPublishBundle:
      // Only a rotation needs the record of when the bundle was carried everywhere; in stable
      // the record is not rewritten for it (nor for the progress document below).
      if (state_.stage != Stage::kStable && pub.total <= pub.updated &&
          state_.published_generation != generation) {
        s = RecordPublished(s, generation, pub.last_write.value_or(now));
        log->info("bundle generation {} carried by every object ({} of {}), last written {}",
                  generation, pub.updated, pub.total, Rfc(pub.last_write.value_or(now)));
      }
      if (d.unsafe_at && last_log_ != "unsafe") {
        log->error(
            "UNSAFE: the active signer expires before the new root can be safely "
            "activated; forced activation at {}",
            Rfc(d.unsafe_at));
        last_log_ = "unsafe";
      }
      break;
    case Action::kActivate:
    case Action::kForceActivateUnsafe: {
      const bool forced = d.unsafe();
      ASSIGN_OR_RETURN(s, Activate(s, {authority_.LatestIssuedNotAfter()}, now, forced));
      if (forced) {
        log->error(
            "UNSAFE forced activation: the old signer expires at {}; workloads whose "
            "bundle lacks the new root reject peers signed by it until they refresh",
            Rfc(state_.active_signer_not_after));
        transition("force-activate-unsafe");
      } else {
        log->info(
            "activated the next signer: every object carries the new root since {}, "
            "certificates without it expired; old root retires after {}",
            Rfc(pub.last_write), Rfc(s.previous_signer_until));
        transition("activate");
      }
      break;
    }
    case Action::kRetire: {
      ASSIGN_OR_RETURN(s, Retire(s, now));
      log->info("retired: every certificate under the old root expired; stage={} roots={}",
                StageName(s.stage), s.roots.size());
      transition("retire");
      break;
    }
  }
  // The progress document for `rotate --status`, rewritten only when something in it but the
  // decision time changed.
  const std::string progress = ProgressJson(d, pub, generation, now, options_.policy);
  auto strip = [](const std::string& doc) {
    Json j = Json::parse(doc, nullptr, false);
    if (j.is_object()) j.erase("decided_at_unix_micros");
    return j.dump();
  };
  const bool progress_changed = (s.stage != Stage::kStable || state_.stage != Stage::kStable) &&
                                strip(progress) != strip(progress_written_);
  if (progress_changed) progress_written_ = progress;
  if (s == state_ && !progress_changed) return OkStatus();
  Status persisted = Persist(s, ActionName(d.action));
  if (!persisted.ok()) return persisted;
  // After an activation the old signer's last certificates are known only now (SetBundle drained
  // them): the next tick raises rule 3's instant from latest_at_swap_ before anything retires.
  return OkStatus();
}

void TrustManager::UpdateMetrics() {
  const TrustState& s = state_;
  const Decision& d = snapshot_.decision;
  auto set = [&](const char* name, const char* help, double v) {
    metrics_.GetGauge(name, help).Set(v);
  };
  auto seconds = [](std::optional<TimePoint> t) {
    return t ? std::chrono::duration<double>(t->time_since_epoch()).count() : 0.0;
  };
  set("istio_ca_trust_stage", "Trust lifecycle stage: 0 stable, 1 prepared, 2 active.",
      static_cast<double>(s.stage));
  set("istio_ca_trust_bundle_generation", "Generation of the trust bundle being distributed.",
      static_cast<double>(s.bundle_generation));
  set("istio_ca_trust_roots", "Roots in the trust bundle.", static_cast<double>(s.roots.size()));
  set("istio_ca_trust_next_transition_timestamp_seconds",
      "When the next trust transition becomes allowed (0: none pending or not yet known).",
      seconds(d.next_transition));
  set("istio_ca_trust_objects_updated",
      "Objects (secrets, ConfigMaps) carrying the current bundle generation.",
      static_cast<double>(d.objects_updated));
  set("istio_ca_trust_objects_required", "Objects that must carry the current bundle generation.",
      static_cast<double>(d.objects_total));
  set("istio_ca_trust_outstanding_not_after_timestamp_seconds",
      "Latest NotAfter still outstanding that gates the next transition (0: none).",
      seconds(d.outstanding_not_after));
  set("istio_ca_trust_unsafe_activation",
      "1 while an unsafe forced activation is scheduled or was the last activation.",
      (d.unsafe_at || s.forced_activation) ? 1.0 : 0.0);
}

TrustSnapshot TrustManager::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  TrustSnapshot out = snapshot_;
  out.state = state_;
  out.record_version = version_;
  return out;
}

void TrustManager::Start() {
  loop_.Every(options_.tick, [this] { (void)Tick(); });
}

void TrustManager::Stop() { loop_.Stop(); }

}  // namespace istioca::ca::trust
