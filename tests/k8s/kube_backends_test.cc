// The Kubernetes backends of the controller (ca/kube, the Lease of k8s/lease.h, the gRPC
// TokenReviewer on k8s/token_review.h) against the fake API server over TLS.
#include <catch2/catch.hpp>
#include <thread>

#include "base/base64.h"
#include "base/log.h"
#include "ca/controller/controller.h"
#include "ca/core/ca_loader.h"
#include "ca/grpc/authn.h"
#include "ca/grpc/kube_token_reviewer.h"
#include "ca/kube/ca_store.h"
#include "ca/kube/leader_elector.h"
#include "ca/kube/secret_store.h"
#include "ca/kube/service_account_source.h"
#include "k8s/errors.h"
#include "k8s/lease.h"
#include "pki/cert.h"
#include "pki/issue.h"
#include "pki/key.h"
#include "pki/verify.h"
#include "tests/k8s/fixture.h"
#include "tests/testing/wait.h"

namespace istioca::ca {
namespace {

using namespace std::chrono_literals;
using k8s::testing::FakeCluster;

const bool kQuiet = ConfigureLogging("error", false).ok();

// How long to wait for another thread's or process's progress (tests/testing/wait.h).
using istioca::testing::WaitFor;
constexpr std::chrono::milliseconds kWait = 10000ms;

KubeInformerTuning FastTuning() {
  KubeInformerTuning t;
  t.resync = 1h;
  t.min_backoff = 5ms;
  t.max_backoff = 50ms;
  t.page_size = 50;
  return t;
}

std::shared_ptr<k8s::Api> ApiOf(const FakeCluster& f) {
  return std::shared_ptr<k8s::Api>(f.Client());
}

WorkloadSecret Content(const std::string& tag, const std::string& version = "") {
  return WorkloadSecret{"CHAIN-" + tag, SecretString("KEY-" + tag), "ROOT", version};
}

TEST_CASE("secret store: the Secret written is exactly Istio's shape", "[kube][secrets]") {
  FakeCluster f;
  KubeSecretStore store(ApiOf(f), {}, FastTuning());
  REQUIRE(store.Start().ok());
  REQUIRE(WaitFor([&] { return store.HasSynced(); }, kWait));
  REQUIRE(store.Create({"demo", "httpbin"}, Content("1")).ok());
  auto stored = f.server->Find("secrets", "demo", "istio.httpbin");
  REQUIRE(stored);
  CHECK((*stored)["type"] == "istio.io/key-and-cert");
  CHECK((*stored)["metadata"]["annotations"] ==
        fakeapi::OJson{{"istio.io/service-account.name", "httpbin"}});
  CHECK((*stored)["data"].size() == 3);
  CHECK((*stored)["data"]["cert-chain.pem"] == Base64Encode("CHAIN-1"));
  CHECK((*stored)["data"]["key.pem"] == Base64Encode("KEY-1"));
  CHECK((*stored)["data"]["root-cert.pem"] == Base64Encode("ROOT"));
  store.Stop();
}

TEST_CASE("secret store: the controller's contract codes", "[kube][secrets]") {
  FakeCluster f;
  KubeSecretStore store(ApiOf(f), {}, FastTuning());
  REQUIRE(store.Start().ok());
  REQUIRE(WaitFor([&] { return store.HasSynced(); }, kWait));
  const ServiceAccountKey key{"demo", "a"};
  CHECK(store.Get(key).status().code() == Code::kNotFound);
  REQUIRE(store.Create(key, Content("1")).ok());
  // Read-your-writes: the write goes through to the cache at once.
  auto got = store.Get(key);
  REQUIRE(got.ok());
  CHECK(got->cert_chain_pem == "CHAIN-1");
  CHECK(store.Create(key, Content("1")).code() == Code::kAlreadyExists);

  // Same content at the same version: no write at all.
  uint64_t writes = f.server->Writes("secrets", "demo", "istio.a");
  CHECK(store.Update(key, Content("1", got->version)).ok());
  CHECK(f.server->Writes("secrets", "demo", "istio.a") == writes);

  // Someone else writes: our version is stale → kAborted, and the cache has the new version.
  fakeapi::OJson other = *f.server->Find("secrets", "demo", "istio.a");
  other["data"]["cert-chain.pem"] = Base64Encode("CHAIN-X");
  f.server->Put("secrets", "demo", other);
  CHECK(store.Update(key, Content("2", got->version)).code() == Code::kAborted);
  auto fresh = store.Get(key);
  REQUIRE(fresh.ok());
  CHECK(fresh->cert_chain_pem == "CHAIN-X");
  CHECK(store.Update(key, Content("2", fresh->version)).ok());
  CHECK(store.Get(key)->cert_chain_pem == "CHAIN-2");

  CHECK(store.Delete(key).ok());
  CHECK(store.Delete(key).code() == Code::kNotFound);
  CHECK(store.Get(key).status().code() == Code::kNotFound);
  CHECK(store.Update(key, Content("3", "1")).code() == Code::kNotFound);
  store.Stop();
}

TEST_CASE("secret store: the cache holds no private key, and a no-op update still writes nothing",
          "[kube][secrets]") {
  FakeCluster f;
  KubeSecretStore store(ApiOf(f), {}, FastTuning());
  REQUIRE(store.Start().ok());
  REQUIRE(WaitFor([&] { return store.HasSynced(); }, kWait));
  const ServiceAccountKey key{"demo", "a"};
  const std::string key_pem =
      "-----BEGIN PRIVATE KEY-----\nTW9zdGx5IHNlY3JldCBrZXkgbWF0ZXJpYWw=\n-----END PRIVATE "
      "KEY-----\n";
  WorkloadSecret secret{"CHAIN-1", SecretString(std::string(key_pem)), "ROOT", ""};
  REQUIRE(store.Create(key, secret).ok());
  // The write and its watch echo have both reached the cache: neither kept the key.
  REQUIRE(WaitFor([&] { return store.Get(key).ok(); }, kWait));
  CHECK(store.CacheContains("CHAIN-1"));  // the accessor does see cached content
  CHECK_FALSE(store.CacheContains("TW9zdGx5IHNlY3JldCBrZXkgbWF0ZXJpYWw="));
  CHECK_FALSE(store.CacheContains("PRIVATE KEY"));
  auto got = store.Get(key);
  REQUIRE(got.ok());
  CHECK(got->key_pem.empty());
  CHECK(got->KeyLooksValid());

  // Same content at the same version: recognised by the digest, nothing written.
  const uint64_t writes = f.server->Writes("secrets", "demo", "istio.a");
  secret.version = got->version;
  CHECK(store.Update(key, secret).ok());
  CHECK(f.server->Writes("secrets", "demo", "istio.a") == writes);
  // A different key is written.
  WorkloadSecret other = secret.Clone();
  other.key_pem =
      SecretString("-----BEGIN PRIVATE KEY-----\nQW5vdGhlcg==\n-----END PRIVATE KEY-----\n");
  CHECK(store.Update(key, other).ok());
  CHECK(f.server->Writes("secrets", "demo", "istio.a") == writes + 1);
  CHECK_FALSE(store.CacheContains("QW5vdGhlcg=="));

  // A key.pem that is not a key (emptied by someone) is reported as such.
  fakeapi::OJson broken = *f.server->Find("secrets", "demo", "istio.a");
  broken["data"]["key.pem"] = Base64Encode("junk");
  f.server->Put("secrets", "demo", broken);
  REQUIRE(WaitFor(
      [&] {
        auto g = store.Get(key);
        return g.ok() && !g->KeyLooksValid();
      },
      kWait));
  store.Stop();
}

TEST_CASE("secret store: only istio secrets in the listened namespaces are seen",
          "[kube][secrets]") {
  FakeCluster f;
  fakeapi::OJson s;
  s["metadata"]["name"] = "istio.a";
  s["type"] = "istio.io/key-and-cert";
  f.server->Put("secrets", "in", s);
  f.server->Put("secrets", "out", s);
  fakeapi::OJson opaque;
  opaque["metadata"]["name"] = "istio.b";
  f.server->Put("secrets", "in", opaque);
  KubeSecretStore store(ApiOf(f), {"in"}, FastTuning());
  REQUIRE(store.Start().ok());
  REQUIRE(WaitFor([&] { return store.HasSynced(); }, kWait));
  auto list = store.List();
  REQUIRE(list.ok());
  CHECK(*list == std::vector<ServiceAccountKey>{{"in", "a"}});
  store.Stop();
}

TEST_CASE("service account source: events notify the controller; existence from the cache",
          "[kube][serviceaccounts]") {
  FakeCluster f(50ms);
  f.AddServiceAccount("a", "x");
  KubeServiceAccountSource sas(ApiOf(f), {"a", "b"}, FastTuning());
  std::mutex mu;
  std::vector<ServiceAccountKey> notified;
  sas.SetHandler([&](const ServiceAccountKey& k) {
    std::lock_guard<std::mutex> l(mu);
    notified.push_back(k);
  });
  CHECK(sas.Exists({"a", "x"}).status().code() == Code::kUnavailable);  // not synced yet
  REQUIRE(sas.Start().ok());
  REQUIRE(WaitFor([&] { return sas.HasSynced(); }, kWait));
  CHECK(*sas.Exists({"a", "x"}));
  f.AddServiceAccount("b", "y");
  f.AddServiceAccount("c", "z");  // not listened
  REQUIRE(WaitFor([&] { return *sas.Exists({"b", "y"}); }, kWait));
  f.server->Remove("serviceaccounts", "a", "x");
  REQUIRE(WaitFor([&] { return !*sas.Exists({"a", "x"}); }, kWait));
  CHECK(sas.List()->size() == 1);
  std::lock_guard<std::mutex> l(mu);
  CHECK(std::find(notified.begin(), notified.end(), ServiceAccountKey{"a", "x"}) != notified.end());
  CHECK(std::find(notified.begin(), notified.end(), ServiceAccountKey{"c", "z"}) == notified.end());
}

TEST_CASE("CA secret: two replicas racing to create end up with the same root", "[kube][castore]") {
  FakeCluster f;
  auto now = istioca::SystemClock::Get().Now();
  std::vector<std::shared_ptr<const CaBundle>> bundles(2);
  std::vector<Status> errors(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      KubeCaStore store(ApiOf(f), "istio-system");
      auto b = LoadOrCreateSelfSigned(store, {"cluster.local", 87600h, pki::KeyType::kEcP256}, now);
      if (b.ok())
        bundles[i] = *b;
      else
        errors[i] = b.status();
    });
  }
  for (auto& t : threads) t.join();
  INFO(errors[0].ToString() << " / " << errors[1].ToString());
  REQUIRE(bundles[0]);
  REQUIRE(bundles[1]);
  CHECK(bundles[0]->RootsPem() == bundles[1]->RootsPem());
  auto secret = f.server->Find("secrets", "istio-system", "istio-ca-secret");
  REQUIRE(secret);
  CHECK((*secret)["type"] == "istio.io/ca-root");
  for (const char* k : {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"}) {
    CHECK((*secret)["data"].contains(k));
  }
  CHECK(f.server->Writes("secrets", "istio-system", "istio-ca-secret") == 1);
  // A restart loads it again.
  KubeCaStore again(ApiOf(f), "istio-system");
  auto b = LoadOrCreateSelfSigned(again, {"cluster.local", 87600h, pki::KeyType::kEcP256}, now);
  REQUIRE(b.ok());
  CHECK((*b)->RootsPem() == bundles[0]->RootsPem());
}

TEST_CASE("CA secret written by Istio 0.x (two keys) loads with the CA cert as root",
          "[kube][castore]") {
  FakeCluster f;
  fakeapi::OJson s;
  s["metadata"]["name"] = "istio-ca-secret";
  s["type"] = "istio.io/ca-root";
  s["data"]["ca-cert.pem"] = Base64Encode("CERT");
  s["data"]["ca-key.pem"] = Base64Encode("KEY");
  f.server->Put("secrets", "istio-system", s);
  KubeCaStore store(ApiOf(f), "istio-system");
  auto ca = store.Load();
  REQUIRE(ca.ok());
  CHECK(ca->root_cert_pem == "CERT");
  KubeCaStore empty(ApiOf(f), "other");
  CHECK(empty.Load().status().code() == Code::kNotFound);
}

TEST_CASE("token reviewer: service accounts only, audiences sent, no cache below the gRPC one",
          "[kube][tokenreview]") {
  FakeCluster f;
  f.server->AddReviewableToken("sa-token",
                               {"system:serviceaccount:demo:httpbin", "u1", {}, {"istio-ca"}});
  f.server->AddReviewableToken("user-token", {"alice", "u2", {}, {"istio-ca"}});
  f.server->AddReviewableToken("other-aud", {"system:serviceaccount:demo:x", "u3", {}, {"other"}});
  auto reviewer =
      std::make_shared<KubeTokenReviewer>(ApiOf(f), std::vector<std::string>{"istio-ca"});
  auto sa = reviewer->Review("sa-token");
  REQUIRE(sa.ok());
  CHECK(sa->ns == "demo");
  CHECK(sa->sa == "httpbin");
  // No cache of its own: every call is a TokenReview...
  uint64_t before = f.server->requests();
  CHECK(reviewer->Review("sa-token").ok());
  CHECK(f.server->requests() == before + 1);
  // ...and the one cache is the gRPC layer's, in front of it.
  FakeClock clock(istioca::SystemClock::Get().Now());
  TokenReviewCache cached(reviewer, clock);
  CHECK(cached.Review("sa-token").ok());
  before = f.server->requests();
  CHECK(cached.Review("sa-token").ok());
  CHECK(f.server->requests() == before);

  auto bad = GENERATE(as<std::string>{}, "user-token", "other-aud", "garbage");
  CHECK(reviewer->Review(bad).status().code() == Code::kUnauthenticated);
}

TEST_CASE("TokenReview usernames", "[kube][tokenreview]") {
  auto [user, ok] = GENERATE(table<std::string, bool>({
      {"system:serviceaccount:demo:httpbin", true},
      {"system:serviceaccount:demo", false},
      {"system:serviceaccount::x", false},
      {"system:serviceaccount:demo:", false},
      {"system:serviceaccount:a:b:c", false},
      {"alice", false},
      {"system:serviceaccounts:demo:x", false},
  }));
  CHECK(ParseServiceAccountUser(user).has_value() == ok);
}

TEST_CASE("lease step decisions", "[kube][leader]") {
  const TimePoint t0 = FromUnixSeconds(1800000000);
  k8s::Lease held;
  held.holder = "other";
  held.duration_seconds = 15;
  k8s::Lease mine = held;
  mine.holder = "me";
  k8s::Lease released = held;
  released.holder = "";
  CHECK(k8s::DecideLeaseStep(std::nullopt, t0, "me", t0) == k8s::LeaseStep::kCreate);
  CHECK(k8s::DecideLeaseStep(mine, t0, "me", t0 + 1h) == k8s::LeaseStep::kRenew);
  CHECK(k8s::DecideLeaseStep(held, t0, "me", t0 + 14s) == k8s::LeaseStep::kWait);
  CHECK(k8s::DecideLeaseStep(held, t0, "me", t0 + 15s) == k8s::LeaseStep::kTakeOver);
  CHECK(k8s::DecideLeaseStep(released, t0, "me", t0) == k8s::LeaseStep::kTakeOver);
}

TEST_CASE("leader election: one leader; a standby takes over within the lease duration",
          "[kube][leader]") {
  FakeCluster f;
  FakeClock clock(istioca::SystemClock::Get().Now());
  MetricsRegistry metrics;
  k8s::LeaseConfig a_cfg, b_cfg;
  a_cfg.identity = "replica-a";
  b_cfg.identity = "replica-b";
  KubeLeaderElector a(ApiOf(f), a_cfg, clock, metrics), b(ApiOf(f), b_cfg, clock, metrics);
  CHECK(a.TryAcquireOrRenew());
  CHECK_FALSE(b.TryAcquireOrRenew());
  clock.Advance(5s);
  CHECK(a.TryAcquireOrRenew());  // renew
  CHECK_FALSE(b.TryAcquireOrRenew());
  auto lease = f.server->Find("leases", "istio-system", "istio-ca-leader");
  REQUIRE(lease);
  CHECK((*lease)["spec"]["holderIdentity"] == "replica-a");
  // a dies (stops renewing). b must wait a full lease duration from when it saw the last renewal.
  clock.Advance(14s);
  CHECK_FALSE(b.TryAcquireOrRenew());
  clock.Advance(2s);
  CHECK(b.TryAcquireOrRenew());
  lease = f.server->Find("leases", "istio-system", "istio-ca-leader");
  CHECK((*lease)["spec"]["holderIdentity"] == "replica-b");
  CHECK((*lease)["spec"]["leaseTransitions"] == 1);
  // MicroTime on the wire, as the real server demands.
  CHECK((*lease)["spec"]["renewTime"].get<std::string>().size() ==
        std::string("2026-11-29T14:30:45.417724Z").size());
  CHECK_FALSE(a.TryAcquireOrRenew());  // a comes back: b holds it
}

TEST_CASE("leader election: a leader that cannot renew stops leading at the renew deadline",
          "[kube][leader]") {
  // The elector's times come from the clock it is given: the deadline is reached by advancing
  // a FakeClock, one Round() at a time, without the thread or any sleep.
  FakeCluster f;
  FakeClock clock(istioca::SystemClock::Get().Now());
  MetricsRegistry metrics;
  k8s::LeaseConfig cfg;
  cfg.identity = "replica-a";
  k8s::LeaseElector a(ApiOf(f), cfg, clock, metrics);
  a.Round();
  REQUIRE(a.leading());
  // Someone else now holds the Lease (a partition, an operator): a's renewals fail from here.
  fakeapi::OJson lease = *f.server->Find("leases", "istio-system", "istio-ca-leader");
  lease["spec"]["holderIdentity"] = "replica-b";
  f.server->Put("leases", "istio-system", lease);
  clock.Advance(cfg.renew_deadline - 1s);
  a.Round();
  CHECK(a.leading());  // within the renew deadline
  clock.Advance(1s);
  a.Round();
  CHECK_FALSE(a.leading());
  CHECK(metrics.GetGauge("istio_ca_leader", "", {{"identity", "replica-a"}}).Value() == 0);
}

TEST_CASE("leader election loop: callbacks, metric, release on stop", "[kube][leader]") {
  FakeCluster f;
  MetricsRegistry metrics;
  k8s::LeaseConfig cfg;
  cfg.identity = "replica-a";
  cfg.retry_period = 20ms;
  std::atomic<int> became{0}, lost{0};
  KubeLeaderElector a(ApiOf(f), cfg, SystemClock::Get(), metrics);
  REQUIRE(a.Start([&](bool leading) { (leading ? became : lost)++; }).ok());
  REQUIRE(WaitFor([&] { return a.leading(); }, kWait));
  CHECK(metrics.GetGauge("istio_ca_leader", "", {{"identity", "replica-a"}}).Value() == 1);
  a.Stop();
  CHECK(became == 1);
  CHECK(lost == 1);
  auto lease = f.server->Find("leases", "istio-system", "istio-ca-leader");
  REQUIRE(lease);
  CHECK_FALSE(lease->at("spec").contains("holderIdentity"));  // released
  k8s::LeaseConfig b_cfg;
  b_cfg.identity = "replica-b";
  KubeLeaderElector b(ApiOf(f), b_cfg, SystemClock::Get(), metrics);
  CHECK(b.TryAcquireOrRenew());  // at once, no lease duration to wait
}

TEST_CASE("sync gate: notifications wait for every backend's first list, then all are replayed",
          "[kube][gate]") {
  FakeCluster f;
  f.AddServiceAccount("a", "x");
  f.AddServiceAccount("a", "y");
  fakeapi::OJson s;
  s["metadata"]["name"] = "istio.orphan";
  s["type"] = "istio.io/key-and-cert";
  f.server->Put("secrets", "a", s);
  // Declared before the informers: their threads call `record` until the informers are gone.
  std::mutex mu;
  std::multiset<std::string> seen;
  auto record = [&](const ServiceAccountKey& k) {
    std::lock_guard<std::mutex> l(mu);
    seen.insert(k.ToString());
  };
  auto gate = std::make_shared<SyncGate>(2);
  KubeServiceAccountSource sas(ApiOf(f), {}, FastTuning(), gate);
  KubeSecretStore store(ApiOf(f), {}, FastTuning(), gate);
  sas.SetHandler(record);
  store.SetHandler(record);
  REQUIRE(sas.Start().ok());
  REQUIRE(WaitFor([&] { return sas.HasSynced(); }, kWait));
  {
    std::lock_guard<std::mutex> l(mu);
    CHECK(seen.empty());  // the secret store has not listed yet
  }
  CHECK_FALSE(gate->open());
  REQUIRE(store.Start().ok());
  REQUIRE(WaitFor([&] { return gate->open(); }, kWait));
  // The gate opens, then replays what it held back (on the informer's thread).
  const auto all = std::multiset<std::string>{"a/orphan", "a/x", "a/y"};
  CHECK(WaitFor(
      [&] {
        std::lock_guard<std::mutex> l(mu);
        return seen == all;
      },
      kWait));
  sas.Stop();
  store.Stop();
  std::lock_guard<std::mutex> l(mu);
  CHECK(seen == all);
}

// ---- The controller on the Kubernetes backends -----------------------------------------

struct KubeControllerFixture {
  FakeCluster f{50ms};
  MetricsRegistry metrics;
  pki::PrivateKey root_key = *pki::PrivateKey::Generate(pki::KeyType::kEcP256);
  pki::Certificate root = *pki::MakeSelfSignedRoot(root_key, {"cluster.local", 24h * 365},
                                                   istioca::SystemClock::Get().Now());
  Authority authority{IssuancePolicy{}, SystemClock::Get()};
  std::shared_ptr<k8s::Api> api = ApiOf(f);
  std::shared_ptr<SyncGate> gate = std::make_shared<SyncGate>(2);
  KubeServiceAccountSource sas{api, {}, FastTuning(), gate};
  KubeSecretStore store{api, {}, FastTuning(), gate};
  std::unique_ptr<Controller> controller;

