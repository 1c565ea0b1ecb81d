// The informer against the fake API server: list, watch, relist on 410, reconnect.
#include "k8s/informer.h"

#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "tests/k8s/fixture.h"
#include "tests/testing/wait.h"

namespace istioca::k8s {
namespace {

using namespace std::chrono_literals;
using testing::FakeCluster;

// How long to wait for another thread's or process's progress (tests/testing/wait.h).
using istioca::testing::WaitFor;
constexpr std::chrono::milliseconds kWait = 5000ms;

struct Recorder : InformerHandler {
  std::mutex mu;
  std::set<std::string> present;
  int upserts = 0, deletes = 0, resyncs = 0, syncs = 0;
  void OnUpsert(const Json& o) override {
    std::lock_guard<std::mutex> l(mu);
    present.insert(o["metadata"]["namespace"].get<std::string>() + "/" +
                   o["metadata"]["name"].get<std::string>());
    ++upserts;
  }
  void OnDelete(const std::string& ns, const std::string& name, const Json&) override {
    std::lock_guard<std::mutex> l(mu);
    present.erase(ns + "/" + name);
    ++deletes;
  }
  void OnSynced() override {
    std::lock_guard<std::mutex> l(mu);
    ++syncs;
  }
  void OnResync() override {
    std::lock_guard<std::mutex> l(mu);
    ++resyncs;
  }
  bool Has(const std::string& key) {
    std::lock_guard<std::mutex> l(mu);
    return present.contains(key);
  }
  size_t Size() {
    std::lock_guard<std::mutex> l(mu);
    return present.size();
  }
};

struct RunningInformer {
  Cancellation cancel;
  Informer informer;
  std::thread thread;
  RunningInformer(Api& api, InformerOptions o, InformerHandler& h)
      : informer(api, std::move(o), h) {
    thread = std::thread([this] { informer.Run(cancel); });
  }
  ~RunningInformer() {
    cancel.Cancel();
    thread.join();
  }
};

InformerOptions SaOptions() {
  InformerOptions o;
  o.resource = kServiceAccounts;
  o.page_size = 3;
  o.min_backoff = 5ms;
  o.max_backoff = 50ms;
  o.resync = 1h;
  return o;
}

TEST_CASE("informer: paged list, then events from the list's resourceVersion", "[k8s][informer]") {
  FakeCluster f(50ms);
  for (int i = 0; i < 10; ++i)
    f.AddServiceAccount("ns" + std::to_string(i % 2), "sa" + std::to_string(i));
  auto api = f.Client();
  Recorder rec;
  RunningInformer run(*api, SaOptions(), rec);
  REQUIRE(WaitFor([&] { return run.informer.synced(); }, kWait));
  CHECK(rec.Size() == 10);
  f.AddServiceAccount("ns0", "new");
  REQUIRE(WaitFor([&] { return rec.Has("ns0/new"); }, kWait));
  f.server->Remove("serviceaccounts", "ns1", "sa1");
  REQUIRE(WaitFor([&] { return !rec.Has("ns1/sa1"); }, kWait));
  CHECK(run.informer.size() == 10);
  CHECK(run.informer.stats().lists == 1);
}

TEST_CASE("informer: namespace scope", "[k8s][informer]") {
  FakeCluster f(50ms);
  f.AddServiceAccount("a", "x");
  f.AddServiceAccount("b", "y");
  auto api = f.Client();
  Recorder rec;
  InformerOptions o = SaOptions();
  o.ns = "a";
  RunningInformer run(*api, o, rec);
  REQUIRE(WaitFor([&] { return run.informer.synced(); }, kWait));
  f.AddServiceAccount("b", "z");
  f.AddServiceAccount("a", "w");
  REQUIRE(WaitFor([&] { return rec.Has("a/w"); }, kWait));
  CHECK(rec.Size() == 2);
  CHECK_FALSE(rec.Has("b/z"));
}

TEST_CASE(
    "informer: a 410 ERROR event makes it relist, and deletions missed meanwhile are reported",
    "[k8s][informer]") {
  FakeCluster f(50ms);
  for (int i = 0; i < 4; ++i) f.AddServiceAccount("a", "sa" + std::to_string(i));
  auto api = f.Client();
  Recorder rec;
  RunningInformer run(*api, SaOptions(), rec);
  REQUIRE(WaitFor([&] { return run.informer.synced(); }, kWait));
  // While the watch is broken, an SA disappears and one appears; then history expires.
  f.server->DropWatches();
  f.server->Remove("serviceaccounts", "a", "sa0");
  f.AddServiceAccount("a", "late");
  f.server->ExpireHistory();
  REQUIRE(WaitFor([&] { return !rec.Has("a/sa0") && rec.Has("a/late"); }, kWait));
  REQUIRE(WaitFor([&] { return run.informer.stats().lists >= 2; }, kWait));
  CHECK(rec.Size() == 4);
}

TEST_CASE("informer: dropped watches and server errors are survived", "[k8s][informer]") {
  FakeCluster f(50ms);
  f.AddServiceAccount("a", "x");
  auto api = f.Client();
  Recorder rec;
  RunningInformer run(*api, SaOptions(), rec);
  REQUIRE(WaitFor([&] { return run.informer.synced(); }, kWait));
  f.server->SetErrorRate(0.3);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(WaitFor([&] { return f.server->open_watches() > 0; }, kWait));
    f.server->DropWatches();
    f.AddServiceAccount("a", "n" + std::to_string(i));
  }
  f.server->SetErrorRate(0);
  REQUIRE(WaitFor([&] { return rec.Size() == 6; }, kWait));
  CHECK(run.informer.stats().watches >= 2);
}

TEST_CASE("informer: a restarted API server with kept state is followed", "[k8s][informer]") {
  FakeCluster f(50ms);
  f.AddServiceAccount("a", "x");
  auto api = f.Client();
  Recorder rec;
  RunningInformer run(*api, SaOptions(), rec);
  REQUIRE(WaitFor([&] { return run.informer.synced(); }, kWait));
  REQUIRE(f.server->Restart().ok());
  f.AddServiceAccount("a", "after-restart");
  REQUIRE(WaitFor([&] { return rec.Has("a/after-restart"); }, kWait));
}

TEST_CASE("informer: a resync is due when the injected clock passes the period, not before",
          "[k8s][informer]") {
  FakeCluster f(20ms);  // bookmarks every 20 ms: the informer looks at the clock often
  auto api = f.Client();
  Recorder rec;
  FakeClock clock(TimePoint{} + 1000h);
  InformerOptions o = SaOptions();
  o.resync = 1h;
  o.clock = &clock;
  RunningInformer run(*api, o, rec);
  REQUIRE(WaitFor([&] { return run.informer.synced(); }, kWait));
  auto resyncs = [&] {
    std::lock_guard<std::mutex> l(rec.mu);
    return rec.resyncs;
  };
  // Events and bookmarks arrive, but the clock has not moved: no resync.
  f.AddServiceAccount("a", "x");
  REQUIRE(WaitFor([&] { return rec.Has("a/x"); }, kWait));
  CHECK(resyncs() == 0);
  clock.Advance(1h);
  REQUIRE(WaitFor([&] { return resyncs() == 1; }, kWait));
  // The next one is an hour of the fake clock away.
  f.AddServiceAccount("a", "y");
  REQUIRE(WaitFor([&] { return rec.Has("a/y"); }, kWait));
  CHECK(resyncs() == 1);
}

TEST_CASE("informer: secrets filtered by the istio field selector", "[k8s][informer]") {
  FakeCluster f(50ms);
  fakeapi::OJson istio, opaque;
  istio["metadata"]["name"] = "istio.a";
  istio["type"] = "istio.io/key-and-cert";
  opaque["metadata"]["name"] = "other";
  f.server->Put("secrets", "demo", istio);
  f.server->Put("secrets", "demo", opaque);
  auto api = f.Client();
  Recorder rec;
  InformerOptions o = SaOptions();
  o.resource = kSecrets;
  o.field_selector = "type=istio.io/key-and-cert";
  RunningInformer run(*api, o, rec);
  REQUIRE(WaitFor([&] { return run.informer.synced(); }, kWait));
  opaque["metadata"]["name"] = "other2";
  f.server->Put("secrets", "demo", opaque);
  istio["metadata"]["name"] = "istio.b";
  f.server->Put("secrets", "demo", istio);
  REQUIRE(WaitFor([&] { return rec.Has("demo/istio.b"); }, kWait));
  CHECK(rec.Size() == 2);
  CHECK_FALSE(rec.Has("demo/other2"));
}

}  // namespace
}  // namespace istioca::k8s
