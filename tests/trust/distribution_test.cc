// tests/trust/distribution_test.cc — the istio-ca-root-cert ConfigMap has istiod's exact shape.
#include "ca/trust/distribution.h"

#include <catch2/catch.hpp>

namespace istioca::ca::trust {
namespace {

TEST_CASE("the root ConfigMap is named, labelled and keyed as istiod publishes it",
          "[trust][distribution]") {
  RootCertConfigMap cm = BuildRootCertConfigMap("ns1", "PEM-A\nPEM-B\n");
  CHECK(cm.name == "istio-ca-root-cert");
  CHECK(cm.namespace_name == "ns1");
  CHECK(cm.labels == std::map<std::string, std::string>{{"istio.io/config", "true"}});
  CHECK(cm.data == std::map<std::string, std::string>{{"root-cert.pem", "PEM-A\nPEM-B\n"}});
}

TEST_CASE("the bundle text concatenates the roots, each ending in a newline",
          "[trust][distribution]") {
  CHECK(BundlePem({"A\n", "B"}) == "A\nB\n");
  CHECK(BundlePem({}).empty());
}

}  // namespace
}  // namespace istioca::ca::trust
