#include "ca/local/local_backend.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>
#include <type_traits>

#include "base/log.h"
#include "ca/controller/controller.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "pki/verify.h"
#include "tests/ca/fakes.h"
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
namespace fs = std::filesystem;

namespace {

const bool kQuiet = ConfigureLogging("error", false).ok();

static_assert(!std::is_copy_constructible_v<WorkloadSecret>,
              "a workload key is copied only by Clone(), never silently");

WorkloadSecret Content(const std::string& tag, const std::string& version = "") {
  return {"chain " + tag, SecretString("-----BEGIN PRIVATE KEY----- key " + tag), "root " + tag,
          version};
}

// The same contract runs against the fake and the local store.
struct StoreUnderTest {
  TempDir dir;
  std::unique_ptr<SecretStore> store;
  explicit StoreUnderTest(bool local) {
    if (local) {
      auto s = std::make_unique<LocalSecretStore>(dir.path());
      REQUIRE(s->Start().ok());
      store = std::move(s);
    } else {
      store = std::make_unique<testing::FakeSecretStore>();
    }
  }
  ~StoreUnderTest() { store->Stop(); }
};

}  // namespace

TEST_CASE("secret store contract: create, get, conflict, update, delete", "[local][contract]") {
  const bool local = GENERATE(false, true);
  CAPTURE(local);
  StoreUnderTest t(local);
  SecretStore& s = *t.store;
  const ServiceAccountKey k{"ns1", "sa-a"};

  CHECK(s.Get(k).status().code() == Code::kNotFound);
  CHECK(s.Update(k, Content("x")).code() == Code::kNotFound);
  CHECK(s.Delete(k).code() == Code::kNotFound);

  REQUIRE(s.Create(k, Content("1")).ok());
  CHECK(s.Create(k, Content("2")).code() == Code::kAlreadyExists);
  auto got = Must(s.Get(k));
  CHECK(got.cert_chain_pem == "chain 1");
  CHECK(got.key_pem.str() == "-----BEGIN PRIVATE KEY----- key 1");
  CHECK(got.root_cert_pem == "root 1");
  CHECK_FALSE(got.version.empty());
  CHECK(Must(s.List()) == std::vector<ServiceAccountKey>{k});

  CHECK(s.Update(k, Content("2", "stale-version")).code() == Code::kAborted);
  REQUIRE(s.Update(k, Content("2", got.version)).ok());
  auto got2 = Must(s.Get(k));
  CHECK(got2.cert_chain_pem == "chain 2");
  CHECK(got2.version != got.version);
  CHECK(s.Update(k, Content("3", got.version)).code() == Code::kAborted);  // old version

  REQUIRE(s.Delete(k).ok());
  CHECK(s.Get(k).status().code() == Code::kNotFound);
  CHECK(Must(s.List()).empty());
}

