// tests/trust/manager_fixture.h — a TrustManager on an in-memory CaStore, driven by a FakeClock.
//
// MemoryCaStore behaves like LocalCaStore (tests/ca/ca_store_contract_test.cc holds both to one
// contract): a Create() or Istio-written CA reads at version "", every StoreRecord bumps the
// version, a stale version is kAborted. It can let "another writer" in between a caller's load and
// its write (BeforeNextStore). ManagerFixture owns the store, the clock, the metrics and hooks
// whose answers the test sets; Restart() replaces the Authority and the TrustManager as a process
// restart would, on the same store.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/metrics.h"
#include "base/time.h"
#include "ca/core/authority.h"
#include "ca/core/ca_store.h"
#include "ca/trust/manager.h"
#include "ca/trust/state.h"
#include "pki/key.h"
#include "tests/testing/test_ca.h"

namespace istioca::ca::trust::testing {

using istioca::testing::Must;
using istioca::testing::T0;
using namespace std::chrono_literals;

class MemoryCaStore final : public CaStore {
 public:
  using Data = std::map<std::string, std::string>;

  Result<StoredCa> Load() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!data_) return NotFound("nothing stored");
    auto get = [&](const char* k) {
      auto it = data_->find(k);
      return it == data_->end() ? std::string() : it->second;
    };
    return StoredCa{get("ca-cert.pem"), get("ca-key.pem"), get("root-cert.pem"),
                    get("cert-chain.pem")};
  }
  Status Create(const StoredCa& ca) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (data_) return Status(Code::kAlreadyExists, "a CA is already stored");
    data_ = Data{{"ca-cert.pem", ca.ca_cert_pem},
                 {"ca-key.pem", ca.ca_key_pem},
                 {"root-cert.pem", ca.root_cert_pem},
                 {"cert-chain.pem", ca.cert_chain_pem}};
    version_.clear();
    return OkStatus();
  }
  Result<StoredRecord> LoadRecord() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!data_) return NotFound("nothing stored");
    return StoredRecord{*data_, version_};
  }
  Status StoreRecord(const Data& data, const std::string& expected_version) override {
    std::function<void()> before;
    {
      std::lock_guard<std::mutex> lock(mu_);
      before = std::exchange(before_next_store_, nullptr);
    }
    if (before) before();  // another writer gets in first (it may call StoreRecord itself)
    std::lock_guard<std::mutex> lock(mu_);
    if (version_ != expected_version) {
      ++aborted_;
      return Status(Code::kAborted, "the record changed (version " + version_ + ", expected " +
                                        expected_version + ")");
    }
    data_ = data;
    version_ = std::to_string(++counter_);
    ++writes_;
    return OkStatus();
  }

  // A CA as Istio (or an istio-ca before the trust lifecycle) left it: its keys, version "".
  void SetLegacy(Data data) {
    std::lock_guard<std::mutex> lock(mu_);
    data_ = std::move(data);
    version_.clear();
  }
  void BeforeNextStore(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    before_next_store_ = std::move(fn);
  }
  int writes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return writes_;
  }
  int aborted() const {
    std::lock_guard<std::mutex> lock(mu_);
    return aborted_;
  }
  std::string version() const {
    std::lock_guard<std::mutex> lock(mu_);
    return version_;
  }

 private:
  mutable std::mutex mu_;
  std::optional<Data> data_;
  std::string version_;
  uint64_t counter_ = 0;
  int writes_ = 0;
  int aborted_ = 0;
  std::function<void()> before_next_store_;
};

inline const bool kQuietLogs = ConfigureLogging("error", false).ok();

inline pki::Certificate CertOf(const std::string& pem) {
  return Must(pki::Certificate::ParsePemChain(pem)).front();
}

inline ManagerOptions SelfSignedManagerOptions() {
  ManagerOptions o;
  o.policy.propagation_delay = 2min;
  o.self_signed = true;
  o.self_signed_options = {"cluster.local", 24h * 365 * 10, pki::KeyType::kEcP256};
  return o;
}

struct ManagerFixture {
  // What the progress hook reports for whatever generation it is asked about.
  struct Progress {
    size_t updated = 0;
    size_t total = 5;
    std::optional<TimePoint> last_write;
  };

  FakeClock clock{T0()};
  MemoryCaStore store;
  MetricsRegistry metrics;
  ManagerOptions options;
  Progress progress;
  std::vector<std::pair<std::string, uint64_t>> published;  // hooks.publish calls
  std::unique_ptr<Authority> authority;
  std::unique_ptr<TrustManager> manager;

  explicit ManagerFixture(ManagerOptions o = SelfSignedManagerOptions()) : options(std::move(o)) {}

  ManagerHooks Hooks() {
    ManagerHooks h;
    h.progress = [this](const std::string&, uint64_t generation) {
      return Publication{generation, progress.updated, progress.total, progress.last_write};
    };
    h.publish = [this](const std::string& bundle, uint64_t generation) {
      published.emplace_back(bundle, generation);
    };
    return h;
  }

  // A process start: a fresh Authority and TrustManager on the same store.
  void Start(bool leading = true) {
    manager.reset();
    authority = std::make_unique<Authority>(IssuancePolicy{}, clock);
    manager = std::make_unique<TrustManager>(*authority, store, clock, metrics, options, Hooks());
    Status s = manager->Init();
    INFO(s.ToString());
    REQUIRE(s.ok());
    manager->SetLeading(leading);
  }
  void Restart() { Start(); }

  void Tick() {
    Status s = manager->Tick();
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  // Every object carries the current generation, the last written now.
  void Distributed() { progress = {5, 5, clock.Now()}; }

  TrustState Stored() const {
    auto record = store.LoadRecord();
    REQUIRE(record.ok());
    auto state = ParseTrustState(record->data);
    INFO(state.status().ToString());
    REQUIRE(state.ok());
    return std::move(state).value();
  }
  pki::Certificate Signer() const { return authority->Bundle()->signer.cert; }
  size_t Roots() const { return authority->Bundle()->roots.size(); }
  // A workload certificate signed through the Authority, as the controller or gRPC would.
  pki::Certificate Sign(Duration ttl = 24h) {
    auto key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
    auto issued = authority->Sign(key.get(), {"spiffe://cluster.local/ns/a/sa/b"}, {}, ttl);
    INFO(issued.status().ToString());
    REQUIRE(issued.ok());
    return issued->leaf;
  }
  double StageMetric() {
    return metrics.GetGauge("istio_ca_trust_stage", "Trust lifecycle stage.").Value();
  }
  size_t PublishCalls(uint64_t generation) const {
    size_t n = 0;
    for (const auto& [bundle, g] : published) n += g == generation;
    return n;
  }
};

}  // namespace istioca::ca::trust::testing
