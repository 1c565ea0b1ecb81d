// The CaStore contract (ca/core/ca_store.h), one suite run against every implementation: the
// local directory and the Kubernetes Secret (on the fake API server).
#include <atomic>
#include <catch2/catch.hpp>
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

}  // namespace

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
