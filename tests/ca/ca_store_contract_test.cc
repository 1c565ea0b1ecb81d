// The CaStore contract (ca/core/ca_store.h), one suite run against every implementation: the
// local directory and the Kubernetes Secret (on the fake API server).
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "ca/core/ca_store.h"
#include "ca/kube/ca_store.h"
#include "ca/local/ca_store.h"
#include "tests/ca/temp_dir.h"
#include "tests/k8s/fixture.h"

using namespace istioca;
using namespace istioca::ca;

namespace {

using OpenStore = std::function<std::unique_ptr<CaStore>()>;

StoredCa Sample(const std::string& tag) {
  return StoredCa{"-----BEGIN CERTIFICATE-----\ncert " + tag + "\n",
                  "-----BEGIN PRIVATE KEY-----\nkey " + tag + "\n",
                  "-----BEGIN CERTIFICATE-----\nroot " + tag + "\n",
                  "-----BEGIN CERTIFICATE-----\nchain " + tag + "\n"};
}

void CheckSame(const StoredCa& got, const StoredCa& want) {
  CHECK(got.ca_cert_pem == want.ca_cert_pem);
  CHECK(got.ca_key_pem == want.ca_key_pem);
  CHECK(got.root_cert_pem == want.root_cert_pem);
  CHECK(got.cert_chain_pem == want.cert_chain_pem);
}

// `open` returns a new store on the same backing storage (another replica, or a restart).
void CheckCaStoreContract(const OpenStore& open) {
  std::unique_ptr<CaStore> store = open();
  CHECK(store->Load().status().code() == Code::kNotFound);

  // Two replicas race: exactly one Create wins, the other is told AlreadyExists.
  std::vector<Status> results(2);
  std::vector<std::unique_ptr<CaStore>> replicas;
  replicas.push_back(open());
  replicas.push_back(open());
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] { results[i] = replicas[i]->Create(Sample(std::to_string(i))); });
  }
  for (auto& t : threads) t.join();
  INFO(results[0].ToString() << " / " << results[1].ToString());
  const int winner = results[0].ok() ? 0 : 1;
  CHECK(results[winner].ok());
  CHECK(results[1 - winner].code() == Code::kAlreadyExists);

  // Every instance, old or new, loads the winner's CA; a later Create changes nothing.
  for (CaStore* s : {store.get(), replicas[0].get(), replicas[1].get()}) {
    auto loaded = s->Load();
    REQUIRE(loaded.ok());
    CheckSame(*loaded, Sample(std::to_string(winner)));
  }
  CHECK(store->Create(Sample("late")).code() == Code::kAlreadyExists);
  auto restarted = open()->Load();
  REQUIRE(restarted.ok());
  CheckSame(*restarted, Sample(std::to_string(winner)));
}

using Data = std::map<std::string, std::string>;

// The record half of the contract: compare-and-swap on an opaque version. `open` returns a store
// on fresh, empty storage shared by every call.
void CheckRecordContract(const OpenStore& open) {
  std::unique_ptr<CaStore> store = open();
  std::unique_ptr<CaStore> other = open();
  CHECK(store->LoadRecord().status().code() == Code::kNotFound);

  // "" creates; a second "" (another writer that also saw nothing) loses.
  const Data v1{{"ca-cert.pem", "cert 1"}, {"ca-key.pem", "key 1"}, {"trust-state.json", "{}"}};
  REQUIRE(store->StoreRecord(v1, "").ok());
  CHECK(other->StoreRecord({{"ca-cert.pem", "theirs"}}, "").code() == Code::kAborted);
  auto r1 = other->LoadRecord();
  REQUIRE(r1.ok());
  CHECK(r1->data == v1);
  CHECK_FALSE(r1->version.empty());

  // The current version wins and bumps the version.
  const Data v2{{"ca-cert.pem", "cert 2"}, {"ca-key.pem", "key 2"}, {"next-ca-key.pem", "nk"}};
  REQUIRE(other->StoreRecord(v2, r1->version).ok());
  auto r2 = store->LoadRecord();
  REQUIRE(r2.ok());
  CHECK(r2->data == v2);
  CHECK(r2->version != r1->version);

  // A stale version (the writer read before someone else wrote) loses; nothing changes.
  Status stale = store->StoreRecord({{"ca-cert.pem", "stale"}}, r1->version);
  INFO(stale.ToString());
  CHECK(stale.code() == Code::kAborted);
  CHECK(store->StoreRecord({{"ca-cert.pem", "stale"}}, "").code() == Code::kAborted);
  auto after = open()->LoadRecord();
  REQUIRE(after.ok());
  CHECK(after->data == v2);
  CHECK(after->version == r2->version);
}

