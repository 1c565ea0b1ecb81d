// ca/trust/manager.h — the loop around the trust lifecycle's pure decisions.
//
// Promises: the CA's record (CaStore: `istio-ca-secret` or DIR/ca/) is the single source of
// truth. Init() loads it (or creates it: a new self-signed root, the plugged-in files, or a
// record Istio wrote before the trust lifecycle existed) and puts its active signer and bundle
// into the Authority. Every Tick() re-reads the record, so every replica and `istio-ca rotate`
// see one state; only the leader decides: it records what was issued, classifies plugged-in file
// changes and the self-signed root's age, asks Decide() (lifecycle.h) what to do, persists the
// next state (compare-and-swap on the record's version) *before* acting on it, then applies it.
// After every bundle or signer swap it reads the Authority's latest NotAfter (SetBundle drains
// in-flight signs) and raises the recorded rule-2/rule-3 instants with it, so they cover every
// certificate handed out before the swap. Each transition is logged once; its progress is
// written into the record (`trust-progress.json`) for `rotate --status`, at most once per tick.
//
// A follower writes one thing: after it follows a prepare or an activation, it raises the
// recorded rule-2/rule-3 instant with what it signed before (its Authority's latest NotAfter at
// the swap), so the certificates every replica handed out are covered.
//
// Issuance is recorded before it happens (write-ahead): the record's latest issued NotAfter is
// a bound that no certificate handed out by any replica exceeds. Init() installs a guard in the
// Authority: a Sign whose NotAfter would pass the recorded bound first has the bound raised and
// persisted (to max(needed, now + default TTL) + `issued_headroom`); every Tick() extends it
// ahead of issuance, so that write is rare. So a prepare — by `istio-ca rotate --start` or the
// leader — always covers every certificate handed out with the bundle it replaces, even one
// issued an instant before by a replica that dies right after. If the record cannot be written
// the certificate is still issued (counted in istio_ca_trust_unrecorded_issuance_total, logged
// once per outage) and the next successful pass records it.
//
// Does not promise: that a replica that cannot write the record during a rotation is covered.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/metrics.h"
#include "base/periodic.h"
#include "base/status.h"
#include "base/time.h"
#include "ca/core/authority.h"
#include "ca/core/ca_loader.h"
#include "ca/core/ca_store.h"
#include "ca/core/events.h"
#include "ca/trust/lifecycle.h"
#include "ca/trust/state.h"
#include "pki/cert.h"

