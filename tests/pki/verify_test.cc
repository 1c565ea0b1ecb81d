#include "pki/verify.h"

#include <catch2/catch.hpp>

#include "pki/issue.h"
#include "tests/testing/test_ca.h"

using namespace istioca;
using namespace istioca::pki;
using namespace istioca::testing;

TEST_CASE("a chain verifies at a chosen time and not outside the leaf's validity", "[verify]") {
  TestCa ca;
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto leaf = ca.Leaf("spiffe://cluster.local/ns/a/sa/b", key, 24h);
  auto path = VerifyChain(leaf, {}, {ca.root}, T0() + 19h);
  REQUIRE(path.ok());
  CHECK(path->size() == 2);
  auto expired = VerifyChain(leaf, {}, {ca.root}, T0() + 25h);
  REQUIRE_FALSE(expired.ok());
  CHECK_THAT(expired.status().message(), Catch::Contains("expired") && Catch::Contains("depth 0"));
  auto early = VerifyChain(leaf, {}, {ca.root}, T0() - 1h);
  REQUIRE_FALSE(early.ok());
  CHECK_THAT(early.status().message(), Catch::Contains("not yet valid"));
  // NotBefore is backdated 2 minutes for clock skew.
  CHECK(VerifyChain(leaf, {}, {ca.root}, T0() - 1min).ok());
}

TEST_CASE("any of several roots is trusted, and an intermediate completes the chain", "[verify]") {
  TestCa old_ca, new_ca;
  auto inter_key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto inter =
      Must(IssueIntermediate(new_ca.signer, inter_key.get(), {"intermediate", 24h * 30}, T0()));
  Signer inter_signer{inter, inter_key};
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto leaf = Must(IssueLeaf(inter_signer, key.get(), {{"spiffe://td/ns/a/sa/b"}, {}, 1h}, T0()));
  CHECK(VerifyChain(leaf, {inter}, {old_ca.root, new_ca.root}, T0()).ok());
  auto missing = VerifyChain(leaf, {}, {old_ca.root, new_ca.root}, T0());
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("unable to get local issuer"));
  auto wrong_root = VerifyChain(leaf, {inter}, {old_ca.root}, T0());
  CHECK_FALSE(wrong_root.ok());
  CHECK_FALSE(VerifyChain(leaf, {inter}, {}, T0()).ok());
}

TEST_CASE("X509-SVID rules flag CA leaves, missing or extra URIs", "[verify][svid]") {
  TestCa ca;
  CertInfo leaf =
      Describe(ca.Leaf("spiffe://td/ns/a/sa/b", Must(PrivateKey::Generate(KeyType::kEcP256))));
  REQUIRE(LeafSvidViolations(leaf).empty());
  CertInfo two = leaf;
  two.uri_sans.push_back("spiffe://td/ns/a/sa/c");
  CHECK_THAT(LeafSvidViolations(two)[0], Catch::Contains("exactly one URI SAN"));
  CertInfo ca_leaf = leaf;
  ca_leaf.is_ca = true;
  CHECK_THAT(LeafSvidViolations(ca_leaf)[0], Catch::Contains("must not be a CA"));
  CertInfo bad_uri = leaf;
  bad_uri.uri_sans = {"spiffe://TD/x"};
  CHECK_THAT(LeafSvidViolations(bad_uri)[0], Catch::Contains("not a valid SPIFFE ID"));
  CertInfo no_path = leaf;
  no_path.uri_sans = {"spiffe://td"};
  CHECK_THAT(LeafSvidViolations(no_path)[0], Catch::Contains("must have a path"));
  CertInfo signer_ku = leaf;
  signer_ku.key_usage.push_back("keyCertSign");
  CHECK_THAT(LeafSvidViolations(signer_ku)[0], Catch::Contains("keyCertSign"));
  CHECK_FALSE(SigningSvidViolations(leaf).empty());
}
