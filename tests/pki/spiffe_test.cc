#include "pki/spiffe.h"

#include <catch2/catch.hpp>

using namespace istioca;
using namespace istioca::pki;

TEST_CASE("valid SPIFFE IDs parse into trust domain and path", "[spiffe]") {
  auto id = ParseSpiffeId("spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
  REQUIRE(id.ok());
  CHECK(id->trust_domain == "cluster.local");
  CHECK(id->path == "/ns/default/sa/bookinfo-productpage");
  CHECK(id->ToString() == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
  auto sa = IstioServiceAccount(*id);
  REQUIRE(sa.has_value());
  CHECK(sa->ns == "default");
  CHECK(sa->sa == "bookinfo-productpage");
  auto td_only = ParseSpiffeId("spiffe://example.org");
  REQUIRE(td_only.ok());
  CHECK(td_only->path.empty());
  CHECK_FALSE(IstioServiceAccount(*td_only).has_value());
  CHECK(ParseSpiffeId("spiffe://a_b-c.d/Upper/x.y").ok());
}

TEST_CASE("SPIFFE IDs that break the spec are refused", "[spiffe]") {
  struct Row {
    std::string id;
    std::string why;
  };
  auto row = GENERATE_COPY(
      Row{"", "empty"}, Row{"http://cluster.local/ns/a", "spiffe://"},
      Row{"SPIFFE://cluster.local/ns/a", "spiffe://"}, Row{"spiffe://", "trust domain is empty"},
      Row{"spiffe:///ns/a", "trust domain is empty"}, Row{"spiffe://Cluster.local/x", "lowercase"},
      Row{"spiffe://cluster.local:8080/x", "port"},
      Row{"spiffe://user@cluster.local/x", "userinfo"},
      Row{"spiffe://cluster.local/ns/a?x=1", "query"},
      Row{"spiffe://cluster.local/ns/a#f", "fragment"}, Row{"spiffe://cluster.local/", "end with"},
      Row{"spiffe://cluster.local/ns//a", "empty segment"},
      Row{"spiffe://cluster.local/ns/a/", "empty segment"},
      Row{"spiffe://cluster.local/./a", "'.'"}, Row{"spiffe://cluster.local/../a", "'.'"},
      Row{"spiffe://cluster.local/ns/a b", "invalid character"},
      Row{"spiffe://cluster.local/ns/%41", "invalid character"},
      Row{"spiffe://clu$ter/x", "invalid character"},
      Row{"spiffe://" + std::string(256, 'a'), "255"},
      Row{"spiffe://td/" + std::string(2100, 'a'), "2048"});
  auto r = ParseSpiffeId(row.id);
  INFO(row.id);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains(row.why));
}

TEST_CASE("workload IDs are built only from valid names", "[spiffe]") {
  auto id = WorkloadId("cluster.local", "ns1", "sa-a");
  REQUIRE(id.ok());
  CHECK(id->ToString() == "spiffe://cluster.local/ns/ns1/sa/sa-a");
  CHECK_FALSE(WorkloadId("cluster.local", "ns/1", "a").ok());
  CHECK_FALSE(WorkloadId("cluster.local", "ns", "").ok());
  CHECK_FALSE(WorkloadId("Cluster", "ns", "a").ok());
}