namespace istioca::ca::trust {

inline constexpr char kProgressKey[] = "trust-progress.json";

struct ManagerOptions {
  TrustPolicy policy;
  Duration tick = std::chrono::seconds(1);
  // --self-signed-root-cert-check-interval: how often the self-signed root's age is checked.
  Duration root_check_interval = std::chrono::hours(1);
  // The recorded issuance bound runs this far ahead of the NotAfters issued, so it is rewritten
  // about once per half headroom while certificates are issued, instead of every tick.
  Duration issued_headroom = std::chrono::minutes(1);
  bool self_signed = true;
  SelfSignedOptions self_signed_options;  // a new root (first start)
  PluggedCaFiles plugged;                 // when !self_signed
  // "ca_changed" whenever the served signer changes, "trust_transition" whenever the applied
  // record moves to another stage, signer or bundle generation (ca/core/events.h). Borrowed,
  // may be null. Derived from the applied state, so a follower and a change written by
  // `istio-ca rotate` are reported too.
  EventSink* events = nullptr;
};

struct ManagerHooks {
  // How far `bundle_pem` (generation `generation`) has been published: the daemon sums the
  // workload secrets, the ConfigMaps and local files. `generation` in the result is ignored.
  std::function<Publication(const std::string& bundle_pem, uint64_t generation)> progress;
  // A new bundle generation must reach every object (called once per generation per term).
  std::function<void(const std::string& bundle_pem, uint64_t generation)> publish;
  // The Authority's signer or bundle changed (e.g. resync the workload secrets).
  std::function<void()> on_change;
};

// What `rotate --status` and /metrics show: the state, the last decision and its inputs.
struct TrustSnapshot {
  TrustState state;
  Decision decision;
  Publication publication;
  TimePoint at{};
  std::string record_version;
};

// The organization of a root whose subject is only "O=<org>" (what MakeSelfSignedRoot makes), so a
// re-issued or next root keeps it; anything else → `fallback`.
std::string OrganizationOf(const pki::Certificate& cert, const std::string& fallback);
// The record's bundle as consumers read it.
std::string BundleOf(const TrustState& state);
// The signing bundle for `state`'s active signer and roots, validated at `now`.
Result<std::shared_ptr<const CaBundle>> SigningBundleOf(const TrustState& state, TimePoint now);
// A stable state for a record that has no trust-state.json (Istio's keys only).
Result<TrustState> StateFromIstioRecord(const StoredRecord& record, TimePoint now);
// The record to write for `state`: its keys plus Istio's root-cert.pem / cert-chain.pem views.
std::map<std::string, std::string> RecordOf(const TrustState& state);
// The progress document kept next to the state, and its parse (absent or malformed: nullopt).
std::string ProgressJson(const Decision& decision, const Publication& publication,
                         uint64_t generation, TimePoint at, const TrustPolicy& policy);
struct StoredProgress {
  uint64_t generation = 0;
  std::optional<Duration> propagation_delay;  // the daemon's --trust-propagation-delay
  Publication publication;
  Decision decision;
  TimePoint at{};
};
std::optional<StoredProgress> ParseProgress(const std::string& json);

class TrustManager {
 public:
  TrustManager(Authority& authority, CaStore& store, const Clock& clock, MetricsRegistry& metrics,
               ManagerOptions options, ManagerHooks hooks);
  ~TrustManager();
  TrustManager(const TrustManager&) = delete;
  TrustManager& operator=(const TrustManager&) = delete;

  // Loads or creates the record and applies it, and installs the Authority's issuance guard
  // (a call back into this manager). An error stops the daemon from starting. The Authority's
  // owner clears the guard (Authority::SetIssuanceGuard(nullptr)) once signing has stopped and
  // before this manager goes, if the Authority outlives it.
  Status Init();
  // One pass at clock.Now(). Errors are logged and retried on the next tick.
  Status Tick();
  // Only the leader decides and writes; every replica follows the record.
  void SetLeading(bool leading);
  // Re-reads the plugged-in files on the next tick even if unchanged (SIGHUP).
  void ForceFileCheck();
  void Start();
  void Stop();

  TrustSnapshot Snapshot() const;

 private:
  Status LoadAndApply(bool initial);
  Status Apply(const TrustState& state, bool initial);
  Status Persist(const TrustState& next, const std::string& why);
  Status CheckPluggedFiles(TimePoint now);
  Status CheckRootAge(TimePoint now);
  Status DecideAndAct(TimePoint now);
  void UpdateMetrics();
  // The Authority's guard: persists an issuance bound at or past `needed` (see above).
  void ReserveIssuance(TimePoint needed);
  TimePoint IssuanceBoundFor(TimePoint needed, TimePoint now) const;

  Authority& authority_;
  CaStore& store_;
  const Clock& clock_;
  MetricsRegistry& metrics_;
  const ManagerOptions options_;
  const ManagerHooks hooks_;

  mutable std::mutex mu_;  // one pass at a time; guards everything below
  TrustState state_;
  std::string version_;  // of the record state_ came from
  std::string applied_;  // signer + bundle now in the Authority (to skip no-op swaps)
  std::optional<TimePoint> latest_at_swap_;  // Authority's latest NotAfter right after a swap
  bool leading_ = false;
  bool force_file_check_ = false;
  std::string files_fingerprint_;     // of the plugged-in files last classified
  std::string rejected_fingerprint_;  // of files last rejected (logged once)
  std::optional<TimePoint> next_root_check_;
  uint64_t published_generation_call_ = 0;  // last generation passed to hooks.publish
  std::string progress_written_;            // last trust-progress.json written
  std::string last_log_;                    // last waiting line (logged once)
  bool reserve_failing_ = false;            // the issuance bound could not be recorded
  TrustSnapshot snapshot_;
  PeriodicThread loop_;
};

}  // namespace istioca::ca::trust
