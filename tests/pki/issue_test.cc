#include "pki/issue.h"

#include <openssl/core_names.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "pki/csr.h"
#include "pki/pem.h"
#include "pki/verify.h"
#include "tests/testing/test_ca.h"

using namespace istioca;
using namespace istioca::pki;
using namespace istioca::testing;

TEST_CASE("a workload certificate has exactly the contents DESIGN.md fixes", "[issue]") {
  TestCa ca;
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto cert =
      Must(IssueLeaf(ca.signer, key.get(),
                     {{"spiffe://cluster.local/ns/ns1/sa/sa-a"}, {"sa-a.ns1.svc"}, 24h}, T0()));
  const CertInfo info = Describe(cert);
  CHECK(info.subject.empty());
  CHECK(info.issuer == "O=cluster.local");
  CHECK(info.uri_sans == std::vector<std::string>{"spiffe://cluster.local/ns/ns1/sa/sa-a"});
  CHECK(info.dns_sans == std::vector<std::string>{"sa-a.ns1.svc"});
  CHECK(info.san_critical);
  CHECK(info.spiffe_id == "spiffe://cluster.local/ns/ns1/sa/sa-a");
  CHECK(info.not_before == T0() - 2min);
  CHECK(info.not_after == T0() + 24h);
  CHECK(info.key_usage == std::vector<std::string>{"digitalSignature", "keyEncipherment"});
  CHECK(info.key_usage_critical);
  CHECK(info.ext_key_usage == std::vector<std::string>{"serverAuth", "clientAuth"});
  CHECK(info.basic_constraints_present);
  CHECK_FALSE(info.is_ca);
  CHECK_FALSE(info.subject_key_id.empty());
  CHECK(info.authority_key_id == Describe(ca.root).subject_key_id);
  CHECK(info.serial_hex.size() == 32);  // 16 bytes
  CHECK(info.signature_algorithm == "ecdsa-with-SHA256");
  CHECK(LeafSvidViolations(info).empty());
  CHECK(SigningSvidViolations(Describe(ca.root)).empty());
}

TEST_CASE("serials are random and distinct", "[issue]") {
  TestCa ca;
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  std::set<std::string> serials;
  for (int i = 0; i < 50; ++i) serials.insert(ca.Leaf("spiffe://td/ns/a/sa/b", key).SerialHex());
  CHECK(serials.size() == 50);
}

TEST_CASE("NotAfter is clamped to the signer's NotAfter", "[issue]") {
  TestCa ca;  // root valid for 365 days
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto cert = ca.Leaf("spiffe://td/ns/a/sa/b", key, 24h * 400);
  CHECK(cert.NotAfter() == ca.root.NotAfter());
}

TEST_CASE("an expired or not-yet-valid signer signs nothing", "[issue]") {
  TestCa ca;
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto late =
      IssueLeaf(ca.signer, key.get(), {{"spiffe://td/ns/a/sa/b"}, {}, 1h}, T0() + 24h * 366);
  REQUIRE_FALSE(late.ok());
  CHECK_THAT(late.status().message(), Catch::Contains("expired"));
  auto early = IssueLeaf(ca.signer, key.get(), {{"spiffe://td/ns/a/sa/b"}, {}, 1h}, T0() - 1h);
  REQUIRE_FALSE(early.ok());
  CHECK_THAT(early.status().message(), Catch::Contains("not valid until"));
}

TEST_CASE("the root is a CA with keyCertSign and CA:TRUE, both critical", "[issue]") {
  TestCa ca;
  const CertInfo info = Describe(ca.root);
  CHECK(info.subject == "O=cluster.local");
  CHECK(info.is_ca);
  CHECK(info.self_signed);
  CHECK(info.key_usage == std::vector<std::string>{"keyCertSign", "cRLSign"});
  CHECK(info.key_usage_critical);
  CHECK(ca.root.NotAfter() - ca.root.NotBefore() == 24h * 365 + 2min);
}

