#include "ca/core/rotation.h"

#include <catch2/catch.hpp>
#include <set>

#include "pki/issue.h"
#include "tests/testing/test_ca.h"

using namespace istioca;
using namespace istioca::ca;
using namespace std::chrono_literals;
using istioca::testing::T0;

namespace {

// A leaf issued at T0 for `ttl`, as our issuer makes it (NotBefore backdated 2 minutes).
PublishedLeaf Leaf(Duration ttl, std::string serial = "00") {
  return PublishedLeaf{T0() - pki::kClockSkewBackdate,
                       T0() + std::chrono::duration_cast<TimePoint::duration>(ttl), serial, true};
}

RotationPolicy NoJitter(double ratio = 0.5, Duration min_grace = 10min) {
  return RotationPolicy{ratio, min_grace, 0.0};
}

}  // namespace

TEST_CASE("grace period is max(ratio x lifetime, min grace)", "[rotation]") {
  struct Row {
    Duration lifetime;
    double ratio;
    Duration min_grace;
    Duration want;
  };
  auto row = GENERATE(Row{24h, 0.5, 10min, 12h}, Row{24h, 0.2, 10min, 288min},
                      Row{1h, 0.1, 10min, 10min},     // ratio × L below the minimum
                      Row{2160h, 0.5, 10min, 1080h},  // Istio 0.8 default TTL
                      Row{24h, 0.0, 10min, 10min}, Row{24h, 1.0, 10min, 24h});
  CAPTURE(row.ratio);
  CHECK(std::chrono::duration_cast<std::chrono::seconds>(
            GracePeriod(row.lifetime, NoJitter(row.ratio, row.min_grace))) ==
        std::chrono::duration_cast<std::chrono::seconds>(row.want));
}

TEST_CASE("grace ratio is not truncated to zero (Istio PR #3758)", "[rotation][istio-bug]") {
  // Istio 0.6 converted 0.5 to an integer Duration first, so G fell back to the 10-minute
  // minimum and 19h certificates were rotated only 10 minutes before expiry.
  const Duration g = GracePeriod(19h, NoJitter(0.5));
  CHECK(g == Duration(9h + 30min));
  const PublishedLeaf leaf = Leaf(19h);
  CHECK(DecideRotation(leaf, true, NoJitter(), T0() + 9h + 31min).reason ==
        RotationReason::kGracePeriod);
  CHECK_FALSE(DecideRotation(leaf, true, NoJitter(), T0() + 9h + 29min).refresh());
}

TEST_CASE("grace period does not overflow for long lifetimes (Istio #18357)",
          "[rotation][istio-bug]") {
  // Istio computed Duration(ratio*1000) * L / 1000 in int64 nanoseconds; 8760h × 500 wrapped
  // negative and the grace fell back to 10 minutes.
  auto lifetime = GENERATE(8760h, 87600h, 876000h);
  const Duration g = GracePeriod(lifetime, NoJitter(0.5));
  CHECK(g > Duration::zero());
  CHECK(std::chrono::duration_cast<std::chrono::hours>(g) == lifetime / 2);
  const PublishedLeaf leaf = Leaf(lifetime);
  CHECK_FALSE(DecideRotation(leaf, true, NoJitter(), T0() + lifetime / 2 - 1h).refresh());
  CHECK(DecideRotation(leaf, true, NoJitter(), T0() + lifetime / 2 + 1h).refresh());
}

TEST_CASE("a minimum grace longer than the lifetime does not make a new cert due at once",
          "[rotation]") {
  // 5-minute certificates with the default 10-minute minimum grace: Istio's rule would make
  // every certificate due at issuance and reissue it on every pass.
  const PublishedLeaf leaf = Leaf(5min);
  CHECK_FALSE(DecideRotation(leaf, true, NoJitter(0.5, 10min), T0()).refresh());
  CHECK_FALSE(DecideRotation(leaf, true, NoJitter(0.5, 10min), T0() + 2min).refresh());
  CHECK(DecideRotation(leaf, true, NoJitter(0.5, 10min), T0() + 3min).refresh());
}

TEST_CASE("rotation reasons, one row per published state", "[rotation]") {
  struct Row {
    const char* name;
    std::optional<PublishedLeaf> leaf;
    bool roots_match;
    Duration at;  // after T0
    RotationReason want;
  };
  PublishedLeaf other = Leaf(24h);
  other.identity_matches = false;
  auto row = GENERATE_COPY(
      Row{"fresh", Leaf(24h), true, 1h, RotationReason::kNone},
      Row{"in grace", Leaf(24h), true, 13h, RotationReason::kGracePeriod},
      Row{"clock jumped past expiry", Leaf(24h), true, 240h, RotationReason::kExpired},
      Row{"clock jumped back", Leaf(24h), true, -1h, RotationReason::kNotYetValid},
      Row{"root changed", Leaf(24h), false, 1h, RotationReason::kRootMismatch},
      Row{"unparsable", std::nullopt, true, 1h, RotationReason::kUnparsable},
      Row{"another identity", other, true, 1h, RotationReason::kWrongIdentity});
  CAPTURE(row.name);
  CHECK(DecideRotation(row.leaf, row.roots_match, NoJitter(), T0() + row.at).reason == row.want);
}

TEST_CASE("jitter spreads refresh times, stays stable per certificate, and only shortens grace",
          "[rotation]") {
  RotationPolicy p{0.5, 10min, 0.1};
  std::set<TimePoint> times;
  for (int i = 0; i < 200; ++i) {
    const PublishedLeaf leaf = Leaf(24h, "serial" + std::to_string(i));
    const TimePoint t = RefreshTime(leaf, p);
    CHECK(t == RefreshTime(leaf, p));  // same input, same answer
    CHECK(t >= T0() + 12h);            // never earlier than the un-jittered grace
    CHECK(t <= T0() + 12h + 72min);    // at most 10% of the 12h grace later
    times.insert(t);
  }
  CHECK(times.size() > 150);  // a fleet does not renew in one burst
  for (int i = 0; i < 1000; ++i) {
    const double f = JitterFraction(std::to_string(i));
    REQUIRE(f >= 0.0);
    REQUIRE(f < 1.0);
  }
}
