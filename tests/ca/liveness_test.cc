// The liveness file: what one check does to it, and how the daemon composes its check from the
// in-process self-issuance and each component's own check (the gRPC server's goes over TLS to
// its port; see serve_test.cc "the liveness self-check goes through the gRPC server").
#include "ca/daemon/liveness.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <thread>

#include "ca/daemon/daemon.h"
#include "tests/ca/temp_dir.h"
#include "tests/testing/wait.h"

using namespace istioca;
using namespace std::chrono_literals;
using istioca::testing::ReadAll;
using istioca::testing::TempDir;
using istioca::testing::WaitFor;
namespace fs = std::filesystem;

namespace {

// A component whose liveness the test decides.
class SwitchComponent final : public ca::DaemonComponent {
 public:
  SwitchComponent(std::atomic<bool>& healthy, std::atomic<int>& calls)
      : healthy_(healthy), calls_(calls) {}
  std::string Name() const override { return "switch"; }
  Status Start() override { return OkStatus(); }
  void Stop() override {}
  Status LivenessCheck(Duration timeout) override {
    calls_.fetch_add(1);
    if (timeout <= Duration::zero()) return Internal("no timeout given");
    return healthy_ ? OkStatus() : Unavailable("switched off");
  }

 private:
  std::atomic<bool>& healthy_;
  std::atomic<int>& calls_;
};

}  // namespace

TEST_CASE("liveness: a failed check removes the file and counts; a good one brings it back",
          "[liveness]") {
  TempDir d;
  const std::string probe = d / "alive";
  Status next = OkStatus();
  MetricsRegistry metrics;
  ca::LivenessProber prober([&] { return next; }, probe, 2s, 1s, metrics);
  Counter& failures = metrics.GetCounter("istio_ca_liveness_check_failures_total", "");

  CHECK(prober.RunOnce());
  CHECK(ReadAll(probe) == "ok\n");
  next = Unavailable("gRPC self-check failed: Unavailable: connection refused");
  CHECK_FALSE(prober.RunOnce());
  CHECK_FALSE(fs::exists(probe));
  CHECK(failures.Value() == 1);
  CHECK_FALSE(prober.RunOnce());
  CHECK(failures.Value() == 2);
  next = OkStatus();
  CHECK(prober.RunOnce());
  CHECK(fs::exists(probe));
}

TEST_CASE("liveness: the daemon's check includes every component's own check", "[liveness]") {
  TempDir d;
  std::atomic<bool> healthy{true};
  std::atomic<int> calls{0};
  ca::DaemonOptions o;
  o.local_dir = d.path();
  o.grpc_port = 0;
  o.monitoring_port = 0;
  o.liveness_probe_path = d / "alive";
  o.liveness_probe_interval = 1s;
  o.probe_check_interval = 50ms;
  ca::DaemonParts parts = ca::DefaultDaemonParts();
  parts.components.push_back(
      [&](ca::DaemonContext&) -> Result<std::unique_ptr<ca::DaemonComponent>> {
        return std::unique_ptr<ca::DaemonComponent>(
            std::make_unique<SwitchComponent>(healthy, calls));
      });
  MetricsRegistry metrics;
  ca::Daemon daemon(o, parts, SystemClock::Get(), metrics);
  REQUIRE(daemon.Start().ok());

  CHECK(WaitFor([&] { return fs::exists(o.liveness_probe_path) && calls.load() > 2; }));
  // Healthy so far: no check failed (a self-issued certificate with a TTL of one 50 ms interval
  // would have been expired on arrival: whole-second certificate times).
  CHECK(metrics.GetCounter("istio_ca_liveness_check_failures_total", "").Value() == 0);
  healthy = false;
  CHECK(WaitFor([&] { return !fs::exists(o.liveness_probe_path); }));
  CHECK(metrics.GetCounter("istio_ca_liveness_check_failures_total", "").Value() >= 1);
  healthy = true;
  CHECK(WaitFor([&] { return fs::exists(o.liveness_probe_path); }));

  daemon.Shutdown();
  daemon.Wait();
  CHECK_FALSE(fs::exists(o.liveness_probe_path));
}