TEST_CASE("P-384 and RSA signers use the digest Go would", "[issue]") {
  auto key384 = Must(PrivateKey::Generate(KeyType::kEcP384));
  auto root384 = Must(MakeSelfSignedRoot(key384, {"o", 24h}, T0()));
  CHECK(Describe(root384).signature_algorithm == "ecdsa-with-SHA384");
  auto rsa = Must(PrivateKey::Generate(KeyType::kRsa2048));
  auto root_rsa = Must(MakeSelfSignedRoot(rsa, {"o", 24h}, T0()));
  CHECK(Describe(root_rsa).signature_algorithm == "sha256WithRSAEncryption");
}

TEST_CASE("a CSR carries its SANs and proves possession of its key", "[csr]") {
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto csr = Must(Csr::Build(key, {{"spiffe://cluster.local/ns/a/sa/b"}, {"b.a.svc"}, ""}));
  auto parsed = Must(Csr::FromPem(csr.ToPem()));
  CHECK(parsed.UriSans() == std::vector<std::string>{"spiffe://cluster.local/ns/a/sa/b"});
  CHECK(parsed.DnsSans() == std::vector<std::string>{"b.a.svc"});
  CHECK(SamePublicKey(parsed.PublicKey(), key.get()));
  CHECK_FALSE(parsed.RequestsCa());
}

TEST_CASE("a CSR whose signature does not match its key is refused", "[csr]") {
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto csr = Must(Csr::Build(key, {{"spiffe://cluster.local/ns/a/sa/b"}, {}, ""}));
  auto blocks = Must(ParsePem(csr.ToPem()));
  std::string der = blocks[0].der;
  der[der.size() - 5] ^= 0x55;  // inside the signature BIT STRING
  auto r = Csr::FromPem(EncodePem("CERTIFICATE REQUEST", der));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
}

TEST_CASE("CSR parsing refuses hostile input", "[csr]") {
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  const std::string good = Must(Csr::Build(key, {{"spiffe://td/ns/a/sa/b"}, {}, ""})).ToPem();
  struct Row {
    std::string pem;
    std::string why;
  };
  auto row =
      GENERATE_COPY(Row{"", "no PEM"}, Row{"garbage", "no PEM"},
                    Row{std::string(Csr::kMaxPemSize + 1, 'A'), "larger than"},
                    Row{EncodePem("CERTIFICATE", "\x30\x00"), "expected a CERTIFICATE REQUEST"},
                    Row{EncodePem("CERTIFICATE REQUEST", "\x30\x03\x02\x01\x00"), "malformed CSR"},
                    Row{good + good, "exactly one"});
  auto r = Csr::FromPem(row.pem);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains(row.why));
}

TEST_CASE("issuing refuses a weak subject key and an identity-less template", "[issue]") {
  TestCa ca;
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  CHECK_FALSE(IssueLeaf(ca.signer, key.get(), {{}, {}, 1h}, T0()).ok());
  CHECK_FALSE(IssueLeaf(ca.signer, key.get(), {{"spiffe://td/ns/a/sa/b"}, {}, 0h}, T0()).ok());
}

