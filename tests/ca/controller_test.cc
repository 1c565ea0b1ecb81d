#include "ca/controller/controller.h"

#include <catch2/catch.hpp>

#include "base/log.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "pki/verify.h"
#include "tests/ca/fakes.h"
#include "tests/testing/test_ca.h"
#include "tests/testing/wait.h"

using namespace istioca;
using namespace istioca::ca;
using namespace std::chrono_literals;
using istioca::testing::FakeSecretStore;
using istioca::testing::FakeServiceAccounts;
using istioca::testing::Must;
using istioca::testing::T0;

namespace {

// Controller logs are for operators; keep test output to failures.
const bool kQuiet = ConfigureLogging("error", false).ok();

std::shared_ptr<const CaBundle> BundleOf(const testing::TestCa& ca) {
  return std::make_shared<CaBundle>(CaBundle{ca.signer, {}, {ca.root}});
}

struct ControllerFixture {
  explicit ControllerFixture(ControllerOptions o = Options())
      : controller(authority, sas, store, clock, metrics, o) {
    authority.SetBundle(BundleOf(ca));
  }
  static ControllerOptions Options() {
    ControllerOptions o;
    o.rotation.jitter = 0;  // exact times in tests; jitter has its own tests
    o.workload_ttl = 24h;
    o.workers = 2;
    return o;
  }
  static IssuancePolicy Policy() {
    IssuancePolicy p;
    p.append_dns_names = true;
    p.custom_dns_names = {{"sa-a.ns1", {"a.example.com"}}};
    return p;
  }
  SyncStats Sync() { return controller.SyncAll(); }
  double Counter(const std::string& name, const Labels& l = {}) {
    return metrics.GetCounter(name, "", l).Value();
  }
  pki::Certificate LeafOf(const std::string& ns, const std::string& sa) {
    auto s = store.Peek(ns, sa);
    REQUIRE(s.has_value());
    return Must(pki::Certificate::ParsePemChain(s->cert_chain_pem)).front();
  }

  FakeClock clock{T0()};
  testing::TestCa ca;
  MetricsRegistry metrics;
  Authority authority{Policy(), clock};
  FakeServiceAccounts sas;
  FakeSecretStore store;
  Controller controller;
};

}  // namespace

TEST_CASE("a new service account gets a secret with a verifiable SPIFFE certificate",
          "[controller]") {
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  SyncStats s = f.Sync();
  CHECK(s.created == 1);
  auto secret = f.store.Peek("ns1", "sa-a");
  REQUIRE(secret.has_value());
  const auto chain = Must(pki::Certificate::ParsePemChain(secret->cert_chain_pem));
  CHECK(chain[0].UriSans() == std::vector<std::string>{"spiffe://cluster.local/ns/ns1/sa/sa-a"});
  CHECK(chain[0].DnsSans() == std::vector<std::string>{"a.example.com"});
  CHECK(secret->root_cert_pem == f.ca.root.ToPem());
  auto key = Must(pki::PrivateKey::FromPem(secret->key_pem.str()));
  CHECK(pki::SamePublicKey(key.get(), chain[0].PublicKey()));
  CHECK(pki::VerifyChain(chain[0], {}, {f.ca.root}, T0()).ok());
  CHECK(f.Counter("citadel_secret_controller_svc_acc_created_cert_count") == 1);
  CHECK(f.controller.Synced());
  CHECK(f.controller.EarliestExpiry() == chain[0].NotAfter());
}

TEST_CASE("an unchanged secret is left alone on resync", "[controller]") {
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.Sync();
  f.clock.Advance(1h);
  SyncStats s = f.Sync();
  CHECK(s.unchanged == 1);
  CHECK(f.store.Writes("ns1/sa-a") == 1);
}

TEST_CASE("a workload cert is refreshed once it enters its grace period", "[controller]") {
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.Sync();
  REQUIRE(f.store.Writes("ns1/sa-a") == 1);
  f.clock.Advance(11h);
  f.Sync();
  CHECK(f.store.Writes("ns1/sa-a") == 1);
  f.clock.Advance(2h);
  f.Sync();
  CHECK(f.store.Writes("ns1/sa-a") == 2);
  CHECK(f.LeafOf("ns1", "sa-a").NotAfter() > T0() + 36h);
}

TEST_CASE("a clock jump past expiry refreshes at once", "[controller][fault]") {
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.Sync();
  f.clock.Advance(24h * 30);
  CHECK(f.Sync().refreshed == 1);
  CHECK(f.LeafOf("ns1", "sa-a").NotAfter() > f.clock.Now());
}

