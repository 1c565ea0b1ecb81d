// Authority: swapping the bundle while signing goes on.
#include "ca/core/authority.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "pki/csr.h"
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

TEST_CASE("swap after swap, every SetBundle returns and signs go on under the newest bundle",
          "[authority]") {
  // The two slots are reused in turn: a slot refilled while late signs still count themselves
  // into it must neither hand them the wrong bundle nor hold the swap.
  FakeClock clock{T0()};
  Authority authority(IssuancePolicy{}, clock);
  TestCa cas[3];
  authority.SetBundle(BundleOf(cas[0]));
  std::atomic<bool> stop{false};
  std::atomic<int> signed_count{0};
  std::atomic<int> unverified{0};
  std::vector<std::thread> signers;
  for (int i = 0; i < 3; ++i) {
    signers.emplace_back([&] {
      const pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
      while (!stop) {
        auto issued =
            authority.Sign(key.get(), {"spiffe://cluster.local/ns/a/sa/b"}, {}, Duration::zero());
        if (!issued.ok()) continue;
        ++signed_count;
        // Whatever bundle it came from, the leaf chains to the root handed out with it.
        if (!pki::VerifyChain(issued->leaf, {}, issued->roots, T0()).ok()) ++unverified;
      }
    });
  }
  for (int swap = 1; swap <= 6; ++swap) {
    const int before = signed_count;
    REQUIRE(testing::WaitFor([&] { return signed_count > before + 5; }));
    const auto t0 = std::chrono::steady_clock::now();
    authority.SetBundle(BundleOf(cas[swap % 3]));
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    CHECK(authority.Bundle()->roots[0] == cas[swap % 3].root);
  }
  stop = true;
  for (auto& t : signers) t.join();
  CHECK(unverified == 0);
  const pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  auto issued = Must(authority.Sign(key.get(), {"spiffe://cluster.local/ns/a/sa/b"}, {}, 1h));
  CHECK(pki::VerifyChain(issued.leaf, {}, {cas[0].root}, T0()).ok());  // 6 % 3
}

TEST_CASE("a CSR is signed for its own key, under the policy's TTL rules", "[authority]") {
  FakeClock clock{T0()};
  Authority authority(IssuancePolicy{}, clock);
  const pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  const pki::Csr csr = Must(pki::Csr::FromDer(
      Must(pki::Csr::Build(key, {{"spiffe://cluster.local/ns/a/sa/b"}, {}, ""})).Der()));
  auto not_ready = authority.Sign(csr, {"spiffe://cluster.local/ns/a/sa/b"}, {}, 1h);
  REQUIRE_FALSE(not_ready.ok());
  CHECK(not_ready.status().code() == Code::kUnavailable);
  TestCa ca;
  authority.SetBundle(BundleOf(ca));
  auto issued = Must(authority.Sign(csr, {"spiffe://cluster.local/ns/a/sa/b"}, {}, 1h));
  CHECK(pki::SamePublicKey(Must(pki::Certificate::FromDer(issued.leaf.ToDer())).PublicKey(),
                           key.get()));
  CHECK(pki::VerifyChain(issued.leaf, {}, {ca.root}, T0()).ok());
  CHECK(issued.leaf.NotAfter() == T0() + 1h);
  CHECK(authority.LatestIssuedNotAfter() == T0() + 1h);
  auto too_long = authority.Sign(csr, {"spiffe://cluster.local/ns/a/sa/b"}, {}, 24h * 1000);
  REQUIRE_FALSE(too_long.ok());
  CHECK(too_long.status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace istioca::ca