TEST_CASE("the issued certificate carries exactly the subject's public key, for every key type",
          "[issue]") {
  TestCa ca;
  const pki::KeyType type =
      GENERATE(KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048, KeyType::kRsa3072);
  auto key = Must(PrivateKey::Generate(type));
  auto cert = ca.Leaf("spiffe://td/ns/a/sa/b", key);
  // Re-parse from DER so that the key is decoded from the encoded SubjectPublicKeyInfo.
  auto reparsed = Must(Certificate::FromDer(cert.ToDer()));
  CHECK(SamePublicKey(reparsed.PublicKey(), key.get()));
  CHECK(reparsed.PublicKey() != nullptr);
  CHECK(DescribeKey(reparsed.PublicKey()) == key.Describe());
  CHECK(VerifyChain(reparsed, {}, {ca.root}, T0()).ok());
  // The in-memory certificate answers the same, without a DER round trip.
  CHECK(SamePublicKey(cert.PublicKey(), key.get()));
  CHECK(Describe(cert).key == key.Describe());
  CHECK(VerifyChain(cert, {}, {ca.root}, T0()).ok());
  // The SubjectPublicKeyInfo built by hand (IssueLeaf skips X509_set_pubkey) is byte for byte
  // what OpenSSL itself encodes for the same key.
  unsigned char* spki = nullptr;
  const int spki_len = i2d_PUBKEY(key.get(), &spki);
  REQUIRE(spki_len > 0);
  const std::string openssl_spki(reinterpret_cast<char*>(spki), static_cast<size_t>(spki_len));
  OPENSSL_free(spki);
  const std::string der = cert.ToDer();
  CHECK(der.find(openssl_spki) != std::string::npos);
  CHECK(der.find(openssl_spki) == der.rfind(openssl_spki));
  unsigned char* parsed_spki = nullptr;
  const int parsed_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(reparsed.get()), &parsed_spki);
  REQUIRE(parsed_len > 0);
  CHECK(std::string(reinterpret_cast<char*>(parsed_spki), static_cast<size_t>(parsed_len)) ==
        openssl_spki);
  OPENSSL_free(parsed_spki);
  // Issued for a CSR, the leaf carries the same SubjectPublicKeyInfo (copied as received for an
  // EC key, encoded from the key for RSA).
  const Csr csr =
      Must(Csr::FromDer(Must(Csr::Build(key, {{"spiffe://td/ns/a/sa/b"}, {}, ""})).Der()));
  CHECK(csr.SubjectPublicKeyInfoDer() == openssl_spki);
  const Certificate from_csr =
      Must(IssueLeaf(ca.signer, csr, {{"spiffe://td/ns/a/sa/b"}, {}, 24h}, T0()));
  CHECK(from_csr.ToDer().find(openssl_spki) != std::string::npos);
  CHECK(SamePublicKey(Must(Certificate::FromDer(from_csr.ToDer())).PublicKey(), key.get()));
  CHECK(VerifyChain(from_csr, {}, {ca.root}, T0()).ok());
}

TEST_CASE("a CSR's compressed EC point is written uncompressed in the leaf", "[issue]") {
  // Not copied as received: Go's crypto/x509 (istio-agent) reads only uncompressed points.
  TestCa ca;
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  REQUIRE(EVP_PKEY_set_utf8_string_param(key.get(), OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                         "compressed") == 1);
  const Csr csr =
      Must(Csr::FromDer(Must(Csr::Build(key, {{"spiffe://td/ns/a/sa/b"}, {}, ""})).Der()));
  REQUIRE(csr.SubjectPublicKeyInfoDer().size() == 59);  // 33-byte point
  const Certificate leaf =
      Must(IssueLeaf(ca.signer, csr, {{"spiffe://td/ns/a/sa/b"}, {}, 24h}, T0()));
  const Certificate reparsed = Must(Certificate::FromDer(leaf.ToDer()));
  CHECK(SamePublicKey(reparsed.PublicKey(), key.get()));
  CHECK(VerifyChain(reparsed, {}, {ca.root}, T0()).ok());
  unsigned char* spki = nullptr;
  const int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(reparsed.get()), &spki);
  OPENSSL_free(spki);
  CHECK(spki_len == 91);  // 65-byte point
}

namespace {
UniquePtr<X509> Decode(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  UniquePtr<X509> x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  REQUIRE(x != nullptr);
  REQUIRE(p == reinterpret_cast<const unsigned char*>(der.data()) + der.size());
  return x;
}

std::string ExtensionDer(X509_EXTENSION* ext) {
  unsigned char* p = nullptr;
  const int len = i2d_X509_EXTENSION(ext, &p);
  REQUIRE(len > 0);
  std::string out(reinterpret_cast<char*>(p), static_cast<size_t>(len));
  OPENSSL_free(p);
  return out;
}
}  // namespace

