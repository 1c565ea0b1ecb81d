#include "k8s/rate.h"

#include <catch2/catch.hpp>

namespace istioca::k8s {
namespace {

using namespace std::chrono_literals;

TEST_CASE("token bucket: a burst goes at once, then one request per 1/qps", "[k8s][rate]") {
  TokenBucket bucket(10, 3);
  TimePoint t0{};
  t0 += 1h;
  CHECK(bucket.ReserveAt(t0) == 0s);
  CHECK(bucket.ReserveAt(t0) == 0s);
  CHECK(bucket.ReserveAt(t0) == 0s);
  // The fourth and fifth at the same instant wait 100 ms and 200 ms.
  CHECK(bucket.ReserveAt(t0) == std::chrono::duration_cast<SteadyDuration>(100ms));
  CHECK(bucket.ReserveAt(t0) == std::chrono::duration_cast<SteadyDuration>(200ms));
  // One second later the debt is paid and 8 tokens were earned, capped at the burst of 3.
  TimePoint t1 = t0 + 1s;
  CHECK(bucket.ReserveAt(t1) == 0s);
  CHECK(bucket.ReserveAt(t1) == 0s);
  CHECK(bucket.ReserveAt(t1) == 0s);
  CHECK(bucket.ReserveAt(t1) > 0s);
}

TEST_CASE("token bucket: N requests at qps Q take about N/Q", "[k8s][rate]") {
  TokenBucket bucket(50, 1);
  TimePoint t{};
  SteadyDuration last{};
  for (int i = 0; i < 101; ++i) last = bucket.ReserveAt(t);
  CHECK(std::chrono::duration<double>(last).count() == Approx(2.0).epsilon(0.01));
}

TEST_CASE("token bucket: the injected clock decides when tokens are earned", "[k8s][rate]") {
  FakeClock clock(TimePoint{} + 1000h);
  TokenBucket bucket(10, 2, clock);
  CHECK(bucket.Reserve() == 0s);
  CHECK(bucket.Reserve() == 0s);
  CHECK(bucket.Reserve() == std::chrono::duration_cast<SteadyDuration>(100ms));
  // Only the fake clock moving pays the debt and earns new tokens.
  clock.Advance(300ms);
  CHECK(bucket.Reserve() == 0s);
  CHECK(bucket.Reserve() == 0s);
  CHECK(bucket.Reserve() > 0s);
  // A wall clock stepping back earns nothing.
  clock.Advance(-1h);
  CHECK(bucket.Reserve() > 0s);
}

TEST_CASE("token bucket: qps 0 disables limiting", "[k8s][rate]") {
  TokenBucket bucket(0, 0);
  CHECK_FALSE(bucket.enabled());
  for (int i = 0; i < 1000; ++i) REQUIRE(bucket.ReserveAt(TimePoint{}) == 0s);
}

TEST_CASE("API retries back off with jitter in the upper half", "[k8s][rate]") {
  // The arithmetic is base/backoff's (tests/base/backoff_test.cc); this pins k8s's jitter.
  Backoff b(100ms, 1s, kBackoffJitter, /*seed=*/42);
  const std::vector<SteadyDuration> caps{100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s};
  for (auto cap : caps) {
    SteadyDuration d = b.Next();
    CHECK(d >= cap / 2);
    CHECK(d <= cap);
  }
  b.Reset();
  CHECK(b.Next() <= SteadyDuration(100ms));
}

}  // namespace
}  // namespace istioca::k8s
