#include "ca/core/ca_loader.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "base/log.h"
#include "ca/daemon/daemon.h"
#include "ca/local/ca_store.h"
#include "pki/digest.h"
#include "tests/ca/temp_dir.h"
#include "tests/testing/test_ca.h"

using namespace istioca;
using namespace istioca::ca;
using namespace std::chrono_literals;
using istioca::testing::Must;
using istioca::testing::ReadAll;
using istioca::testing::T0;
using istioca::testing::TempDir;
using istioca::testing::WriteFile;

namespace {

const bool kQuiet = ConfigureLogging("error", false).ok();

const SelfSignedOptions kSelfSigned{"cluster.local", 87600h, pki::KeyType::kEcP256};

// Another replica stores its CA between our Load and our Create.
class RacingCaStore final : public CaStore {
 public:
  explicit RacingCaStore(StoredCa theirs) : theirs_(std::move(theirs)) {}
  Result<StoredCa> Load() const override {
    if (loads_++ == 0) return NotFound("nothing yet");
    return theirs_;
  }
  Status Create(const StoredCa&) override { return Status(Code::kAlreadyExists, "lost the race"); }
  Result<StoredRecord> LoadRecord() const override { return NotFound("not used here"); }
  Status StoreRecord(const std::map<std::string, std::string>&, const std::string&) override {
    return Status(Code::kAborted, "not used here");
  }

 private:
  StoredCa theirs_;
  mutable int loads_ = 0;
};

struct PluggedFiles {
  TempDir dir;
  PluggedCaFiles files{dir / "ca-cert.pem", dir / "ca-key.pem", dir / "root-cert.pem",
                       dir / "cert-chain.pem"};
  void Write(const pki::Certificate& cert, const pki::PrivateKey& key, const std::string& roots,
             const std::string& chain = "") {
    WriteFile(files.signing_cert, cert.ToPem());
    WriteFile(files.signing_key, Must(key.ToPem()).str());
    WriteFile(files.root_cert, roots);
    WriteFile(files.cert_chain, chain);
  }
};

}  // namespace

