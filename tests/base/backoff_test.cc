#include "base/backoff.h"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

namespace istioca {
namespace {

TEST_CASE("backoff doubles from the initial delay and is capped", "[backoff]") {
  CHECK(BackoffDelay(0, 1s, 5min) == 0s);
  CHECK(BackoffDelay(1, 1s, 5min) == 1s);
  CHECK(BackoffDelay(2, 1s, 5min) == 2s);
  CHECK(BackoffDelay(5, 1s, 5min) == 16s);
  CHECK(BackoffDelay(9, 1s, 5min) == 256s);
  CHECK(BackoffDelay(10, 1s, 5min) == 5min);
  CHECK(BackoffDelay(1000000, 1s, 5min) == 5min);
  CHECK(BackoffDelay(3, 200ms, 30s) == 800ms);
}

TEST_CASE("backoff jitter shortens by at most its fraction and is the caller's draw", "[backoff]") {
  CHECK(BackoffDelay(1, 10s, 5min, 0.2, 0.0) == 10s);
  CHECK(BackoffDelay(1, 10s, 5min, 0.2, 1.0) == 8s);
  CHECK(BackoffDelay(1, 10s, 5min, 0.5, 0.5) == 7500ms);
  CHECK(BackoffDelay(100, 1s, 10s, 0.5, 1.0) == 5s);  // jitter applies below the cap
  CHECK(BackoffDelay(1, 10s, 5min, 7.0, 1.0) == 0s);  // fraction clamped to 1
}

TEST_CASE("a Backoff counts failures and draws within its jitter band", "[backoff]") {
  Backoff b(100ms, 1s, 0.5, /*seed=*/42);
  for (auto cap : {100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms}) {
    const auto d = b.Next();
    CHECK(d >= cap / 2);
    CHECK(d <= cap);
  }
  CHECK(b.failures() == 6);
  b.Reset();
  CHECK(b.Next() <= 100ms);
  Backoff exact(1s, 1min, 0.0);
  CHECK(exact.Next() == 1s);
  CHECK(exact.Next() == 2s);
}

TEST_CASE("backoff jitter spreads replicas apart", "[backoff]") {
  Backoff a(1s, 10s, 0.5, 1), b(1s, 10s, 0.5, 2);
  a.Next();
  b.Next();
  CHECK(a.Next() != b.Next());
}

}  // namespace
}  // namespace istioca
