// ca/trust/rotate.h — what `istio-ca rotate` does to the CA's record, with or without a daemon.
//
// Promises: every operation reads the record from the CaStore, applies one transition of
// lifecycle.h and writes it back with compare-and-swap (retried a few times when the running
// leader wrote in between), so a running leader picks the result up on its next tick and an
// offline CA starts from it. Status is computed from the record alone: the stage, the roots, the
// signers, the recorded instants and the progress the leader last wrote, evaluated at `now`.
//
// Does not promise: that a daemon is running (nothing here needs one), or anything about
// distribution beyond what the leader recorded.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "ca/core/ca_store.h"
#include "ca/trust/lifecycle.h"
#include "ca/trust/manager.h"
#include "ca/trust/state.h"
#include "pki/key.h"

namespace istioca::ca::trust {

struct CertSummary {
  std::string subject;
  std::string skid;  // hex, "" when absent
  std::string serial;
  TimePoint not_after{};
  std::optional<TimePoint> retire_after;  // roots only
  bool leaving = false;                   // roots only
};

struct RotateStatus {
  TrustState state;
  std::vector<CertSummary> roots;
  CertSummary active_signer;
  std::optional<CertSummary> next_signer;
  std::optional<CertSummary> previous_signer;
  Decision decision;  // at `at`, from the recorded progress
  std::optional<StoredProgress> progress;
  TimePoint at{};
};

Result<RotateStatus> ReadStatus(const CaStore& store, const TrustPolicy& policy, TimePoint now);
std::string StatusText(const RotateStatus& status);
std::string StatusJson(const RotateStatus& status);

struct StartOptions {
  std::optional<pki::KeyType> key_type;  // unset: the current root key's type
  std::optional<Duration> ttl;           // unset: the current root's lifetime
};
// stable → prepared with a new self-signed root and key. FailedPrecondition (exit 1) unless
// stable, or when the active signer is a plugged-in intermediate (change the files instead).
Result<RotateStatus> StartRotation(CaStore& store, const StartOptions& options,
                                   const TrustPolicy& policy, TimePoint now);
// prepared → active now, whatever rule 2 says. Returns what it breaks in `warning`.
Result<RotateStatus> ForceActivate(CaStore& store, const TrustPolicy& policy, TimePoint now,
                                   std::string& warning);
// active → stable now (the old root leaves the bundle), whatever rule 3 says.
Result<RotateStatus> ForceRetire(CaStore& store, const TrustPolicy& policy, TimePoint now,
                                 std::string& warning);

}  // namespace istioca::ca::trust