TEST_CASE("a leaf spliced from the signer's template is the DER OpenSSL encodes for its fields",
          "[issue]") {
  TestCa ca;
  const pki::KeyType type = GENERATE(KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048);
  auto key = Must(PrivateKey::Generate(type));
  const Certificate leaf = Must(
      IssueLeaf(ca.signer, key.get(), {{"spiffe://td/ns/a/sa/b"}, {"b.a.svc", "b.a"}, 24h}, T0()));
  const std::string der = leaf.ToDer();
  UniquePtr<X509> x = Decode(der);
  // Re-encoded from the decoded fields, the TBSCertificate and the certificate are our bytes.
  unsigned char* tbs = nullptr;
  const int tbs_len = i2d_re_X509_tbs(x.get(), &tbs);
  REQUIRE(tbs_len > 0);
  const std::string reencoded_tbs(reinterpret_cast<char*>(tbs), static_cast<size_t>(tbs_len));
  OPENSSL_free(tbs);
  CHECK(der.substr(4, reencoded_tbs.size()) == reencoded_tbs);  // after 30 82 LL LL
  unsigned char* whole = nullptr;
  const int whole_len = i2d_X509(x.get(), &whole);
  REQUIRE(whole_len > 0);
  CHECK(std::string(reinterpret_cast<char*>(whole), static_cast<size_t>(whole_len)) == der);
  OPENSSL_free(whole);
  CHECK(X509_verify(x.get(), ca.root_key.get()) == 1);
  // The fields kept beside the DER are what it holds.
  const Certificate reparsed = Must(Certificate::FromDer(der));
  CHECK(leaf.SerialHex() == reparsed.SerialHex());
  CHECK(leaf.NotBefore() == reparsed.NotBefore());
  CHECK(leaf.NotAfter() == reparsed.NotAfter());
  CHECK(leaf == reparsed);
  // Extensions in the order KU, EKU, BC, SKID, AKID, SAN; only KU, BC and SAN critical.
  const int kNids[] = {NID_key_usage,
                       NID_ext_key_usage,
                       NID_basic_constraints,
                       NID_subject_key_identifier,
                       NID_authority_key_identifier,
                       NID_subject_alt_name};
  const bool kCritical[] = {true, false, true, false, false, true};
  REQUIRE(X509_get_ext_count(x.get()) == 6);
  for (int i = 0; i < 6; ++i) {
    X509_EXTENSION* ext = X509_get_ext(x.get(), i);
    CHECK(OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == kNids[i]);
    CHECK((X509_EXTENSION_get_critical(ext) == 1) == kCritical[i]);
  }
  // SKID and AKID are what OpenSSL's "hash" and "keyid:always" make.
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca.root.get(), x.get(), nullptr, nullptr, 0);
  UniquePtr<X509_EXTENSION> skid(
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_key_identifier, "hash"));
  UniquePtr<X509_EXTENSION> akid(
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  REQUIRE(skid != nullptr);
  REQUIRE(akid != nullptr);
  CHECK(ExtensionDer(X509_get_ext(x.get(), 3)) == ExtensionDer(skid.get()));
  CHECK(ExtensionDer(X509_get_ext(x.get(), 4)) == ExtensionDer(akid.get()));
  CHECK(Describe(leaf).dns_sans == std::vector<std::string>{"b.a.svc", "b.a"});
}

