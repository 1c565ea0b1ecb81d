// ca/trust/lifecycle.h — the trust lifecycle as pure decisions (DESIGN "Trust lifecycle").
//
// Promises: given the persisted TrustState, what is published (N of M objects carry bundle
// generation G, and when the last was written), `now` and the policy, Decide() returns the one
// action to take next (none / publish the bundle / activate / retire / the unsafe forced
// activation) and the exact instant of the next transition with what gates it. The three rules:
//   1. a new root enters the bundle before anything is signed under it (Prepare adds it);
//   2. the next signer activates only once every object carries the bundle with its root, the
//      propagation delay has passed since the last write, and every certificate handed out with
//      a bundle lacking that root has expired (`without_next_root_until`, recorded at Prepare);
//   3. an old root leaves the bundle only after every certificate signed under it has expired
//      (`previous_signer_until`, recorded at Activate).
// Every safe instant comes from recorded NotAfter times and write times: no fixed sleeps. NotAfter
// is inclusive, so a gate on a NotAfter opens one second after it. The
// transitions (Prepare, Activate, Retire, ...) are pure functions returning the next state, which
// the loop persists *before* acting on it. The triggers (self-signed root near expiry, plugged-in
// file change) are classified here too, so the loop only gathers inputs, calls and acts.
//
// Does not promise: I/O, logging, metrics, or gathering the inputs (a later loop does that).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "ca/trust/state.h"