TEST_CASE("a deleted service account loses its secret", "[controller]") {
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.Sync();
  f.sas.Remove("ns1", "sa-a");
  CHECK(f.controller.SyncKeys({{"ns1", "sa-a"}}).deleted == 1);
  CHECK_FALSE(f.store.Peek("ns1", "sa-a").has_value());
  CHECK(f.Counter("citadel_secret_controller_svc_acc_deleted_cert_count") == 1);
}

TEST_CASE("a secret deleted while its SA exists is re-created", "[controller]") {
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.Sync();
  f.store.Erase("ns1", "sa-a");
  CHECK(f.Sync().created == 1);
  CHECK(f.store.Peek("ns1", "sa-a").has_value());
  CHECK(f.Counter("citadel_secret_controller_secret_deleted_cert_count") == 1);
}

TEST_CASE("secrets of deleted service accounts are never re-created (Istio #4256, #9349)",
          "[controller][istio-bug]") {
  // Istio 0.6 always re-created a deleted secret; 0.7–1.0.5 meant to check that the SA exists
  // but tested the wrong value, with the same effect.
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.Sync();
  f.sas.Remove("ns1", "sa-a");
  f.store.Erase("ns1", "sa-a");  // secret deleted too (e.g. by the namespace cleanup)
  for (int i = 0; i < 3; ++i) {
    f.clock.Advance(1min);
    f.Sync();
    f.controller.SyncKeys({{"ns1", "sa-a"}});
  }
  CHECK_FALSE(f.store.Peek("ns1", "sa-a").has_value());
  CHECK(f.store.Writes("ns1/sa-a") == 1);
}

TEST_CASE("an orphaned secret (SA deleted while the controller was down) is deleted on resync",
          "[controller]") {
  ControllerFixture f;
  f.store.Put("ns1", "gone", {"x", SecretString("y"), "z", ""});
  CHECK(f.Sync().deleted == 1);
  CHECK(f.store.Size() == 0);
}

TEST_CASE("a root change refreshes every secret", "[controller]") {
  ControllerFixture f;
  for (int i = 0; i < 5; ++i) f.sas.Add("ns1", "sa-" + std::to_string(i));
  f.Sync();
  testing::TestCa other;
  f.authority.SetBundle(BundleOf(other));
  CHECK(f.Sync().refreshed == 5);
  for (int i = 0; i < 5; ++i) {
    CHECK(f.store.Peek("ns1", "sa-" + std::to_string(i))->root_cert_pem == other.root.ToPem());
  }
}

TEST_CASE("unparsable or foreign secret content is refreshed", "[controller][fault]") {
  // Rows transform the secret of the current run (Catch builds the generator once, so rows must
  // not capture one run's content for another).
  struct Row {
    const char* name;
    std::function<void(WorkloadSecret&, const testing::TestCa&)> corrupt;
  };
  auto row = GENERATE(
      Row{"garbage chain",
          [](WorkloadSecret& s, const testing::TestCa&) { s.cert_chain_pem = "garbage"; }},
      Row{"empty chain",
          [](WorkloadSecret& s, const testing::TestCa&) { s.cert_chain_pem.clear(); }},
      Row{"missing key, intact chain",
          [](WorkloadSecret& s, const testing::TestCa&) { s.key_pem = SecretString(); }},
      Row{"junk key, intact chain",
          [](WorkloadSecret& s, const testing::TestCa&) { s.key_pem = SecretString("junk"); }},
      Row{"another identity",
          [](WorkloadSecret& s, const testing::TestCa& ca) {
            auto k = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
            s.cert_chain_pem = ca.Leaf("spiffe://cluster.local/ns/ns1/sa/someone-else", k).ToPem();
            s.key_pem = Must(k.ToPem());
          }},
      Row{"old root",
          [](WorkloadSecret& s, const testing::TestCa&) { s.root_cert_pem = "stale"; }});
  CAPTURE(row.name);
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.Sync();
  WorkloadSecret content = *f.store.Peek("ns1", "sa-a");
  row.corrupt(content, f.ca);
  f.store.Put("ns1", "sa-a", std::move(content));
  CHECK(f.Sync().refreshed == 1);
  CHECK(f.LeafOf("ns1", "sa-a").UriSans()[0] == "spiffe://cluster.local/ns/ns1/sa/sa-a");
  CHECK_FALSE(f.store.Peek("ns1", "sa-a")->key_pem.empty());
}

TEST_CASE("store failures are retried with backoff and are never fatal", "[controller][fault]") {
  auto code = GENERATE(Code::kUnavailable, Code::kPermissionDenied, Code::kInternal);
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.store.FailNext(code, 3);
  CHECK(f.Sync().failed == 1);           // attempt 1 fails: retry in 1s
  CHECK(f.Sync().skipped_backoff == 1);  // not before the backoff
  f.clock.Advance(1s);
  CHECK(f.Sync().failed == 1);  // attempt 2 fails: retry in 2s
  f.clock.Advance(1s);
  CHECK(f.Sync().skipped_backoff == 1);
  f.clock.Advance(1s);
  CHECK(f.Sync().failed == 1);  // attempt 3 fails: retry in 4s
  f.clock.Advance(4s);
  CHECK(f.Sync().created == 1);
  CHECK(f.store.Peek("ns1", "sa-a").has_value());
}