TEST_CASE("leaf validity is UTCTime through 2049 and GeneralizedTime from 2050", "[issue]") {
  const TimePoint end_of_time = Must(ParseRfc3339("9999-12-31T23:59:59Z"));
  auto root_key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto root = Must(MakeSelfSignedRoot(root_key, {"forever", end_of_time - T0()}, T0()));
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  struct Row {
    const char* not_after;
    int type;
  };
  const Row row = GENERATE(Row{"2049-12-31T23:59:59Z", V_ASN1_UTCTIME},
                           Row{"2050-01-01T00:00:00Z", V_ASN1_GENERALIZEDTIME},
                           Row{"9999-12-31T23:59:59Z", V_ASN1_GENERALIZEDTIME});
  const TimePoint not_after = Must(ParseRfc3339(row.not_after));
  const Certificate leaf = Must(IssueLeaf({root, root_key}, key.get(),
                                          {{"spiffe://td/ns/a/sa/b"}, {}, not_after - T0()}, T0()));
  UniquePtr<X509> x = Decode(leaf.ToDer());
  CHECK(ASN1_STRING_type(X509_get0_notBefore(x.get())) == V_ASN1_UTCTIME);
  CHECK(ASN1_STRING_type(X509_get0_notAfter(x.get())) == row.type);
  const Certificate reparsed = Must(Certificate::FromDer(leaf.ToDer()));
  CHECK(reparsed.NotAfter() == not_after);
  CHECK(leaf.NotAfter() == not_after);
  CHECK(reparsed.NotBefore() == T0() - 2min);
}

TEST_CASE("P-384 and RSA signers sign leaves with the digest Go would", "[issue]") {
  struct Row {
    KeyType type;
    const char* algorithm;
  };
  const Row row = GENERATE(Row{KeyType::kEcP384, "ecdsa-with-SHA384"},
                           Row{KeyType::kRsa2048, "sha256WithRSAEncryption"});
  auto signer_key = Must(PrivateKey::Generate(row.type));
  auto root = Must(MakeSelfSignedRoot(signer_key, {"o", 24h}, T0()));
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  const Certificate leaf =
      Must(IssueLeaf({root, signer_key}, key.get(), {{"spiffe://td/ns/a/sa/b"}, {}, 1h}, T0()));
  CHECK(Describe(leaf).signature_algorithm == row.algorithm);
  CHECK(VerifyChain(leaf, {}, {root}, T0()).ok());
  CHECK(VerifyChain(Must(Certificate::FromDer(leaf.ToDer())), {}, {root}, T0()).ok());
}

TEST_CASE("a signer without a subject key identifier signs nothing, and says why", "[issue]") {
  auto signer_key = Must(PrivateKey::Generate(KeyType::kEcP256));
  UniquePtr<X509> x(X509_new());
  UniquePtr<X509_NAME> name(X509_NAME_new());
  REQUIRE(X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>("o"), 1, -1, 0) == 1);
  REQUIRE(X509_set_version(x.get(), X509_VERSION_3) == 1);
  REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 7) == 1);
  REQUIRE(ASN1_TIME_set(X509_getm_notBefore(x.get()), UnixSeconds(T0() - 1h)) != nullptr);
  REQUIRE(ASN1_TIME_set(X509_getm_notAfter(x.get()), UnixSeconds(T0() + 24h)) != nullptr);
  REQUIRE(X509_set_subject_name(x.get(), name.get()) == 1);
  REQUIRE(X509_set_issuer_name(x.get(), name.get()) == 1);
  REQUIRE(X509_set_pubkey(x.get(), signer_key.get()) == 1);
  REQUIRE(X509_sign(x.get(), signer_key.get(), EVP_sha256()) > 0);
  const Certificate root = Must(Certificate::Adopt(std::move(x)));
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto leaf = IssueLeaf({root, signer_key}, key.get(), {{"spiffe://td/ns/a/sa/b"}, {}, 1h}, T0());
  REQUIRE_FALSE(leaf.ok());
  CHECK(leaf.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(leaf.status().message(), Catch::Contains("subject key identifier"));
}