// A CA stored by Create() (or by Istio) reads as a record with Istio's keys, at a version a
// StoreRecord can replace (the upgrade to the trust lifecycle).
void CheckLegacyRecordContract(const OpenStore& open, bool legacy_version_empty) {
  std::unique_ptr<CaStore> store = open();
  REQUIRE(store->Create(Sample("legacy")).ok());
  auto legacy = open()->LoadRecord();
  REQUIRE(legacy.ok());
  CHECK(legacy->data.at("ca-cert.pem") == Sample("legacy").ca_cert_pem);
  CHECK(legacy->data.at("ca-key.pem") == Sample("legacy").ca_key_pem);
  CHECK(legacy->data.at("root-cert.pem") == Sample("legacy").root_cert_pem);
  CHECK(legacy->data.at("cert-chain.pem") == Sample("legacy").cert_chain_pem);
  CHECK(legacy->version.empty() == legacy_version_empty);

  Data upgraded = legacy->data;
  upgraded["trust-state.json"] = "{\"stage\":\"stable\"}";
  REQUIRE(store->StoreRecord(upgraded, legacy->version).ok());
  // The loser of the same upgrade is told so and changes nothing.
  CHECK(open()->StoreRecord(legacy->data, legacy->version).code() == Code::kAborted);
  auto now = open()->LoadRecord();
  REQUIRE(now.ok());
  CHECK(now->data == upgraded);
  CHECK(now->version != legacy->version);
  // Istio's Load() still reads the active signer from the upgraded record.
  auto istio = open()->Load();
  REQUIRE(istio.ok());
  CHECK(istio->ca_cert_pem == Sample("legacy").ca_cert_pem);
  CHECK(istio->ca_key_pem == Sample("legacy").ca_key_pem);
}

int ModeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return st.st_mode & 0777;
}

}  // namespace

TEST_CASE("CaStore record contract: LocalCaStore", "[castore][contract]") {
  istioca::testing::TempDir d;
  CheckRecordContract([&] { return std::make_unique<LocalCaStore>(d / "ca"); });
}

TEST_CASE("CaStore record contract: KubeCaStore", "[castore][contract]") {
  k8s::testing::FakeCluster cluster;
  CheckRecordContract([&]() -> std::unique_ptr<CaStore> {
    return std::make_unique<KubeCaStore>(std::shared_ptr<k8s::Api>(cluster.Client()),
                                         "istio-system");
  });
}

TEST_CASE("CaStore record contract: a legacy LocalCaStore reads as a record at version \"\"",
          "[castore][contract]") {
  istioca::testing::TempDir d;
  CheckLegacyRecordContract([&] { return std::make_unique<LocalCaStore>(d / "ca"); },
                            /*legacy_version_empty=*/true);
}

TEST_CASE("CaStore record contract: a legacy istio-ca-secret reads at its resourceVersion",
          "[castore][contract]") {
  k8s::testing::FakeCluster cluster;
  CheckLegacyRecordContract(
      [&]() -> std::unique_ptr<CaStore> {
        return std::make_unique<KubeCaStore>(std::shared_ptr<k8s::Api>(cluster.Client()),
                                             "istio-system");
      },
      /*legacy_version_empty=*/false);
}

TEST_CASE("LocalCaStore record: key material and record.json are 0600, dropped keys' files go",
          "[castore]") {
  istioca::testing::TempDir d;
  LocalCaStore store(d / "ca");
  REQUIRE(store
              .StoreRecord({{"ca-cert.pem", "cert"},
                            {"ca-key.pem", "key"},
                            {"next-ca-cert.pem", "next cert"},
                            {"next-ca-key.pem", "next key"},
                            {"trust-state.json", "{}"}},
                           "")
              .ok());
  CHECK(ModeOf(d / "ca/record.json") == 0600);
  CHECK(ModeOf(d / "ca/ca-key.pem") == 0600);
  CHECK(ModeOf(d / "ca/next-ca-key.pem") == 0600);
  CHECK(ModeOf(d / "ca/ca-cert.pem") == 0644);
  CHECK(ModeOf(d / "ca/next-ca-cert.pem") == 0644);
  CHECK(istioca::testing::ReadAll(d / "ca/next-ca-key.pem") == "next key");

  // The rotation ends: next-* leave the record, and their files leave the directory.
  auto r = store.LoadRecord();
  REQUIRE(r.ok());
  REQUIRE(store
              .StoreRecord({{"ca-cert.pem", "next cert"},
                            {"ca-key.pem", "next key"},
                            {"trust-state.json", "{}"}},
                           r->version)
              .ok());
  CHECK_FALSE(std::filesystem::exists(d / "ca/next-ca-cert.pem"));
  CHECK_FALSE(std::filesystem::exists(d / "ca/next-ca-key.pem"));
  CHECK(istioca::testing::ReadAll(d / "ca/ca-key.pem") == "next key");
  CHECK(ModeOf(d / "ca/ca-key.pem") == 0600);
  CHECK(ModeOf(d / "ca/record.json") == 0600);
}

TEST_CASE("CaStore contract: LocalCaStore", "[castore][contract]") {
  istioca::testing::TempDir d;
  CheckCaStoreContract([&] { return std::make_unique<LocalCaStore>(d / "ca"); });
}

TEST_CASE("CaStore contract: KubeCaStore", "[castore][contract]") {
  k8s::testing::FakeCluster cluster;
  CheckCaStoreContract([&]() -> std::unique_ptr<CaStore> {
    return std::make_unique<KubeCaStore>(std::shared_ptr<k8s::Api>(cluster.Client()),
                                         "istio-system");
  });
}