namespace istioca::ca::trust {

struct TrustPolicy {
  Duration propagation_delay = std::chrono::minutes(2);  // --trust-propagation-delay
  double root_grace_percentile = 20;  // --self-signed-root-cert-grace-period-percentile
  // The unsafe path: when rule 2 is still unmet this long before the active signer expires, the
  // next signer activates anyway (an old signer that expired signs nothing: issuance would stop).
  Duration unsafe_activation_lead = std::chrono::minutes(5);
};

// What distribution reports for the state's current bundle generation.
struct Publication {
  uint64_t generation = 0;  // the generation these counts are about
  size_t updated = 0;       // objects (secrets, ConfigMaps, files) carrying `generation`
  size_t total = 0;         // objects that must carry it
  std::optional<TimePoint> last_write;  // when the last of the `updated` objects was written
};

enum class Action {
  kNone,
  kPublishBundle,        // write the bundle of `bundle_generation` to objects that lack it
  kActivate,             // rule 2 holds: Activate(forced = false)
  kForceActivateUnsafe,  // rule 2 does not hold but the active signer is about to expire
  kRetire,               // rule 3 holds for a root: Retire()
};
const char* ActionName(Action action);

enum class Gate {
  kNone,
  kDistribution,         // not every object carries the bundle yet
  kPropagationDelay,     // waiting for kubelets to propagate the last write
  kCertsWithoutNewRoot,  // certificates handed out with a bundle lacking the next root
  kPreviousSignerCerts,  // certificates signed under a root that is leaving
  kActiveSignerExpiry,   // the unsafe forced activation is what comes next
};
const char* GateName(Gate gate);

struct Decision {
  Action action = Action::kNone;
  // The instant the next stage transition becomes allowed, when it can be known now (unset
  // while distribution is incomplete, or when nothing is pending).
  std::optional<TimePoint> next_transition;
  Gate gate = Gate::kNone;
  size_t objects_updated = 0;  // of the current generation
  size_t objects_total = 0;
  // The latest NotAfter still outstanding that gates the transition (rule 2 or rule 3).
  std::optional<TimePoint> outstanding_not_after;
  // Set in prepared when the forced activation would come before the safe instant (or the safe
  // instant is not yet known): the loop alerts on it before it happens.
  std::optional<TimePoint> unsafe_at;
  bool unsafe() const { return action == Action::kForceActivateUnsafe; }
  bool operator==(const Decision&) const = default;
};

Decision Decide(const TrustState& state, const Publication& published, TimePoint now,
                const TrustPolicy& policy);

// What the CA has issued under its active signer so far (the latest NotAfter), as the loop knows
// it; merged with `state.latest_issued_not_after` by the transitions.
struct Issued {
  std::optional<TimePoint> latest_not_after;
};

// ---- Transitions: each returns the next state (to persist before acting) or refuses. ----

// stable → prepared. `next_root_pem` joins the bundle (rule 1) unless already there; roots in
// `leaving_roots` leave after the rotation (rule 3). Records rule 2's instant: the latest NotAfter
// issued so far (all of it was handed out with the old bundle). FailedPrecondition unless stable.
Result<TrustState> Prepare(const TrustState& state, const SignerPem& next,
                           const std::string& next_root_pem,
                           const std::vector<std::string>& leaving_roots, const Issued& issued,
                           TimePoint now);
// prepared → active. The old signer becomes `previous`; rule 3's instant is the latest NotAfter
// issued under it; leaving roots get it as `retire_after`. `forced` records the unsafe path.
Result<TrustState> Activate(const TrustState& state, const Issued& issued, TimePoint now,
                            bool forced);
// active → stable (previous signer dropped), and in any stage drops every root whose
// `retire_after` has passed (bumping the generation). FailedPrecondition when nothing may retire.
Result<TrustState> Retire(const TrustState& state, TimePoint now);
// Same-root intermediate renewal: the new signer replaces the active one at once (its root is in
// the bundle, so every consumer already verifies it). The issued record is kept (same root).
Result<TrustState> SwapSigner(const TrustState& state, const SignerPem& signer);
// Self-signed root re-issued with the same key and subject: replaces the old root certificate in
// the bundle and as the active signer. Immediate: old and new verify each other's leaves.
Result<TrustState> ReissueRoot(const TrustState& state, const SignerPem& reissued_root);
// A root removed from the plugged-in files while certificates under it may be valid: it stays
// until `until` (rule 3), then Retire drops it.
Result<TrustState> ScheduleRootRemoval(const TrustState& state, const std::string& root_pem,
                                       TimePoint until);
// Raises the record of the latest NotAfter issued under the active signer.
TrustState RecordIssued(const TrustState& state, TimePoint not_after);
// Records that every object carries `generation`, the last written at `last_write`, so a
// resumed CA need not re-derive it. Ignored for another generation.
TrustState RecordPublished(const TrustState& state, uint64_t generation, TimePoint last_write);

// ---- Triggers ----

// When a self-signed root of this validity enters its grace period (the last `percentile`% of its
// life): the instant its same-key re-issue is due.
TimePoint RootReissueAt(TimePoint not_before, TimePoint not_after, double percentile);
bool RootReissueDue(TimePoint not_before, TimePoint not_after, double percentile, TimePoint now);

// The plugged-in files as read from disk: signing cert, chain to the root, and root-cert.pem
// (which may hold several roots).
struct PluggedFiles {
  std::string signer_cert_pem;
  std::string chain_pem;
  std::string roots_pem;
};

enum class SignerChange {
  kNone,             // the same signing certificate as the active one
  kSameRootRenewal,  // a new signer under a root already in the bundle: SwapSigner at once
  kNewRoot,          // a new signer under a root not in the bundle: Prepare (stage it)
};
const char* SignerChangeName(SignerChange change);

struct PluggedChange {
  SignerChange signer = SignerChange::kNone;
  std::string anchor_root_pem;             // the new root-cert.pem's root the signer chains to
  std::vector<std::string> added_roots;    // in the files, not in the bundle
  std::vector<std::string> removed_roots;  // in the bundle, not in the files: kept until rule 3
};

// Classifies a change of the plugged-in files against the state. InvalidArgument when the files
// do not parse or the signer does not chain (at `now`) to a root of the new root-cert.pem.
Result<PluggedChange> ClassifyPluggedChange(const TrustState& state, const PluggedFiles& files,
                                            TimePoint now);

// True when two PEM certificates are the same certificate (DER equal), whatever their text.
bool SameCertificate(const std::string& a_pem, const std::string& b_pem);

}  // namespace istioca::ca::trust
