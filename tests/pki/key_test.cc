#include "pki/key.h"

#include <openssl/x509.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "pki/pem.h"
#include "tests/testing/test_ca.h"

using namespace istioca;
using namespace istioca::pki;

using istioca::testing::Must;
using istioca::testing::RunCommand;

TEST_CASE("every supported key type generates, writes PKCS#8 and reads back", "[key]") {
  struct Row {
    KeyType type;
    std::string describe;
  };
  auto row = GENERATE(Row{KeyType::kEcP256, "EC P-256"}, Row{KeyType::kEcP384, "EC P-384"},
                      Row{KeyType::kRsa2048, "RSA 2048"}, Row{KeyType::kRsa3072, "RSA 3072"});
  auto key = PrivateKey::Generate(row.type);
  REQUIRE(key.ok());
  CHECK(key->Describe() == row.describe);
  const std::string pem = Must(key->ToPem()).str();
  CHECK(pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0) == 0);
  auto back = PrivateKey::FromPem(pem);
  REQUIRE(back.ok());
  CHECK(SamePublicKey(back->get(), key->get()));
  CHECK(CheckAcceptableKey(key->get()).ok());
}

TEST_CASE("key type names round-trip and unknown names are refused", "[key]") {
  for (const char* name : {"ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"}) {
    auto t = ParseKeyType(name);
    REQUIRE(t.ok());
    CHECK(std::string(KeyTypeName(*t)) == name);
  }
  auto bad = ParseKeyType("dsa-1024");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("ec-p256"));
}

TEST_CASE("keys written by openssl in PKCS#1, SEC1 and PKCS#8 are read", "[key][interop]") {
  struct Row {
    const char* cmd;
    const char* header;
    const char* describe;
  };
  auto row = GENERATE(
      Row{"openssl genrsa -traditional 2048 2>/dev/null", "RSA PRIVATE KEY", "RSA 2048"},
      Row{"openssl ecparam -name prime256v1 -genkey 2>/dev/null", "EC PRIVATE KEY", "EC P-256"},
      Row{"openssl ecparam -name secp384r1 -genkey -noout 2>/dev/null", "EC PRIVATE KEY",
          "EC P-384"},
      Row{"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null",
          "PRIVATE KEY", "EC P-256"},
      Row{"openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null", "PRIVATE KEY",
          "RSA 2048"});
  const std::string pem = RunCommand(row.cmd);
  CHECK_THAT(pem, Catch::Contains(std::string("BEGIN ") + row.header));
  auto key = PrivateKey::FromPem(pem);
  INFO(row.cmd << ": " << key.status().ToString());
  REQUIRE(key.ok());
  CHECK(key->Describe() == row.describe);
  // What we write, openssl reads as the same key.
  const std::string ours = Must(key->ToPem()).str();
  const std::string path = "/tmp/istioca-key-test-" + std::to_string(getpid()) + ".pem";
  std::ofstream(path) << ours;
  const std::string theirs = RunCommand("openssl pkey -in " + path + " -pubout");
  const std::string mine = RunCommand("echo '" + pem + "' | openssl pkey -pubout");
  std::remove(path.c_str());
  CHECK(theirs == mine);
}

TEST_CASE("unusable keys are refused with a clear message and no key material", "[key]") {
  const std::string ec = Must(Must(PrivateKey::Generate(KeyType::kEcP256)).ToPem()).str();
  struct Row {
    std::string pem;
    std::string why;
  };
  auto row = GENERATE_COPY(
      Row{"", "no PEM data"}, Row{EncodePem("CERTIFICATE", "\x30\x00"), "no private key"},
      Row{EncodePem("PRIVATE KEY", "garbage-garbage"), "not a valid private key"},
      Row{EncodePem("ENCRYPTED PRIVATE KEY", "x"), "encrypted"},
      Row{EncodePem("RSA PRIVATE KEY", "\x30\x03\x02\x01\x00"), "not a valid private key"},
      Row{ec.substr(0, ec.size() - 40), "no END line"});
  auto key = PrivateKey::FromPem(row.pem);
  REQUIRE_FALSE(key.ok());
  CHECK_THAT(key.status().message(), Catch::Contains(row.why));
  CHECK(key.status().ToString().find("MII") == std::string::npos);
}

TEST_CASE("small RSA and unsupported curves are not acceptable keys", "[key]") {
  const std::string rsa1024 = RunCommand("openssl genrsa 1024 2>/dev/null");
  auto weak = PrivateKey::FromPem(rsa1024);
  REQUIRE(weak.ok());
  CHECK_THAT(CheckAcceptableKey(weak->get()).message(), Catch::Contains("too small"));
  auto p521 =
      PrivateKey::FromPem(RunCommand("openssl ecparam -name secp521r1 -genkey -noout 2>/dev/null"));
  REQUIRE(p521.ok());
  CHECK_THAT(CheckAcceptableKey(p521->get()).message(), Catch::Contains("P-521"));
  auto ed = PrivateKey::FromPem(RunCommand("openssl genpkey -algorithm ED25519 2>/dev/null"));
  REQUIRE(ed.ok());
  CHECK_THAT(CheckAcceptableKey(ed->get()).message(), Catch::Contains("Ed25519"));
}

TEST_CASE("a key that cannot be encoded is an error, never an empty PEM", "[key]") {
  // A key object holding only the public half: PKCS#8 encoding must fail, and the failure must
  // reach the caller (an empty string was once published as a workload key).
  const PrivateKey full = Must(PrivateKey::Generate(KeyType::kEcP256));
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(full.get(), &der);
  REQUIRE(len > 0);
  const unsigned char* p = der;
  UniquePtr<EVP_PKEY> public_only(d2i_PUBKEY(nullptr, &p, len));
  OPENSSL_free(der);
  REQUIRE(public_only != nullptr);
  const PrivateKey key = PrivateKey::Adopt(std::move(public_only));
  auto pem = key.ToPem();
  REQUIRE_FALSE(pem.ok());
  CHECK_THAT(pem.status().message(), Catch::Contains("encoding private key"));
}
