// The daemon's assembly, in process: what /readyz and /metrics see during start-up and after
// the daemon is gone.
#include "ca/daemon/daemon.h"

#include <httplib.h>

#include <catch2/catch.hpp>
#include <memory>

#include "base/log.h"
#include "tests/ca/temp_dir.h"
#include "tests/testing/process.h"
#include "tests/testing/wait.h"

using namespace istioca;
using istioca::testing::FreePort;
using istioca::testing::TempDir;
using istioca::testing::WaitFor;

namespace {

const bool kQuiet = ConfigureLogging("error", false).ok();

// A component that, while it starts, asks the monitoring port for /readyz, as a Kubernetes
// probe may at any moment.
class ProbingComponent final : public ca::DaemonComponent {
 public:
  ProbingComponent(std::string name, int port, int& answered)
      : name_(std::move(name)), port_(port), answered_(answered) {}
  std::string Name() const override { return name_; }
  Status Start() override {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(1);
    if (c.Get("/readyz")) ++answered_;
    return OkStatus();
  }
  void Stop() override {}

 private:
  std::string name_;
  int port_;
  int& answered_;
};

ca::DaemonOptions LocalOptions(const TempDir& d, int monitoring_port) {
  ca::DaemonOptions o;
  o.local_dir = d.path();
  o.grpc_port = 0;
  o.monitoring_port = monitoring_port;
  return o;
}

}  // namespace

TEST_CASE("daemon: /readyz is served only once the component list is complete",
          "[daemon][readyz]") {
  (void)kQuiet;
  TempDir d;
  const int port = FreePort();
  int answered = 0;
  ca::DaemonParts parts = ca::DefaultDaemonParts();
  for (const char* name : {"first", "second", "third"}) {
    parts.components.push_back(
        [&, name](ca::DaemonContext&) -> Result<std::unique_ptr<ca::DaemonComponent>> {
          return std::unique_ptr<ca::DaemonComponent>(
              std::make_unique<ProbingComponent>(name, port, answered));
        });
  }
  MetricsRegistry metrics;
  ca::Daemon daemon(LocalOptions(d, port), parts, SystemClock::Get(), metrics);
  REQUIRE(daemon.Start().ok());
  // Nobody read the list while it grew (a data race when monitoring started first).
  CHECK(answered == 0);
  httplib::Client c("127.0.0.1", daemon.monitoring_port());
  std::string body;
  REQUIRE(WaitFor([&] {
    auto r = c.Get("/readyz");
    if (!r || r->status != 200) return false;
    body = r->body;
    return true;
  }));
  CHECK_THAT(body, Catch::Contains("first=ready second=ready third=ready"));
  daemon.Shutdown();
  daemon.Wait();
}

TEST_CASE("daemon: its scrape-time gauges go away with it", "[daemon][metrics]") {
  TempDir d;
  MetricsRegistry metrics;
  {
    ca::Daemon daemon(LocalOptions(d, 0), ca::DefaultDaemonParts(), SystemClock::Get(), metrics);
    REQUIRE(daemon.Start().ok());
    const std::string text = metrics.Render();
    CHECK_THAT(text, Catch::Contains("\nistio_ca_workload_secrets_managed "));
    CHECK_THAT(text, Catch::Contains("\ncitadel_server_root_cert_expiry_timestamp "));
  }
  // The authority and the controller are destroyed: a scrape must not call into them (a
  // use-after-free, or a crash, when the functions stayed registered).
  const std::string text = metrics.Render();
  CHECK_THAT(text, !Catch::Contains("\nistio_ca_workload_secrets_managed "));
  CHECK_THAT(text, !Catch::Contains("\ncitadel_server_root_cert_expiry_timestamp "));
}