TEST_CASE("a failing Get is retried and other keys proceed", "[controller][fault]") {
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.sas.Add("ns1", "sa-b");
  f.store.FailNextGet(Code::kUnavailable);
  SyncStats s = f.Sync();
  CHECK(s.failed == 1);
  CHECK(s.created == 1);
  f.clock.Advance(1s);
  CHECK(f.Sync().created == 1);
  CHECK(f.store.Size() == 2);
}

TEST_CASE("a conflicting update is requeued for a fresh read, not counted as a failure",
          "[controller]") {
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.Sync();
  f.clock.Advance(13h);
  f.store.FailNext(Code::kAborted);
  SyncStats s = f.Sync();
  CHECK(s.failed == 0);
  CHECK(f.store.Writes("ns1/sa-a") == 1);
  CHECK(f.controller.SyncKeys({{"ns1", "sa-a"}}).refreshed == 1);
}

TEST_CASE("signing errors are counted by cause", "[controller][fault]") {
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  // A CA that expired: Sign refuses, the secret is not written, the daemon carries on.
  f.clock.Advance(24h * 400);
  CHECK(f.Sync().failed == 1);
  CHECK(f.Counter("citadel_secret_controller_csr_sign_err_count", {{"error", "CA_NOT_READY"}}) ==
        1);
  CHECK_FALSE(f.store.Peek("ns1", "sa-a").has_value());
}

TEST_CASE("a cert clamped by an expiring CA is not reissued in a loop", "[controller]") {
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  // The test root lives 365 days; 1 hour before its end every new cert is clamped to 1 hour,
  // inside the 10-minute.. grace of a 24h lifetime.
  f.clock.Set(T0() + 24h * 365 - 1h);
  f.Sync();
  f.clock.Advance(1s);
  CHECK(f.controller.SyncKeys({{"ns1", "sa-a"}}).refreshed == 0);
  CHECK(f.store.Writes("ns1/sa-a") == 1);
}

TEST_CASE("webhook service accounts get Istio's DNS names only in the storage namespace",
          "[controller]") {
  IssuancePolicy p;
  p.append_dns_names = true;
  CHECK(WorkloadDnsNames(p, "istio-system",
                         {"istio-system", "istio-sidecar-injector-service-account"}) ==
        std::vector<std::string>{"istio-sidecar-injector.istio-system.svc",
                                 "istio-sidecar-injector.istio-system"});
  CHECK(WorkloadDnsNames(p, "istio-system", {"default", "istio-sidecar-injector-service-account"})
            .empty());
  p.append_dns_names = false;
  CHECK(WorkloadDnsNames(p, "istio-system", {"istio-system", "istio-galley-service-account"})
            .empty());
  // --custom-dns-names keys are sa.ns (Istio 0.8–1.0.5 wrongly looked up sa.sa).
  p.custom_dns_names = {{"web.prod", {"web.example.com"}}, {"web.web", {"wrong.example.com"}}};
  CHECK(WorkloadDnsNames(p, "istio-system", {"prod", "web"}) ==
        std::vector<std::string>{"web.example.com"});
}

TEST_CASE("decisions: one row per observed state", "[controller]") {
  struct Row {
    bool sa, secret;
    RotationReason reason;
    SecretAction want;
  };
  auto row = GENERATE(Row{true, false, RotationReason::kNone, SecretAction::kCreate},
                      Row{true, true, RotationReason::kNone, SecretAction::kNone},
                      Row{true, true, RotationReason::kGracePeriod, SecretAction::kRefresh},
                      Row{false, true, RotationReason::kNone, SecretAction::kDelete},
                      Row{false, true, RotationReason::kExpired, SecretAction::kDelete},
                      Row{false, false, RotationReason::kNone, SecretAction::kNone});
  ObservedSecret o{row.sa, row.secret, {row.reason, {}}};
  CHECK(DecideAction(o) == row.want);
}