TEST_CASE("leaves from several signers, on several threads, each chain to their own signer",
          "[issue]") {
  // Each thread keeps prepared signing state for its two most recent signers; three signers in
  // turn make it replace one on every call.
  const TestCa cas[3];
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  std::atomic<int> wrong{0};
  auto work = [&] {
    for (int i = 0; i < 12; ++i) {
      const TestCa& ca = cas[i % 3];
      auto leaf = IssueLeaf(ca.signer, key.get(), {{"spiffe://td/ns/a/sa/b"}, {}, 1h}, T0());
      if (!leaf.ok() || !VerifyChain(*leaf, {}, {ca.root}, T0()).ok() ||
          VerifyChain(*leaf, {}, {cas[(i + 1) % 3].root}, T0()).ok()) {
        ++wrong;
      }
    }
  };
  std::thread other(work);
  work();
  other.join();
  CHECK(wrong == 0);
}

namespace {
// OpenSSL's own verdict on a CSR: d2i_X509_REQ plus X509_REQ_verify.
bool OpensslAccepts(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  UniquePtr<X509_REQ> req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  const bool ok = req != nullptr &&
                  p == reinterpret_cast<const unsigned char*>(der.data()) + der.size() &&
                  X509_REQ_get0_pubkey(req.get()) != nullptr &&
                  X509_REQ_verify(req.get(), X509_REQ_get0_pubkey(req.get())) == 1;
  ClearOsslErrors();
  return ok;
}
}  // namespace

TEST_CASE("CSRs made by the openssl CLI parse, with their SANs and CA requests", "[csr][interop]") {
  struct Row {
    const char* keyopt;
    const char* ext;
    bool ca;
  };
  auto row = GENERATE(Row{"-newkey ec -pkeyopt ec_paramgen_curve:P-256",
                          "subjectAltName=URI:spiffe://td/ns/a/sa/b", false},
                      Row{"-newkey ec -pkeyopt ec_paramgen_curve:P-384",
                          "subjectAltName=URI:spiffe://td/ns/a/sa/b", false},
                      Row{"-newkey rsa:2048", "subjectAltName=URI:spiffe://td/ns/a/sa/b", false},
                      Row{"-newkey rsa:2048", "basicConstraints=critical,CA:TRUE", true},
                      Row{"-newkey ed25519", "subjectAltName=URI:spiffe://td/ns/a/sa/b", false});
  const std::string pem =
      RunCommand(std::string("openssl req -new -nodes -keyout /dev/null -subj /O=x ") + row.keyopt +
                 " -addext '" + row.ext + "' 2>/dev/null");
  auto csr = Csr::FromPem(pem);
  INFO(row.keyopt << ": " << csr.status().ToString());
  REQUIRE(csr.ok());
  CHECK(csr->RequestsCa() == row.ca);
  if (!row.ca) CHECK(csr->UriSans() == std::vector<std::string>{"spiffe://td/ns/a/sa/b"});
  CHECK(csr->ToPem() == pem);
}

TEST_CASE("our CSR parser never accepts what OpenSSL rejects (every single-byte corruption)",
          "[csr][differential]") {
  const KeyType type = GENERATE(KeyType::kEcP256, KeyType::kRsa2048);
  auto key = Must(PrivateKey::Generate(type));
  const std::string der = Must(Csr::Build(key, {{"spiffe://td/ns/a/sa/b"}, {"b.a.svc"}, ""})).Der();
  int ours_accepted = 0, stricter = 0;
  for (size_t i = 0; i < der.size(); ++i) {
    for (const uint8_t mask : {0x01, 0x80, 0xFF}) {
      std::string mutated = der;
      mutated[i] = static_cast<char>(static_cast<uint8_t>(mutated[i]) ^ mask);
      auto ours = Csr::FromDer(mutated);
      const bool theirs = OpensslAccepts(mutated);
      INFO("byte " << i << " mask " << int(mask) << ": " << ours.status().ToString());
      if (ours.ok()) {
        ++ours_accepted;
        REQUIRE(theirs);
      } else if (theirs) {
        ++stricter;
      }
    }
  }
  // Flipping bits of a signed CSR almost always breaks it; the few accepted ones (e.g. inside
  // unused bits of the subject) are also accepted by OpenSSL.
  CHECK(ours_accepted < 10);
  WARN("accepted " << ours_accepted << ", stricter than OpenSSL on " << stricter);
}