  KubeControllerFixture() {
    authority.SetBundle(
        std::make_shared<CaBundle>(CaBundle{pki::Signer{root, root_key}, {}, {root}}));
    ControllerOptions o;
    o.resync_period = 1h;  // tests call SyncAll where a resync is meant
    o.backoff_initial = 10ms;
    o.backoff_max = 50ms;
    controller =
        std::make_unique<Controller>(authority, sas, store, SystemClock::Get(), metrics, o);
    sas.SetHandler([this](const ServiceAccountKey& k) { controller->Notify(k); });
    store.SetHandler([this](const ServiceAccountKey& k) { controller->Notify(k); });
  }
  void Start() {
    REQUIRE(sas.Start().ok());
    REQUIRE(store.Start().ok());
    REQUIRE(WaitFor([&] { return sas.HasSynced() && store.HasSynced(); }, kWait));
    controller->Start();
  }
  ~KubeControllerFixture() {
    controller->Stop();
    sas.Stop();
    store.Stop();
  }
  // Every SA has a valid secret for itself, and no istio secret lacks an SA.
  bool Converged() {
    std::set<std::string> sas_seen;
    for (const auto& sa : f.server->All("serviceaccounts")) {
      std::string ns = sa["metadata"]["namespace"], name = sa["metadata"]["name"];
      sas_seen.insert(ns + "/" + name);
      auto s = f.server->Find("secrets", ns, "istio." + name);
      if (!s) return false;
      auto chain = pki::Certificate::ParsePemChain(
          *Base64Decode((*s)["data"]["cert-chain.pem"].get<std::string>()));
      auto key =
          pki::PrivateKey::FromPem(*Base64Decode((*s)["data"]["key.pem"].get<std::string>()));
      if (!chain.ok() || !key.ok()) return false;
      if (!pki::SamePublicKey(key->get(), (*chain)[0].PublicKey())) return false;
      if ((*chain)[0].UriSans() !=
          std::vector<std::string>{"spiffe://cluster.local/ns/" + ns + "/sa/" + name})
        return false;
      if (!pki::VerifyChain((*chain)[0], {}, {root}, istioca::SystemClock::Get().Now()).ok())
        return false;
    }
    for (const auto& s : f.server->All("secrets")) {
      if (s.value("type", "") != "istio.io/key-and-cert") continue;
      std::string ns = s["metadata"]["namespace"], name = s["metadata"]["name"];
      if (!sas_seen.contains(ns + "/" + name.substr(6))) return false;
    }
    return true;
  }
};

TEST_CASE("controller on Kubernetes: SA add/delete, secret deleted, orphan, one write each",
          "[kube][controller]") {
  KubeControllerFixture k;
  for (int i = 0; i < 20; ++i)
    k.f.AddServiceAccount("ns" + std::to_string(i % 3), "sa" + std::to_string(i));
  // An orphan left behind while we were down (Istio #4256/#9349: must be removed, not kept).
  fakeapi::OJson orphan;
  orphan["metadata"]["name"] = "istio.gone";
  orphan["type"] = "istio.io/key-and-cert";
  k.f.server->Put("secrets", "ns0", orphan);
  k.Start();
  REQUIRE(WaitFor([&] { return k.Converged(); }, kWait));
  for (const auto& [key, n] : k.f.server->AllWrites("secrets")) {
    INFO(key);
    if (key != "ns0/istio.gone") CHECK(n == 1);
  }

  k.f.AddServiceAccount("ns1", "new");
  REQUIRE(
      WaitFor([&] { return k.f.server->Find("secrets", "ns1", "istio.new").has_value(); }, kWait));
  k.f.server->Remove("serviceaccounts", "ns1", "new");
  REQUIRE(
      WaitFor([&] { return !k.f.server->Find("secrets", "ns1", "istio.new").has_value(); }, kWait));
  // A secret deleted while its SA exists comes back.
  k.f.server->Remove("secrets", "ns2", "istio.sa2");
  REQUIRE(
      WaitFor([&] { return k.f.server->Find("secrets", "ns2", "istio.sa2").has_value(); }, kWait));
  REQUIRE(WaitFor([&] { return k.Converged(); }, kWait));
  // A resync with nothing to do writes nothing.
  auto before = k.f.server->AllWrites("secrets");
  k.controller->SyncAll();
  CHECK(k.f.server->AllWrites("secrets") == before);
}

TEST_CASE("controller on Kubernetes: converges through 20% errors, dropped watches and a relist",
          "[kube][controller][reliability]") {
  // Every secret ever written must hold a key that matches its certificate. (Declared before
  // the fixture so the observer's counters outlive the fake server.)
  std::atomic<int> written{0}, mismatched{0};
  KubeControllerFixture k;
  k.f.server->SetWriteObserver([&](const std::string& plural, const fakeapi::OJson& o) {
    if (plural != "secrets" || o.value("type", "") != "istio.io/key-and-cert") return;
    ++written;
    auto chain = pki::Certificate::ParsePemChain(
        *Base64Decode(o["data"]["cert-chain.pem"].get<std::string>()));
    auto key = pki::PrivateKey::FromPem(*Base64Decode(o["data"]["key.pem"].get<std::string>()));
    if (!chain.ok() || !key.ok() || !pki::SamePublicKey(key->get(), (*chain)[0].PublicKey()))
      ++mismatched;
  });
  for (int i = 0; i < 30; ++i)
    k.f.AddServiceAccount("ns" + std::to_string(i % 3), "sa" + std::to_string(i));
  k.f.server->SetErrorRate(0.2);
  k.Start();
  for (int i = 0; i < 10; ++i) {
    k.f.AddServiceAccount("late", "sa" + std::to_string(i));
    if (i % 3 == 0) k.f.server->DropWatches();
  }
  k.f.server->Remove("serviceaccounts", "ns0", "sa0");
  k.f.server->ExpireHistory();  // forced relist
  k.f.server->SetErrorRate(0);
  // Faults stop: within two resyncs everything is right.
  k.controller->SyncAll();
  k.controller->SyncAll();
  REQUIRE(WaitFor([&] { return k.Converged(); }, kWait));
  CHECK(k.f.server->injected_errors() > 0);
  CHECK(written >= 39);
  CHECK(mismatched == 0);
  k.f.server->SetWriteObserver(nullptr);
}

}  // namespace
}  // namespace istioca::ca