TEST_CASE("the self-signed CA is created once, stored with the key 0600, and reused",
          "[ca-loader]") {
  TempDir dir;
  LocalCaStore store(dir / "ca");
  auto first = Must(LoadOrCreateSelfSigned(store, kSelfSigned, T0()));
  struct stat st;
  REQUIRE(stat((dir / "ca/ca-key.pem").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(first->SignerIsRoot());
  CHECK(first->signer.cert.Subject() == "O=cluster.local");
  auto again = Must(LoadOrCreateSelfSigned(store, kSelfSigned, T0() + 1h));
  CHECK(again->signer.cert == first->signer.cert);
  CHECK(store.Create({"a", "b", "c", ""}).code() == Code::kAlreadyExists);
}

TEST_CASE("a replica that loses the race to store the CA uses the winner's", "[ca-loader]") {
  TempDir dir;
  LocalCaStore winner_store(dir / "ca");
  auto winner = Must(LoadOrCreateSelfSigned(winner_store, kSelfSigned, T0()));
  RacingCaStore racing(Must(winner_store.Load()));
  auto ours = Must(LoadOrCreateSelfSigned(racing, kSelfSigned, T0()));
  CHECK(ours->signer.cert == winner->signer.cert);
}

TEST_CASE("an expired stored CA is an error, never silently replaced", "[ca-loader]") {
  TempDir dir;
  LocalCaStore store(dir / "ca");
  Must(LoadOrCreateSelfSigned(store, {"cluster.local", 24h, pki::KeyType::kEcP256}, T0()));
  auto later = LoadOrCreateSelfSigned(store, kSelfSigned, T0() + 48h);
  REQUIRE_FALSE(later.ok());
  CHECK_THAT(later.status().message(), Catch::Contains("expired"));
}

TEST_CASE("plugged-in CA bundles are validated with errors that name the problem", "[ca-loader]") {
  testing::TestCa root;
  auto int_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  auto inter =
      Must(pki::IssueIntermediate(root.signer, int_key.get(), {"Intermediate", 24h * 30}, T0()));
  auto leaf_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  auto leaf = root.Leaf("spiffe://cluster.local/ns/a/sa/b", leaf_key);
  testing::TestCa other;
  struct Row {
    const char* name;
    std::function<void(PluggedFiles&)> write;
    const char* want;
  };
  auto row = GENERATE_COPY(
      Row{"key of another CA",
          [=](PluggedFiles& f) { f.Write(inter, root.root_key, root.root.ToPem()); },
          "key does not match"},
      Row{"a leaf as signing cert",
          [=](PluggedFiles& f) { f.Write(leaf, leaf_key, root.root.ToPem()); }, "not a CA"},
      Row{"wrong root", [=](PluggedFiles& f) { f.Write(inter, int_key, other.root.ToPem()); },
          "does not verify"},
      Row{"garbage root", [=](PluggedFiles& f) { f.Write(inter, int_key, "garbage"); },
          "root certificate"},
      Row{"missing key file",
          [=](PluggedFiles& f) {
            f.Write(inter, int_key, root.root.ToPem());
            std::filesystem::remove(f.files.signing_key);
          },
          "--signing-key"});
  CAPTURE(row.name);
  PluggedFiles f;
  row.write(f);
  auto b = LoadPluggedCa(f.files, T0());
  REQUIRE_FALSE(b.ok());
  CHECK_THAT(b.status().ToString(), Catch::Contains(row.want));
  // And an expired one, at a later time.
  PluggedFiles ok;
  ok.Write(inter, int_key, root.root.ToPem(), inter.ToPem());
  REQUIRE(LoadPluggedCa(ok.files, T0()).ok());
  auto expired = LoadPluggedCa(ok.files, T0() + 24h * 31);
  REQUIRE_FALSE(expired.ok());
  CHECK_THAT(expired.status().ToString(), Catch::Contains("expired"));
}

TEST_CASE("several roots in root-cert.pem are all trusted and all published", "[ca-loader]") {
  testing::TestCa root;
  testing::TestCa next;
  PluggedFiles f;
  f.Write(root.root, root.root_key, root.root.ToPem() + next.root.ToPem());
  auto b = Must(LoadPluggedCa(f.files, T0()));
  CHECK(b->roots.size() == 2);
  CHECK(b->RootsPem() == root.root.ToPem() + next.root.ToPem());
}

TEST_CASE("a plugged-in root that never expires (NotAfter 9999-12-31) signs", "[ca-loader]") {
  // RFC 5280 §4.1.2.5's "no well-defined expiration" once read as 1816-03-30: the daemon
  // refused every signature with "the signing certificate expired".
  const TimePoint end_of_time = Must(ParseRfc3339("9999-12-31T23:59:59Z"));
  auto key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  auto root = Must(pki::MakeSelfSignedRoot(key, {"forever", end_of_time - T0()}, T0()));
  PluggedFiles f;
  f.Write(root, key, root.ToPem());
  auto bundle = LoadPluggedCa(f.files, T0());
  INFO(bundle.status().ToString());
  REQUIRE(bundle.ok());
  FakeClock clock(T0());
  Authority authority(IssuancePolicy{}, clock);
  authority.SetBundle(*bundle);
  auto subject = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  auto issued = authority.Sign(subject.get(), {"spiffe://cluster.local/ns/a/sa/b"}, {}, 1h);
  INFO(issued.status().ToString());
  REQUIRE(issued.ok());
  CHECK(issued->leaf.NotAfter() == T0() + 1h);
}

TEST_CASE("daemon options: cross-field rules", "[options]") {
  struct Row {
    const char* name;
    std::function<void(DaemonOptions&)> change;
    const char* want;  // "" = valid
  };
  auto row = GENERATE_COPY(
      Row{"defaults", [](DaemonOptions&) {}, ""},
      Row{"ttl above max", [](DaemonOptions& o) { o.workload_cert_ttl = 3000h; },
          "greater than --max-workload-cert-ttl"},
      Row{"ratio above 1", [](DaemonOptions& o) { o.workload_cert_grace_period_ratio = 1.5; },
          "grace-period-ratio"},
      Row{"ratio NaN", [](DaemonOptions& o) { o.workload_cert_grace_period_ratio = std::nan(""); },
          "grace-period-ratio"},
      Row{"partial plugged CA",
          [](DaemonOptions& o) {
            o.self_signed_ca = false;
            o.signing_cert = "/x";
          },
          "needs --signing-cert, --signing-key and --root-cert"},
      Row{"self-signed and plugged", [](DaemonOptions& o) { o.signing_cert = "/x"; }, "conflicts"},
      Row{"same ports", [](DaemonOptions& o) { o.monitoring_port = o.grpc_port; }, "must differ"},
      Row{"liveness path without interval",
          [](DaemonOptions& o) { o.liveness_probe_path = "/tmp/l"; }, "go together"},
      Row{"bad namespace", [](DaemonOptions& o) { o.listened_namespaces = {"Bad"}; },
          "--listened-namespaces"},
      Row{"bad trust domain", [](DaemonOptions& o) { o.trust_domain = "a b"; }, "--trust-domain"},
      Row{"zero qps", [](DaemonOptions& o) { o.kube_api_qps = 0; }, "--kube-api-qps"});
  CAPTURE(row.name);
  DaemonOptions o;
  o.local_dir = "/tmp/x";
  row.change(o);
  Status s = ValidateDaemonOptions(o);
  if (std::string(row.want).empty()) {
    CHECK(s.ok());
  } else {
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains(row.want));
  }
}

TEST_CASE("--custom-dns-names parsing", "[options]") {
  auto m = Must(ParseCustomDnsNames(
      "web.prod:web.example.com,web.prod:alt.example.com,db.prod:db.example.com"));
  CHECK(m["web.prod"] == std::vector<std::string>{"web.example.com", "alt.example.com"});
  CHECK(m["db.prod"] == std::vector<std::string>{"db.example.com"});
  CHECK(Must(ParseCustomDnsNames("")).empty());
  for (const char* bad : {"web", "web.prod:", ":x", "web:x.com"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseCustomDnsNames(bad).ok());
  }
}

TEST_CASE("plugged-in files are identified by digest, holding none of their bytes", "[ca-loader]") {
  // What the trust lifecycle compares every second to notice a change of the plugged-in files.
  testing::TestCa ca1, ca2;
  PluggedFiles f;
  f.Write(ca1.root, ca1.root_key, ca1.root.ToPem());
  const std::string key_pem = ReadAll(f.files.signing_key);
  const std::string key_body = key_pem.substr(key_pem.find('\n') + 1, 40);
  const std::string fp = PluggedFilesFingerprint(f.files);
  CHECK(fp.find(key_body) == std::string::npos);
  CHECK(fp.find(Must(pki::Sha256Hex(key_pem))) != std::string::npos);
  CHECK(fp.size() <= 4 * 65);  // four SHA-256 digests in hex

  // Rewriting the same content is no change; a different key is, and so is one more byte.
  WriteFile(f.files.signing_key, key_pem);
  CHECK(PluggedFilesFingerprint(f.files) == fp);
  WriteFile(f.files.signing_key, Must(ca2.root_key.ToPem()).str());
  CHECK(PluggedFilesFingerprint(f.files) != fp);
  f.Write(ca1.root, ca1.root_key, ca1.root.ToPem() + "\n");
  CHECK(PluggedFilesFingerprint(f.files) != fp);
}