TEST_CASE("hostile CSR structures are refused", "[csr]") {
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  const std::string der = Must(Csr::Build(key, {{"spiffe://td/ns/a/sa/b"}, {}, ""})).Der();
  CHECK_FALSE(Csr::FromDer(der + std::string(1, '\0')).ok());     // trailing data
  CHECK_FALSE(Csr::FromDer(der.substr(0, der.size() - 1)).ok());  // truncated
  CHECK_FALSE(Csr::FromDer("").ok());
  CHECK_FALSE(Csr::FromDer(std::string("\x30\x80\x00\x00", 4)).ok());  // indefinite length (BER)
  // A duplicate SAN extension is refused rather than guessing which one counts.
  const std::string dup = RunCommand(
      "openssl req -new -nodes -keyout /dev/null -subj /O=x -newkey ec -pkeyopt "
      "ec_paramgen_curve:P-256 "
      "-addext 'subjectAltName=URI:spiffe://td/ns/a/sa/b' -addext "
      "'subjectAltName=URI:spiffe://td/ns/x/sa/y' 2>/dev/null || true");
  if (!dup.empty()) {
    auto r = Csr::FromPem(dup);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("repeats"));
  }
}

TEST_CASE("a CSR whose EC public key is not a point on its curve is refused by name", "[csr]") {
  const KeyType type = GENERATE(KeyType::kEcP256, KeyType::kEcP384);
  auto key = Must(PrivateKey::Generate(type));
  std::string der = Must(Csr::Build(key, {{"spiffe://td/ns/a/sa/b"}, {}, ""})).Der();
  unsigned char point[200];
  size_t len = 0;
  REQUIRE(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                          sizeof point, &len) == 1);
  const size_t at = der.find(std::string(reinterpret_cast<char*>(point), len));
  REQUIRE(at != std::string::npos);
  der[at + len - 1] ^= 0x01;  // y + 1 (or - 1): off the curve
  auto r = Csr::FromDer(der);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains("not a valid point"));
  // The untouched CSR of the same curve still parses afterwards (the per-curve template is intact).
  auto again = Must(Csr::Build(key, {{"spiffe://td/ns/a/sa/b"}, {}, ""}));
  CHECK(SamePublicKey(Must(Csr::FromDer(again.Der())).PublicKey(), key.get()));
}

TEST_CASE("a root that never expires (NotAfter 9999-12-31) is read right and signs", "[issue]") {
  // RFC 5280 §4.1.2.5: 99991231235959Z means "no well-defined expiration". With nanosecond time
  // points this read as 1816-03-30 and the CA refused to sign.
  const TimePoint end_of_time = Must(ParseRfc3339("9999-12-31T23:59:59Z"));
  auto root_key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto root = Must(MakeSelfSignedRoot(root_key, {"forever", end_of_time - T0()}, T0()));
  CHECK(FormatRfc3339(root.NotAfter()) == "9999-12-31T23:59:59Z");
  const std::string text = RunCommand("echo '" + root.ToPem() + "' | openssl x509 -noout -enddate");
  CHECK_THAT(text, Catch::Contains("Dec 31 23:59:59 9999 GMT"));
  const CertInfo info = Describe(root);
  CHECK(info.not_after == end_of_time);
  CHECK(info.not_after > T0());
  CHECK(info.not_before == T0() - 2min);

  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  auto leaf = IssueLeaf({root, root_key}, key.get(), {{"spiffe://td/ns/a/sa/b"}, {}, 24h}, T0());
  INFO(leaf.status().ToString());
  REQUIRE(leaf.ok());
  CHECK(leaf->NotAfter() == T0() + 24h);
  CHECK(VerifyChain(*leaf, {}, {root}, T0() + 1h).ok());
  // A leaf asking for more than the root has left is clamped to the root's NotAfter.
  auto long_leaf = Must(IssueLeaf({root, root_key}, key.get(),
                                  {{"spiffe://td/ns/a/sa/b"}, {}, end_of_time - T0() + 24h}, T0()));
  CHECK(long_leaf.NotAfter() == end_of_time);
}

