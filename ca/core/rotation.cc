#include "ca/core/rotation.h"

#include <algorithm>
#include <cmath>

#include "pki/issue.h"

namespace istioca::ca {
namespace {

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

Duration FromSeconds(double s) {
  // Clamp before converting: a lifetime of centuries must not wrap (Istio #18357).
  // ~10,000 years in seconds: covers every certificate time (up to 9999-12-31) and stays well
  // inside int64 microseconds.
  constexpr double kMax = 3.2e11;
  s = std::clamp(s, 0.0, kMax);
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

}  // namespace

const char* RotationReasonName(RotationReason reason) {
  switch (reason) {
    case RotationReason::kNone: return "none";
    case RotationReason::kGracePeriod: return "grace-period";
    case RotationReason::kExpired: return "expired";
    case RotationReason::kNotYetValid: return "not-yet-valid";
    case RotationReason::kRootMismatch: return "root-mismatch";
    case RotationReason::kUnparsable: return "unparsable";
    case RotationReason::kWrongIdentity: return "wrong-identity";
  }
  return "unknown";
}

Duration GracePeriod(Duration lifetime, const RotationPolicy& policy) {
  const double life = std::max(0.0, Seconds(lifetime));
  const double ratio = std::clamp(policy.grace_ratio, 0.0, 1.0);
  const double min_grace = std::min(Seconds(policy.min_grace), life / 2);
  return FromSeconds(std::max(ratio * life, min_grace));
}

double JitterFraction(std::string_view serial_hex) {
  // FNV-1a: stable across runs and platforms (std::hash is neither).
  uint64_t h = 1469598103934665603ull;
  for (char c : serial_hex) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return static_cast<double>(h >> 11) / static_cast<double>(1ull << 53);
}

TimePoint RefreshTime(const PublishedLeaf& leaf, const RotationPolicy& policy) {
  const TimePoint issued = std::min(leaf.not_before + pki::kClockSkewBackdate, leaf.not_after);
  const Duration grace = GracePeriod(leaf.not_after - issued, policy);
  const double jitter = std::clamp(policy.jitter, 0.0, 0.99) * JitterFraction(leaf.serial_hex);
  const Duration jittered = FromSeconds(Seconds(grace) * (1.0 - jitter));
  return leaf.not_after - std::chrono::duration_cast<TimePoint::duration>(jittered);
}

RotationDecision DecideRotation(const std::optional<PublishedLeaf>& leaf, bool roots_match,
                                const RotationPolicy& policy, TimePoint now) {
  RotationDecision d;
  if (!leaf) {
    d.reason = RotationReason::kUnparsable;
    return d;
  }
  d.refresh_at = RefreshTime(*leaf, policy);
  if (!leaf->identity_matches) {
    d.reason = RotationReason::kWrongIdentity;
  } else if (!roots_match) {
    d.reason = RotationReason::kRootMismatch;
  } else if (now >= leaf->not_after) {
    d.reason = RotationReason::kExpired;
  } else if (now < leaf->not_before) {
    d.reason = RotationReason::kNotYetValid;
  } else if (now >= d.refresh_at) {
    d.reason = RotationReason::kGracePeriod;
  }
  return d;
}

}  // namespace istioca::ca
