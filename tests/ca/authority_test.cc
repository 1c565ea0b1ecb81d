// Authority: swapping the bundle while signing goes on.
#include "ca/core/authority.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "pki/verify.h"
#include "tests/testing/test_ca.h"
#include "tests/testing/wait.h"

namespace istioca::ca {
namespace {

using namespace std::chrono_literals;
using testing::Must;
using testing::T0;
using testing::TestCa;

std::shared_ptr<const CaBundle> BundleOf(const TestCa& ca) {
  return std::make_shared<CaBundle>(CaBundle{ca.signer, {}, {ca.root}});
}

TEST_CASE("SetBundle waits for the signs on the old bundle and never for the new ones",
          "[authority]") {
  FakeClock clock{T0()};
  Authority authority(IssuancePolicy{}, clock);
  TestCa one, two;
  authority.SetBundle(BundleOf(one));
  // Four threads sign back to back: at every instant some sign is in flight. A swap that waited
  // for "no sign in flight" (a reader-preferring rwlock) would never return.
  std::atomic<bool> stop{false};
  std::atomic<int> signed_count{0};
  std::vector<std::thread> signers;
  for (int i = 0; i < 4; ++i) {
    signers.emplace_back([&] {
      const pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
      while (!stop) {
        auto issued =
            authority.Sign(key.get(), {"spiffe://cluster.local/ns/a/sa/b"}, {}, Duration::zero());
        if (issued.ok()) ++signed_count;
      }
    });
  }
  REQUIRE(testing::WaitFor([&] { return signed_count > 20; }));
  const auto t0 = std::chrono::steady_clock::now();
  authority.SetBundle(BundleOf(two));
  const auto took = std::chrono::steady_clock::now() - t0;
  // Everything signed on the old bundle is recorded by the time SetBundle returns.
  const std::optional<TimePoint> latest = authority.LatestIssuedNotAfter();
  const int after_swap = signed_count;
  REQUIRE(testing::WaitFor([&] { return signed_count > after_swap + 20; }));
  stop = true;
  for (auto& t : signers) t.join();
  CHECK(took < 2s);
  REQUIRE(latest.has_value());
  CHECK(*latest == T0() + std::chrono::hours(24));

  // The next sign is under the new bundle only.
  const pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  auto issued = Must(authority.Sign(key.get(), {"spiffe://cluster.local/ns/a/sa/b"}, {}, 1h));
  CHECK(pki::VerifyChain(issued.leaf, {}, {two.root}, T0()).ok());
  CHECK_FALSE(pki::VerifyChain(issued.leaf, {}, {one.root}, T0()).ok());
}

}  // namespace
}  // namespace istioca::ca