TEST_CASE("every X509 a certificate hands out has its key decoded, even one built in memory",
          "[issue]") {
  // IssueLeaf skips decoding the subject key; get() once returned that X509 as is, and OpenSSL
  // then found no key in it (X509_get0_pubkey null, signatures unverifiable).
  TestCa ca;
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  const Certificate cert = ca.Leaf("spiffe://td/ns/a/sa/b", key);
  const Certificate copy = cert;  // NOLINT(performance-unnecessary-copy-initialization)
  for (const Certificate* c : {&cert, &copy}) {
    X509* x = c->get();
    REQUIRE(x != nullptr);
    REQUIRE(X509_get0_pubkey(x) != nullptr);
    CHECK(EVP_PKEY_eq(X509_get0_pubkey(x), key.get()) == 1);
    CHECK(X509_verify(x, ca.root_key.get()) == 1);
  }
  CHECK(copy.get() == cert.get());  // decoded once, shared by copies
  ClearOsslErrors();
}

TEST_CASE("a CA organization that cannot be a subject O= is an error, never an empty subject",
          "[issue]") {
  // --self-signed-ca-org is not checked for UTF-8 before it gets here; the unchecked
  // X509_NAME_add_entry_by_txt once left the root with an empty subject.
  auto key = Must(PrivateKey::Generate(KeyType::kEcP256));
  const std::string org =
      GENERATE(std::string("bad \xff\xfe org"), std::string("\xc3"), std::string(65, 'o'));
  auto root = MakeSelfSignedRoot(key, {org, 24h}, T0());
  REQUIRE_FALSE(root.ok());
  CHECK(root.status().code() == Code::kInvalidArgument);
  CHECK_THAT(root.status().message(), Catch::Contains("UTF-8"));
  TestCa ca;
  auto inter = IssueIntermediate(ca.signer, key.get(), {org, 24h}, T0());
  REQUIRE_FALSE(inter.ok());
  CHECK(inter.status().code() == Code::kInvalidArgument);
  auto csr = Csr::Build(key, {{"spiffe://td/ns/a/sa/b"}, {}, org});
  REQUIRE_FALSE(csr.ok());
  CHECK(csr.status().code() == Code::kInvalidArgument);
  // Non-ASCII UTF-8 is fine.
  CHECK(Describe(Must(MakeSelfSignedRoot(key, {"Zürich", 24h}, T0()))).subject == "O=Zürich");
}

TEST_CASE("a certificate OpenSSL cannot encode is an error, never an empty DER or PEM", "[cert]") {
  // A bare X509_new() lacks the fields i2d_X509 needs.
  auto bare = Certificate::Adopt(UniquePtr<X509>(X509_new()));
  REQUIRE_FALSE(bare.ok());
  CHECK(bare.status().code() == Code::kInternal);
  CHECK_FALSE(Certificate::Adopt(UniquePtr<X509>()).ok());

  // A certificate that was made has its encoding: the bytes it was parsed from, and PEM of them.
  TestCa ca;
  const std::string der = ca.root.ToDer();
  REQUIRE_FALSE(der.empty());
  const Certificate copy = Must(Certificate::FromDer(der));
  CHECK(copy.ToDer() == der);
  CHECK(copy.ToPem() == EncodePem("CERTIFICATE", der));
}