TEST_CASE("the controller loop reacts to notifications", "[controller]") {
  // The only test that runs the loop thread: bounded wait on a real notification.
  ControllerFixture f;
  f.sas.SetHandler([&](const ServiceAccountKey& k) { f.controller.Notify(k); });
  f.controller.Start();
  f.sas.Add("ns1", "sa-a");
  for (int i = 0; i < 500 && !f.store.Peek("ns1", "sa-a"); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  f.controller.Stop();
  CHECK(f.store.Peek("ns1", "sa-a").has_value());
}

TEST_CASE("the running loop refreshes at once after a clock jump past expiry",
          "[controller][fault]") {
  // The loop re-checks due certificates every second from memory; bounded wait on that tick.
  ControllerFixture f;
  f.sas.Add("ns1", "sa-a");
  f.Sync();
  REQUIRE(f.store.Writes("ns1/sa-a") == 1);
  f.controller.Start();
  f.clock.Advance(24h * 30);
  for (int i = 0; i < 300 && f.store.Writes("ns1/sa-a") < 2; ++i) std::this_thread::sleep_for(10ms);
  f.controller.Stop();
  CHECK(f.store.Writes("ns1/sa-a") == 2);
  CHECK(f.LeafOf("ns1", "sa-a").NotAfter() > f.clock.Now());
}

namespace {

// The fakes with a first-list flag: before it is set HasSynced() is false, as an informer's is
// before its first complete list; everything else is forwarded to the fake.
template <class Interface, class Fake>
class Unsynced : public Interface {
 public:
  explicit Unsynced(Fake& inner) : inner_(inner) {}
  void SetHandler(std::function<void(const ServiceAccountKey&)> h) override {
    inner_.SetHandler(std::move(h));
  }
  Status Start() override { return inner_.Start(); }
  void Stop() override { inner_.Stop(); }
  bool HasSynced() const override { return synced.load(); }
  Result<std::vector<ServiceAccountKey>> List() const override { return inner_.List(); }
  std::atomic<bool> synced{false};

 protected:
  Fake& inner_;
};

class UnsyncedServiceAccounts final : public Unsynced<ServiceAccountSource, FakeServiceAccounts> {
 public:
  using Unsynced::Unsynced;
  Result<bool> Exists(const ServiceAccountKey& k) const override { return inner_.Exists(k); }
};

class UnsyncedSecretStore final : public Unsynced<SecretStore, FakeSecretStore> {
 public:
  using Unsynced::Unsynced;
  Result<WorkloadSecret> Get(const ServiceAccountKey& k) const override { return inner_.Get(k); }
  Status Create(const ServiceAccountKey& k, const WorkloadSecret& s) override {
    return inner_.Create(k, s);
  }
  Status Update(const ServiceAccountKey& k, const WorkloadSecret& s) override {
    return inner_.Update(k, s);
  }
  Status Delete(const ServiceAccountKey& k) override { return inner_.Delete(k); }
};

}  // namespace

TEST_CASE("the controller reports synced whichever comes first: leadership or the caches",
          "[controller]") {
  // Start() is what winning the Lease does; `synced` flips are the informers' first lists, each
  // followed (as the sync gate does) by a notification for what they hold. The default resync
  // period is a minute, so a controller that waited for it would miss the bounded wait.
  ControllerFixture f;
  UnsyncedServiceAccounts sas(f.sas);
  UnsyncedSecretStore store(f.store);
  Controller controller(f.authority, sas, store, f.clock, f.metrics, ControllerFixture::Options());
  f.sas.Add("ns1", "sa-a");
  const ServiceAccountKey key{"ns1", "sa-a"};
  auto first_pass_done = [&] { return f.store.Peek("ns1", "sa-a").has_value(); };
  auto sa_synced = [&] {
    sas.synced = true;
    controller.Notify(key);
  };
  auto secrets_synced = [&] {
    store.synced = true;
    controller.Notify(key);
  };

  SECTION("leader first, then both caches") {
    controller.Start();
    REQUIRE(testing::WaitFor(first_pass_done));
    CHECK_FALSE(controller.Synced());
    sa_synced();
    secrets_synced();
  }
  SECTION("leader first, then both caches, without notifications (nothing in them)") {
    controller.Start();
    REQUIRE(testing::WaitFor(first_pass_done));
    sas.synced = true;
    store.synced = true;
  }
  SECTION("both caches, then leader") {
    sa_synced();
    secrets_synced();
    controller.Start();
  }
  SECTION("interleaved: one cache, leader, the other cache") {
    sa_synced();
    controller.Start();
    REQUIRE(testing::WaitFor(first_pass_done));
    CHECK_FALSE(controller.Synced());
    secrets_synced();
  }
  SECTION("interleaved: the other cache, leader, the first") {
    secrets_synced();
    controller.Start();
    REQUIRE(testing::WaitFor(first_pass_done));
    CHECK_FALSE(controller.Synced());
    sa_synced();
  }
  CHECK(testing::WaitFor([&] { return controller.Synced(); }, std::chrono::milliseconds(3000)));
  controller.Stop();
  CHECK(f.store.Writes("ns1/sa-a") == 1);
}
