// ca/rotation.h — when a published workload certificate must be replaced. Pure functions.
//
// Grace period G = max(ratio × lifetime, min_grace), computed in floating-point seconds so it
// neither truncates the ratio to 0 (Istio 0.6, PR #3758) nor overflows for long lifetimes
// (Istio #18357: 8760h × 500 in int64 nanoseconds went negative). min_grace never exceeds half
// the lifetime: a 5-minute certificate with a 10-minute minimum grace would otherwise be due the
// moment it is issued, and the controller would reissue it in a loop. Lifetime counts from the
// issuance time (NotBefore + the 2-minute clock-skew backdate), not from the backdated NotBefore,
// for the same reason with short TTLs.
//
// Jitter shortens G by up to `jitter` × G, by a fraction derived from the certificate's serial,
// so a fleet issued in one burst does not renew in one burst, while the decision for one
// certificate stays the same on every pass (no flapping, and testable).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/time.h"

namespace istioca::ca {

struct RotationPolicy {
  double grace_ratio = 0.5;                       // --workload-cert-grace-period-ratio, in [0, 1]
  Duration min_grace = std::chrono::minutes(10);  // --workload-cert-min-grace-period
  double jitter = 0.1;                            // fraction of G, in [0, 1)
};

enum class RotationReason {
  kNone,
  kGracePeriod,    // within its grace period
  kExpired,        // NotAfter passed (e.g. the clock jumped, or the CA was down)
  kNotYetValid,    // NotBefore in the future (clock jumped back)
  kRootMismatch,   // root-cert.pem differs from the current roots
  kUnparsable,     // cert-chain.pem does not parse
  kWrongIdentity,  // the leaf is not for this service account / trust domain
};
const char* RotationReasonName(RotationReason reason);

// What the controller knows of a published certificate (from cert-chain.pem's first cert).
struct PublishedLeaf {
  TimePoint not_before;
  TimePoint not_after;
  std::string serial_hex;  // seeds the jitter
  bool identity_matches = true;
};

struct RotationDecision {
  RotationReason reason = RotationReason::kNone;
  // When the certificate becomes due for grace-period refresh (meaningful for a parsed leaf).
  TimePoint refresh_at{};
  bool refresh() const { return reason != RotationReason::kNone; }
};

// Grace period for a certificate of `lifetime`, before jitter.
Duration GracePeriod(Duration lifetime, const RotationPolicy& policy);

// Jitter fraction in [0, 1) derived from a serial (stable per certificate).
double JitterFraction(std::string_view serial_hex);

// The time at which `leaf` enters its (jittered) grace period.
TimePoint RefreshTime(const PublishedLeaf& leaf, const RotationPolicy& policy);

// leaf: nullopt when cert-chain.pem is unparsable. roots_match: root-cert.pem equals the
// current root bundle byte for byte.
RotationDecision DecideRotation(const std::optional<PublishedLeaf>& leaf, bool roots_match,
                                const RotationPolicy& policy, TimePoint now);

}  // namespace istioca::ca
