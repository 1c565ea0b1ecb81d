// base/periodic.h: the one stop-aware periodic thread.
#include "base/periodic.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>

#include "tests/testing/wait.h"

using namespace istioca;
using namespace std::chrono_literals;
using istioca::testing::WaitFor;

TEST_CASE("periodic: the work runs repeatedly until Stop, never after it", "[periodic]") {
  std::atomic<int> runs{0};
  PeriodicThread t;
  t.Every(1ms, [&] { runs++; });
  CHECK(t.running());
  REQUIRE(WaitFor([&] { return runs.load() >= 3; }));
  t.Stop();
  CHECK_FALSE(t.running());
  const int after_stop = runs.load();
  t.Stop();  // idempotent
  // The thread is joined: nothing can run any more, so the count is final at once.
  CHECK(runs.load() == after_stop);
}

TEST_CASE("periodic: Stop wakes a thread waiting out a long interval", "[periodic]") {
  std::atomic<int> runs{0};
  PeriodicThread t;
  t.Every(std::chrono::hours(1), [&] { runs++; });
  const auto start = std::chrono::steady_clock::now();
  t.Stop();
  // Bound generously; without the wake-up Stop would take the full hour.
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK(runs.load() == 0);
}

TEST_CASE("periodic: the tick chooses its next wait, and Start while running is a no-op",
          "[periodic]") {
  std::atomic<int> fast{0}, other{0};
  PeriodicThread t;
  // First call at once, then an hour: exactly one call however long we look.
  t.Start(Duration::zero(), [&]() -> Duration {
    fast++;
    return std::chrono::hours(1);
  });
  t.Every(1ms, [&] { other++; });  // ignored: already running
  REQUIRE(WaitFor([&] { return fast.load() == 1; }));
  t.Stop();
  CHECK(fast.load() == 1);
  CHECK(other.load() == 0);
  // After a Stop the same object can run again.
  t.Every(1ms, [&] { other++; });
  REQUIRE(WaitFor([&] { return other.load() >= 1; }));
}

TEST_CASE("periodic: the destructor stops and joins", "[periodic]") {
  std::atomic<int> runs{0};
  {
    PeriodicThread t;
    t.Every(1ms, [&] { runs++; });
    REQUIRE(WaitFor([&] { return runs.load() >= 1; }));
  }
  // Destroying a joinable std::thread would have terminated the process; the count is final.
  const int final_count = runs.load();
  CHECK(final_count >= 1);
}