TEST_CASE("local secrets use kubelet's layout with the key 0600", "[local]") {
  TempDir dir;
  LocalSecretStore s(dir.path());
  REQUIRE(s.Start().ok());
  REQUIRE(s.Create({"ns1", "sa-a"}, Content("1")).ok());
  const std::string d = dir / "secrets/ns1/istio.sa-a";
  CHECK(fs::is_symlink(d + "/..data"));
  for (const char* f : {"cert-chain.pem", "key.pem", "root-cert.pem"}) {
    CHECK(fs::read_symlink(d + "/" + f) == fs::path("..data") / f);
  }
  struct stat st;
  REQUIRE(stat((d + "/key.pem").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(ReadAll(d + "/root-cert.pem") == "root 1");
  // Only one generation stays after updates.
  auto v = Must(s.Get({"ns1", "sa-a"})).version;
  REQUIRE(s.Update({"ns1", "sa-a"}, Content("2", v)).ok());
  int generations = 0;
  for (const auto& e : fs::directory_iterator(d)) {
    generations += e.is_directory() && !e.is_symlink();
  }
  CHECK(generations == 1);
  s.Stop();
}

TEST_CASE("a reader never sees a key from one publication with a chain from another",
          "[local][atomic]") {
  TempDir dir;
  LocalSecretStore s(dir.path());
  REQUIRE(s.Start().ok());
  const ServiceAccountKey k{"ns1", "sa-a"};
  REQUIRE(s.Create(k, Content("0")).ok());
  const std::string d = dir / "secrets/ns1/istio.sa-a";
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, torn{0};
  std::thread reader([&] {
    while (!done) {
      // How a consumer reads a consistent set: resolve ..data once, read from there.
      std::error_code ec;
      const fs::path gen = fs::read_symlink(d + "/..data", ec);
      if (ec) continue;
      const std::string chain = ReadAll(d + "/" + gen.string() + "/cert-chain.pem");
      const std::string key = ReadAll(d + "/" + gen.string() + "/key.pem");
      // A generation removed after a newer swap reads as missing (retry), never as mixed.
      if (chain.empty() || key.empty()) continue;
      reads++;
      if (chain.substr(6) != key.substr(key.rfind(' ') + 1)) torn++;
    }
  });
  for (int i = 1; i <= 300; ++i) {
    auto v = Must(s.Get(k)).version;
    REQUIRE(s.Update(k, Content(std::to_string(i), v)).ok());
  }
  done = true;
  reader.join();
  CHECK(reads > 0);
  CHECK(torn == 0);
  s.Stop();
}

TEST_CASE("a crash between writing key and certificate never publishes a mismatched pair",
          "[local][fault]") {
  TempDir dir;
  {
    LocalSecretStore s(dir.path());
    REQUIRE(s.Start().ok());
    REQUIRE(s.Create({"ns1", "sa-a"}, Content("old")).ok());
    s.Stop();
  }
  const std::string d = dir / "secrets/ns1/istio.sa-a";
  // What a crash mid-publication leaves: a generation with only the new key, and a half-built
  // new secret directory for another SA.
  WriteFile(d + "/..g999.1.1/key.pem", "-----BEGIN PRIVATE KEY----- key new");
  WriteFile(dir / "secrets/ns1/.tmp.istio.sa-b.999.1/..g1/key.pem", "partial");

  LocalSecretStore s(dir.path());  // restart
  REQUIRE(s.Start().ok());
  auto got = Must(s.Get({"ns1", "sa-a"}));
  CHECK(got.cert_chain_pem == "chain old");
  CHECK(got.key_pem.str() == "-----BEGIN PRIVATE KEY----- key old");
  CHECK(ReadAll(d + "/key.pem") == "-----BEGIN PRIVATE KEY----- key old");
  CHECK_FALSE(fs::exists(dir / "secrets/ns1/.tmp.istio.sa-b.999.1"));
  CHECK(Must(s.List()).size() == 1);
  REQUIRE(s.Update({"ns1", "sa-a"}, Content("new", got.version)).ok());
  CHECK_FALSE(fs::exists(d + "/..g999.1.1"));  // the orphan is gone after the next publication
  s.Stop();
}

TEST_CASE("corrupted secret directories read as broken and are repaired by Update",
          "[local][fault]") {
  struct Row {
    const char* name;
    std::function<void(const std::string&)> corrupt;
  };
  auto row = GENERATE(
      Row{"..data removed", [](const std::string& d) { fs::remove(d + "/..data"); }},
      Row{"chain link removed", [](const std::string& d) { fs::remove(d + "/cert-chain.pem"); }},
      Row{"key overwritten through the link",
          [](const std::string& d) { WriteFile(d + "/key.pem", "junk"); }},
      Row{"directory replaced by a file", [](const std::string& d) {
            fs::remove_all(d);
            WriteFile(d, "junk");
          }});
  CAPTURE(row.name);
  TempDir dir;
  LocalSecretStore s(dir.path());
  REQUIRE(s.Start().ok());
  const ServiceAccountKey k{"ns1", "sa-a"};
  REQUIRE(s.Create(k, Content("1")).ok());
  row.corrupt(dir / "secrets/ns1/istio.sa-a");
  auto broken = Must(s.Get(k));
  const bool incomplete = broken.cert_chain_pem != "chain 1" ||
                          broken.key_pem.str() != "-----BEGIN PRIVATE KEY----- key 1";
  CHECK(incomplete);
  REQUIRE(s.Update(k, Content("2", broken.version)).ok());
  auto fixed = Must(s.Get(k));
  CHECK(fixed.cert_chain_pem == "chain 2");
  CHECK(fixed.key_pem.str() == "-----BEGIN PRIVATE KEY----- key 2");
  CHECK(ReadAll(dir / "secrets/ns1/istio.sa-a/cert-chain.pem") == "chain 2");
  s.Stop();
}

TEST_CASE("service accounts are files; invalid names and dotfiles are ignored", "[local]") {
  TempDir dir;
  WriteFile(dir / "serviceaccounts/ns1/sa-a", "");
  WriteFile(dir / "serviceaccounts/ns1/.sa-b.swp", "");
  WriteFile(dir / "serviceaccounts/ns1/Bad_Name", "");
  WriteFile(dir / "serviceaccounts/NS2/sa-c", "");
  WriteFile(dir / "serviceaccounts/ns3/my.dotted.sa", "");
  LocalServiceAccounts sas(dir.path(), 1h);  // polls only when told to
  std::vector<ServiceAccountKey> notified;
  sas.SetHandler([&](const ServiceAccountKey& k) { notified.push_back(k); });
  REQUIRE(sas.Start().ok());
  CHECK(sas.HasSynced());
  CHECK(Must(sas.List()) ==
        std::vector<ServiceAccountKey>{{"ns1", "sa-a"}, {"ns3", "my.dotted.sa"}});
  notified.clear();
  WriteFile(dir / "serviceaccounts/ns1/sa-d", "");
  fs::remove(dir / "serviceaccounts/ns1/sa-a");
  sas.PollOnce();
  CHECK(notified == std::vector<ServiceAccountKey>{{"ns1", "sa-a"}, {"ns1", "sa-d"}});
  CHECK(Must(sas.Exists({"ns1", "sa-d"})));
  CHECK_FALSE(Must(sas.Exists({"ns1", "sa-a"})));
  CHECK_FALSE(Must(sas.Exists({"ns1", "../../etc"})));
  sas.Stop();
}

TEST_CASE("kubernetes name rules", "[local]") {
  CHECK(ValidNamespaceName("istio-system"));
  CHECK_FALSE(ValidNamespaceName("a.b"));
  CHECK_FALSE(ValidNamespaceName(std::string(64, 'a')));
  CHECK_FALSE(ValidNamespaceName("-a"));
  CHECK(ValidServiceAccountName("a.b-c"));
  CHECK_FALSE(ValidServiceAccountName("a..b"));
  CHECK_FALSE(ValidServiceAccountName("A"));
  CHECK_FALSE(ValidServiceAccountName(""));
}

namespace {

struct LocalFixture {
  LocalFixture() : controller(authority, sas, store, clock, metrics, Options()) {
    authority.SetBundle(std::make_shared<CaBundle>(CaBundle{ca.signer, {}, {ca.root}}));
    REQUIRE(sas.Start().ok());
    REQUIRE(store.Start().ok());
  }
  ~LocalFixture() {
    sas.Stop();
    store.Stop();
  }
  static ControllerOptions Options() {
    ControllerOptions o;
    o.rotation.jitter = 0;
    return o;
  }
  SyncStats Sync() {
    sas.PollOnce();
    return controller.SyncAll();
  }
  TempDir dir;
  FakeClock clock{T0()};
  testing::TestCa ca;
  MetricsRegistry metrics;
  Authority authority{IssuancePolicy{}, clock};
  LocalServiceAccounts sas{dir.path(), 1h};
  LocalSecretStore store{dir.path(), 1h};
  Controller controller;
};

}  // namespace

TEST_CASE("controller on a directory: files verify with the right SPIFFE ID",
          "[local][controller]") {
  LocalFixture f;
  WriteFile(f.dir / "serviceaccounts/default/web", "");
  CHECK(f.Sync().created == 1);
  const std::string d = f.dir / "secrets/default/istio.web";
  auto chain = Must(pki::Certificate::ParsePemChain(ReadAll(d + "/cert-chain.pem")));
  auto roots = Must(pki::Certificate::ParsePemChain(ReadAll(d + "/root-cert.pem")));
  auto key = Must(pki::PrivateKey::FromPem(ReadAll(d + "/key.pem")));
  CHECK(chain[0].UriSans()[0] == "spiffe://cluster.local/ns/default/sa/web");
  CHECK(pki::SamePublicKey(key.get(), chain[0].PublicKey()));
  CHECK(pki::VerifyChain(chain[0], {}, roots, T0()).ok());

  fs::remove(f.dir / "serviceaccounts/default/web");
  CHECK(f.Sync().deleted == 1);
  CHECK_FALSE(fs::exists(d));
}

TEST_CASE("an unwritable secrets directory fails writes without stopping the controller",
          "[local][fault]") {
  LocalFixture f;
  WriteFile(f.dir / "serviceaccounts/ns1/sa-a", "");
  WriteFile(f.dir / "serviceaccounts/ns2/sa-b", "");
  // A regular file where the namespace's directory belongs: unlike a read-only directory, root
  // cannot write through it either, so the fault is real in every container.
  WriteFile(f.dir / "secrets/ns1", "not a directory");
  {
    SyncStats s = f.Sync();
    CHECK(s.failed == 1);   // ns1 cannot be written
    CHECK(s.created == 1);  // ns2 still is
    CHECK(fs::exists(f.dir / "secrets/ns2/istio.sa-b/cert-chain.pem"));
  }
  {
    // A read-only directory as well, where the user is subject to permissions (not root).
    fs::remove(f.dir / "secrets/ns1");
    fs::create_directories(f.dir / "secrets/ns1");
    testing::ReadOnlyDir ro(f.dir / "secrets/ns1");
    if (ro.effective()) {
      f.clock.Advance(2s);  // past the backoff
      CHECK(f.Sync().failed == 1);
    }
  }
  f.clock.Advance(1min);  // past the backoff (two failures when the directory was read-only)
  CHECK(f.Sync().created == 1);
  CHECK(fs::exists(f.dir / "secrets/ns1/istio.sa-a/cert-chain.pem"));
}

TEST_CASE("a corrupted secret on disk is refreshed on the next resync",
          "[local][controller][fault]") {
  LocalFixture f;
  WriteFile(f.dir / "serviceaccounts/ns1/sa-a", "");
  f.Sync();
  WriteFile(f.dir / "secrets/ns1/istio.sa-a/cert-chain.pem", "garbage");
  CHECK(f.Sync().refreshed == 1);
  CHECK(Must(pki::Certificate::ParsePemChain(
                 ReadAll(f.dir / "secrets/ns1/istio.sa-a/cert-chain.pem")))
            .size() == 1);
}
