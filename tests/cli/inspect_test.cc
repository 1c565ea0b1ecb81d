#include "ca/inspect/inspect.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "base/base64.h"
#include "ca/inspect/input.h"
#include "pki/csr.h"
#include "pki/pem.h"
#include "tests/testing/test_ca.h"

using namespace istioca;
using namespace istioca::ca;
using namespace istioca::testing;

namespace {

const char* kId = "spiffe://cluster.local/ns/default/sa/web";

struct Workload {
  TestCa ca;
  pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate leaf = ca.Leaf(kId, key, 24h);

  MaterialSet Set() const {
    MaterialSet s;
    s.source = "test";
    s.kind = "file";
    s.chain = {leaf};
    s.key = key;
    s.roots = {ca.root};
    return s;
  }
};

InspectOptions At(TimePoint t) {
  InspectOptions o;
  o.at = t;
  return o;
}

std::string TempDir() {
  auto dir = std::filesystem::temp_directory_path() /
             ("istioca-inspect-" + std::to_string(getpid()) + "-" + std::to_string(rand()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

void Write(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

}  // namespace

TEST_CASE("a fresh workload set is healthy, with SPIFFE ID, expiry and rotation due", "[inspect]") {
  Workload w;
  const SetReport r = Inspect(w.Set(), At(T0() + 1h));
  CHECK(r.healthy());
  CHECK(r.spiffe_id == kId);
  CHECK(r.expires_at == T0() + 24h);
  // Exactly when the controller will refresh it: half of the 24h lifetime before expiry, less
  // up to 10% jitter derived from the serial.
  REQUIRE(r.rotation_due_at.has_value());
  CHECK(*r.rotation_due_at ==
        RefreshTime({w.leaf.NotBefore(), w.leaf.NotAfter(), w.leaf.SerialHex()}, RotationPolicy{}));
  CHECK(*r.rotation_due_at >= T0() + 12h);
  CHECK(*r.rotation_due_at <= T0() + 12h + 72min);
  CHECK(r.chain_verified == true);
  CHECK(r.roots_source == "root-cert.pem");
  CHECK(r.key_matches == true);
  CHECK(r.svid_applies);
  CHECK(r.svid_violations.empty());
  CHECK(r.chain.at(0).role == "leaf");
  CHECK(r.roots.at(0).role == "root");
}

TEST_CASE("time-based findings follow the evaluation time, not the wall clock", "[inspect]") {
  Workload w;
  SECTION("expired") {
    const SetReport r = Inspect(w.Set(), At(T0() + 25h));
    REQUIRE(r.problems.size() == 1);  // reported once, not again as a chain failure
    CHECK_THAT(r.problems[0], Catch::Contains("expired at"));
  }
  SECTION("not yet valid") {
    const SetReport r = Inspect(w.Set(), At(T0() - 1h));
    REQUIRE_FALSE(r.healthy());
    CHECK_THAT(r.problems[0], Catch::Contains("not valid until"));
  }
  SECTION("expiring within a window") {
    InspectOptions o = At(T0() + 1h);
    o.expiring_within = 48h;
    const SetReport r = Inspect(w.Set(), o);
    REQUIRE_FALSE(r.healthy());
    CHECK_THAT(r.problems[0], Catch::Contains("expires within 2d"));
    o.expiring_within = 12h;
    CHECK(Inspect(w.Set(), o).healthy());
  }
  SECTION("in the grace period: a warning, not a problem") {
    const SetReport r = Inspect(w.Set(), At(T0() + 13h + 20min));
    CHECK(r.healthy());
    REQUIRE(r.warnings.size() == 1);
    CHECK_THAT(r.warnings[0], Catch::Contains("rotation is overdue"));
  }
}

TEST_CASE("a broken chain, a foreign root and a wrong key are problems", "[inspect]") {
  Workload w;
  TestCa other;
  MaterialSet foreign = w.Set();
  foreign.roots = {other.root};
  const SetReport r1 = Inspect(foreign, At(T0()));
  CHECK(r1.chain_verified == false);
  REQUIRE(r1.problems.size() == 1);
  CHECK_THAT(r1.problems[0], Catch::Contains("does not verify"));

  MaterialSet wrong_key = w.Set();
  wrong_key.key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  const SetReport r2 = Inspect(wrong_key, At(T0()));
  CHECK(r2.key_matches == false);
  CHECK_THAT(r2.problems.at(0), Catch::Contains("does not match"));

  // --roots overrides the set's own roots, and a difference is called out.
  InspectOptions o = At(T0());
  o.roots = std::vector<pki::Certificate>{other.root};
  o.roots_name = "--roots other.pem";
  const SetReport r3 = Inspect(w.Set(), o);
  CHECK(r3.chain_verified == false);
  CHECK(r3.roots_source == "--roots other.pem");
  CHECK_THAT(r3.warnings.at(0), Catch::Contains("differs from --roots"));
}

TEST_CASE("a chain without roots is verified against its own trailing root, or not at all",
          "[inspect]") {
  Workload w;
  MaterialSet s = w.Set();
  s.roots.clear();
  CHECK_FALSE(Inspect(s, At(T0())).chain_verified.has_value());
  s.chain.push_back(w.ca.root);
  const SetReport r = Inspect(s, At(T0()));
  CHECK(r.chain_verified == true);
  CHECK(r.roots_source == "the chain's own root");
}

TEST_CASE("X509-SVID violations are problems only for SPIFFE leaves", "[inspect]") {
  TestCa ca;
  auto key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  MaterialSet two_ids;
  two_ids.chain = {Must(pki::IssueLeaf(
      ca.signer, key.get(), {{"spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/c"}, {}, 1h}, T0()))};
  two_ids.roots = {ca.root};
  const SetReport r = Inspect(two_ids, At(T0()));
  REQUIRE_FALSE(r.healthy());
  CHECK_THAT(r.problems[0], Catch::Contains("X509-SVID") && Catch::Contains("exactly one URI SAN"));

  MaterialSet dns_only;
  dns_only.chain = {Must(pki::IssueLeaf(ca.signer, key.get(), {{}, {"web.example"}, 1h}, T0()))};
  dns_only.roots = {ca.root};
  const SetReport d = Inspect(dns_only, At(T0()));
  CHECK(d.healthy());
  CHECK_FALSE(d.svid_applies);
  CHECK_THAT(d.notes.at(0), Catch::Contains("not an X509-SVID"));
}

TEST_CASE("Secrets from kubectl -o json and -o yaml become sets", "[inspect][secret]") {
  Workload w;
  auto b64 = [](const std::string& s) { return Base64Encode(s); };
  const std::string data = "\"cert-chain.pem\":\"" + b64(w.leaf.ToPem()) + "\",\"key.pem\":\"" +
                           b64(Must(w.key.ToPem()).str()) + "\",\"root-cert.pem\":\"" +
                           b64(w.ca.root.ToPem()) + "\"";
  const std::string secret =
      "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"istio.web\","
      "\"namespace\":\"default\"},\"type\":\"istio.io/key-and-cert\",\"data\":{" +
      data + "}}";
  auto sets = ParseMaterial(secret, "standard input", "stdin");
  REQUIRE(sets.ok());
  REQUIRE(sets->size() == 1);
  CHECK((*sets)[0].source == "secret default/istio.web");
  CHECK((*sets)[0].key.has_value());
  CHECK((*sets)[0].roots.size() == 1);
  CHECK(Inspect((*sets)[0], At(T0())).healthy());

  const std::string list =
      "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[" + secret + "," + secret + "]}";
  auto listed = ParseMaterial(list, "stdin", "stdin");
  REQUIRE(listed.ok());
  CHECK(listed->size() == 2);

  const std::string yaml =
      "apiVersion: v1\nkind: Secret\nmetadata:\n  name: istio.web\n  namespace: default\n"
      "type: istio.io/key-and-cert\ndata:\n  cert-chain.pem: " +
      b64(w.leaf.ToPem()) + "\n  key.pem: " + b64(Must(w.key.ToPem()).str()) +
      "\n  root-cert.pem: " + b64(w.ca.root.ToPem()) + "\n";
  auto from_yaml = ParseMaterial(yaml, "stdin", "stdin");
  INFO(from_yaml.status().ToString());
  REQUIRE(from_yaml.ok());
  CHECK((*from_yaml)[0].source == "secret default/istio.web");
  CHECK(Inspect((*from_yaml)[0], At(T0())).healthy());
}

TEST_CASE("unusable input is refused with one clear line", "[inspect][input]") {
  Workload w;
  const std::string pem = w.leaf.ToPem();
  const std::string der = Must(pki::ParsePem(pem))[0].der;
  const std::string csr = Must(pki::Csr::Build(w.key, {{kId}, {}, ""})).ToPem();
  struct Row {
    std::string input;
    std::string expect;
  };
  auto row = GENERATE_COPY(
      Row{"hello, world", "no PEM certificate or Kubernetes Secret"},
      Row{pem.substr(0, pem.size() / 2), "no END line"}, Row{der, "looks like DER"},
      Row{csr, "certificate signing request"}, Row{Must(w.key.ToPem()).str(), "only a private key"},
      Row{"{\"kind\":\"Secret\",\"data\":{\"cert-chain.pem\":\"!!\"}}", "not valid base64"},
      Row{"{\"kind\":\"Pod\"}", "expected kind Secret"}, Row{"{not json", "not valid JSON"},
      Row{"{\"kind\":\"Secret\",\"data\":{}}", "has none of cert-chain.pem"},
      Row{"kind: Secret\ndata: [1, 2", "not valid YAML"},
      Row{"{\"kind\":\"Secret\",\"data\":{\"cert-chain.pem\":\"" + Base64Encode(pem) +
              "\",\"key.pem\":\"" + Base64Encode("junk") + "\"}}",
          "key.pem"});
  auto r = ParseMaterial(row.input, "in", "stdin");
  INFO(row.expect);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains(row.expect));
  CHECK(r.status().message().find('\n') == std::string::npos);
}

TEST_CASE("directories in /etc/certs layout and combined files load as sets", "[inspect][input]") {
  Workload w;
  const std::string dir = TempDir();
  Write(dir + "/cert-chain.pem", w.leaf.ToPem());
  Write(dir + "/key.pem", Must(w.key.ToPem()).str());
  Write(dir + "/root-cert.pem", w.ca.root.ToPem());
  auto set = LoadDirectory(dir);
  REQUIRE(set.ok());
  CHECK(set->chain.size() == 1);
  CHECK(set->key.has_value());
  CHECK(set->roots.size() == 1);

  auto files = LoadInputs({dir + "/cert-chain.pem", dir + "/key.pem", dir + "/root-cert.pem"});
  REQUIRE(files.ok());
  REQUIRE(files->size() == 1);
  CHECK((*files)[0].roots.size() == 1);
  CHECK(Inspect((*files)[0], At(T0())).healthy());

  const std::string empty_dir = TempDir();
  auto missing = LoadDirectory(empty_dir);
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("no cert-chain.pem"));

  Write(dir + "/big.pem", std::string(kMaxInspectInput + 1, 'A'));
  auto big = LoadInputs({dir + "/big.pem"});
  REQUIRE_FALSE(big.ok());
  CHECK_THAT(big.status().message(), Catch::Contains("larger than 4 MiB"));
  auto absent = LoadInputs({dir + "/nope.pem"});
  REQUIRE_FALSE(absent.ok());
  CHECK_THAT(absent.status().message(), Catch::Contains("no such file"));
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(empty_dir);
}

TEST_CASE("JSON output has the documented stable schema", "[inspect][json]") {
  Workload w;
  const SetReport r = Inspect(w.Set(), At(T0() + 1h));
  const nlohmann::json j = RenderJson({r}, T0() + 1h);
  CHECK(j["schema"] == "istio-ca.inspect/v1");
  CHECK(j["healthy"] == true);
  const auto& s = j["sets"][0];
  for (const char* key :
       {"source", "kind", "healthy", "problems", "warnings", "notes", "spiffe_id", "expires_at",
        "seconds_left", "rotation_due_at", "chain", "key", "svid", "certificates", "roots"}) {
    INFO(key);
    CHECK(s.contains(key));
  }
  CHECK(s["spiffe_id"] == kId);
  CHECK(s["seconds_left"] == 23 * 3600);
  CHECK(s["chain"]["verified"] == true);
  CHECK(s["key"]["matches"] == true);
  const auto& leaf = s["certificates"][0];
  CHECK(leaf["role"] == "leaf");
  CHECK(leaf["uri_sans"][0] == kId);
  CHECK(leaf["key_type"] == "EC P-256");
  CHECK(leaf["ext_key_usage"] == nlohmann::json({"serverAuth", "clientAuth"}));
  CHECK(leaf["sha256_fingerprint"] == w.leaf.Sha256Fingerprint());
}

TEST_CASE("text output leads with the SPIFFE ID and time left, colour only when asked",
          "[inspect][text]") {
  Workload w;
  const SetReport r = Inspect(w.Set(), At(T0() + 1h));
  const std::string plain = RenderText({r}, {false, false});
  CHECK_THAT(plain, Catch::StartsWith("test (file)  HEALTHY\n  SPIFFE ID   " + std::string(kId)));
  CHECK_THAT(plain, Catch::Contains("(in 23h0m)"));
  CHECK(plain.find("\x1b[") == std::string::npos);
  CHECK(RenderText({r}, {true, false}).find("\x1b[") != std::string::npos);
}

TEST_CASE("each certificate file named is its own set; key and root files join them",
          "[inspect][input]") {
  // Two workload certificates side by side were once one "chain" with signing-certificate
  // violations.
  Workload w;
  auto other_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  const pki::Certificate other = w.ca.Leaf("spiffe://cluster.local/ns/default/sa/api", other_key);
  const std::string dir = TempDir();
  Write(dir + "/a.pem", w.leaf.ToPem());
  Write(dir + "/b.pem", other.ToPem());
  Write(dir + "/b.key", Must(other_key.ToPem()).str());
  Write(dir + "/root-cert.pem", w.ca.root.ToPem());
  auto sets = LoadInputs({dir + "/a.pem", dir + "/b.key", dir + "/b.pem", dir + "/root-cert.pem"});
  REQUIRE(sets.ok());
  REQUIRE(sets->size() == 2);
  CHECK((*sets)[0].source == dir + "/a.pem");
  CHECK((*sets)[0].chain.size() == 1);
  CHECK_FALSE((*sets)[0].key.has_value());
  CHECK((*sets)[1].source == dir + "/b.pem + " + dir + "/b.key");
  CHECK((*sets)[1].key.has_value());
  for (const MaterialSet& set : *sets) {
    CHECK(set.roots.size() == 1);
    const SetReport r = Inspect(set, At(T0() + 1h));
    INFO(set.source);
    CHECK(r.healthy());
    CHECK(r.chain_verified == true);
  }
  // A key that belongs to none of several certificates is a usage error, not a guess.
  Write(dir + "/stray.key", Must(w.ca.root_key.ToPem()).str());
  auto stray = LoadInputs({dir + "/a.pem", dir + "/b.pem", dir + "/stray.key"});
  REQUIRE_FALSE(stray.ok());
  CHECK_THAT(stray.status().message(), Catch::Contains("matches none"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("inspect says which trust bundle generation a set carries, or what it lacks",
          "[inspect][trust]") {
  Workload w;
  TestCa next;
  InspectOptions o = At(T0() + 1h);
  o.roots = std::vector<pki::Certificate>{w.ca.root};
  o.roots_name = "the CA's roots";
  o.bundle_generation = 7;
  // The set carries exactly the CA's bundle: its generation.
  SetReport current = Inspect(w.Set(), o);
  CHECK(current.roots_match == true);
  CHECK(current.bundle_generation == 7u);
  CHECK(current.bundle_missing_roots.empty());
  CHECK(current.bundle_extra_roots.empty());
  CHECK_THAT(RenderText({current}, {}), Catch::Contains("generation 7 (the CA's current)"));
  CHECK(RenderJson({current}, T0())["sets"][0]["chain"]["bundle_generation"] == 7);

  // The CA moved to a bundle with a second root: the set lacks it (named by its key id).
  o.roots = std::vector<pki::Certificate>{w.ca.root, next.root};
  o.bundle_generation = 8;
  SetReport stale = Inspect(w.Set(), o);
  CHECK(stale.roots_match == false);
  CHECK_FALSE(stale.bundle_generation.has_value());
  REQUIRE(stale.bundle_missing_roots.size() == 1);
  CHECK(stale.bundle_missing_roots[0] == pki::Describe(next.root).subject_key_id);
  CHECK(stale.bundle_extra_roots.empty());
  CHECK_THAT(RenderText({stale}, {}),
             Catch::Contains("lacks root " + stale.bundle_missing_roots[0]));

  // After retirement the CA's bundle is only the new root: the set carries one it no longer has.
  o.roots = std::vector<pki::Certificate>{next.root};
  SetReport retired = Inspect(w.Set(), o);
  REQUIRE(retired.bundle_extra_roots.size() == 1);
  CHECK(retired.bundle_extra_roots[0] == pki::Describe(w.ca.root).subject_key_id);
}
