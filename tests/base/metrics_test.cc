#include "base/metrics.h"

#include <catch2/catch.hpp>
#include <memory>

using namespace istioca;

TEST_CASE("metrics render in Prometheus text format with labels and histograms", "[metrics]") {
  MetricsRegistry r;
  r.GetCounter("citadel_server_csr_count", "The number of CSRs received.").Inc();
  r.GetCounter("citadel_server_csr_count", "ignored").Inc(2);
  r.GetCounter("citadel_server_csr_sign_err_count", "Sign errors.", {{"error", "ca \"x\""}}).Inc();
  r.GetGauge("g", "A gauge.").Set(1.5);
  GaugeFunctionHandle expiry = r.SetGaugeFunction("citadel_server_root_cert_expiry_timestamp",
                                                  "Root expiry.", {}, [] { return 1e9; });
  Histogram& h = r.GetHistogram("latency_seconds", "Latency.", {0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);
  const std::string text = r.Render();
  CHECK_THAT(text, Catch::Contains(
                       "# TYPE citadel_server_csr_count counter\ncitadel_server_csr_count 3\n"));
  CHECK_THAT(text,
             Catch::Contains("# HELP citadel_server_csr_count The number of CSRs received.\n"));
  CHECK_THAT(text,
             Catch::Contains("citadel_server_csr_sign_err_count{error=\"ca \\\"x\\\"\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("g 1.5\n"));
  CHECK_THAT(text, Catch::Contains("citadel_server_root_cert_expiry_timestamp 1000000000\n"));
  CHECK_THAT(text, Catch::Contains("latency_seconds_bucket{le=\"0.1\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("latency_seconds_bucket{le=\"1\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("latency_seconds_bucket{le=\"+Inf\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("latency_seconds_count 3\n"));
  CHECK_THAT(text, Catch::Contains("latency_seconds_sum 5.55\n"));
}

TEST_CASE("a metric registered with two types is a programming error", "[metrics]") {
  MetricsRegistry r;
  r.GetCounter("x", "x");
  CHECK_THROWS(r.GetGauge("x", "x"));
}

namespace {
// Registers a gauge function reading its own state, like the daemon's Authority gauges.
struct Owner {
  explicit Owner(MetricsRegistry& r, int* calls)
      : calls(calls), handle(r.SetGaugeFunction("owner_value", "Owner.", {}, [this] {
          ++*this->calls;
          return value;
        })) {}
  int* calls;
  double value = 7;
  GaugeFunctionHandle handle;
};
}  // namespace

TEST_CASE("a gauge function is removed when its owner is destroyed", "[metrics]") {
  MetricsRegistry r;
  int calls = 0;
  {
    auto owner = std::make_unique<Owner>(r, &calls);
    CHECK_THAT(r.Render(), Catch::Contains("owner_value 7\n"));
    CHECK(calls == 1);
  }
  // The owner is gone: scraping must not call into it (a use-after-free before handles).
  CHECK_THAT(r.Render(), !Catch::Contains("owner_value 7"));
  CHECK(calls == 1);
}

TEST_CASE("a replaced gauge function is not removed by the old handle", "[metrics]") {
  MetricsRegistry r;
  GaugeFunctionHandle first = r.SetGaugeFunction("v", "V.", {}, [] { return 1.0; });
  GaugeFunctionHandle second = r.SetGaugeFunction("v", "V.", {}, [] { return 2.0; });
  first.Reset();
  CHECK_THAT(r.Render(), Catch::Contains("v 2\n"));
  GaugeFunctionHandle moved = std::move(second);
  second.Reset();  // moved-from: removes nothing
  CHECK_THAT(r.Render(), Catch::Contains("v 2\n"));
  moved.Reset();
  CHECK_THAT(r.Render(), !Catch::Contains("v 2\n"));
}
