// The daemon's Kubernetes backends give TokenReviews a client-side rate limit of their own
// (--token-review-qps/-burst), apart from --kube-api-qps: a pod-start stampede of new tokens
// must not queue behind the controller's limit (it waited ~48 s for 1,000 tokens at 20/s).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "ca/daemon/daemon.h"
#include "fixture.h"

namespace istioca::k8s {
namespace {

using namespace std::chrono_literals;
using testing::FakeCluster;

TEST_CASE("TokenReviews are limited by --token-review-qps, not by --kube-api-qps",
          "[kube][grpc][token-review]") {
  FakeCluster f;
  constexpr int kTokens = 12;
  for (int i = 0; i < kTokens; ++i) {
    f.server->AddReviewableToken("jwt-" + std::to_string(i),
                                 {"system:serviceaccount:ns1:sa-" + std::to_string(i),
                                  "uid-" + std::to_string(i),
                                  {"system:serviceaccounts"},
                                  {"istio-ca"}});
  }
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("token_review_limit_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string kubeconfig = (dir / "kubeconfig").string();
  std::ofstream(kubeconfig) << fakeapi::KubeconfigYaml(f.server->url(), testing::Tls().ca_pem,
                                                       testing::kAdminToken);

  ca::DaemonOptions o;
  o.kube_config = kubeconfig;
  // The controller's client: one request, then one every 100 s. Twelve reviews through it would
  // take over 18 minutes.
  o.kube_api_qps = 0.01;
  o.kube_api_burst = 1;
  const bool own_limit = GENERATE(true, false);
  o.token_review_qps = own_limit ? 500 : 0.5;
  o.token_review_burst = own_limit ? 1000 : 1;
  MetricsRegistry metrics;
  auto backends = ca::DefaultDaemonParts().kube_backends(o, SystemClock::Get(), metrics);
  REQUIRE(backends.ok());
  REQUIRE(backends->token_reviewer != nullptr);

  const auto t0 = std::chrono::steady_clock::now();
  const int reviews = own_limit ? kTokens : 3;
  for (int i = 0; i < reviews; ++i) {
    auto id = backends->token_reviewer->Review("jwt-" + std::to_string(i));
    INFO(id.status().ToString());
    REQUIRE(id.ok());
    CHECK(id->sa == "sa-" + std::to_string(i));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (own_limit) {
    CHECK(seconds < 5);  // not held by --kube-api-qps (that would be > 1,000 s)
  } else {
    // The limit applies: burst 1, then one every 2 s.
    CHECK(seconds >= 3.5);
    CHECK(seconds < 30);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace istioca::k8s
