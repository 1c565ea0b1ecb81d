// The istio-ca-root-cert ConfigMaps (ca/kube/root_cert_publisher.h) against the fake API server
// over TLS. Writes are counted at the server; every wait is for a condition, and "no extra
// write" is checked by watching a short window after the condition held.
#include "ca/kube/root_cert_publisher.h"

#include <catch2/catch.hpp>

#include "base/log.h"
#include "tests/k8s/fixture.h"
#include "tests/testing/wait.h"

namespace istioca::ca {
namespace {

using namespace std::chrono_literals;
using fakeapi::OJson;
using istioca::testing::WaitFor;
using k8s::testing::FakeCluster;

const bool kQuiet = ConfigureLogging(std::getenv("TEST_LOG") ? "debug" : "error", false).ok();
constexpr std::chrono::milliseconds kWait = 10000ms;
// How long to keep looking for a write that should not happen.
constexpr std::chrono::milliseconds kQuietWindow = 300ms;
constexpr char kName[] = "istio-ca-root-cert";

RootCertPublisherTuning FastTuning() {
  RootCertPublisherTuning t;
  t.informers.resync = 1h;
  t.informers.min_backoff = 5ms;
  t.informers.max_backoff = 50ms;
  t.min_backoff = 5ms;
  t.max_backoff = 50ms;
  return t;
}

struct Fixture {
  FakeCluster f;
  FakeClock clock{FromUnixSeconds(1'800'000'000)};
  std::unique_ptr<KubeRootCertPublisher> publisher;

  explicit Fixture(std::vector<std::string> listed = {}) {
    publisher = std::make_unique<KubeRootCertPublisher>(std::shared_ptr<k8s::Api>(f.Client()),
                                                        std::move(listed), clock, FastTuning());
  }
  ~Fixture() { publisher->Stop(); }

  std::optional<std::string> Root(const std::string& ns) const {
    auto cm = f.server->Find("configmaps", ns, kName);
    if (!cm || !(*cm)["data"].contains("root-cert.pem")) return std::nullopt;
    return (*cm)["data"]["root-cert.pem"].get<std::string>();
  }
  // Every informer has listed and its watch is open (so later changes arrive as events).
  bool Watching(int informers) const { return f.server->open_watches() == informers; }
  uint64_t Writes(const std::string& ns) const { return f.server->Writes("configmaps", ns, kName); }
  bool Done(size_t n) const {
    BundleProgress p = publisher->Progress();
    return p.synced && p.updated == n && p.total == n;
  }
};

TEST_CASE("root cert: every active namespace gets Istio's ConfigMap; a terminating one is skipped",
          "[kube][trust]") {
  Fixture x;
  for (const char* ns : {"a", "b", "c", "doomed"}) x.f.server->AddNamespace(ns);
  x.f.server->SetNamespaceTerminating("doomed");
  x.publisher->Publish("BUNDLE-1", 1);
  REQUIRE(x.publisher->Start().ok());
  REQUIRE(WaitFor([&] { return x.Done(3); }, kWait));
  for (const char* ns : {"a", "b", "c"}) {
    INFO(ns);
    auto cm = x.f.server->Find("configmaps", ns, kName);
    REQUIRE(cm);
    CHECK((*cm)["data"] == OJson{{"root-cert.pem", "BUNDLE-1"}});
    CHECK((*cm)["metadata"]["labels"] == OJson{{"istio.io/config", "true"}});
    CHECK_FALSE((*cm)["metadata"].contains("annotations"));
    CHECK(x.Writes(ns) == 1);
  }
  CHECK_FALSE(x.f.server->Find("configmaps", "doomed", kName));
  BundleProgress p = x.publisher->Progress();
  CHECK(p.generation == 1);
  CHECK(p.last_write == x.clock.Now());

  // A namespace created later gets one too.
  x.f.server->AddNamespace("d");
  REQUIRE(WaitFor([&] { return x.Root("d") == "BUNDLE-1"; }, kWait));
  CHECK(WaitFor([&] { return x.Done(4); }, kWait));
}

TEST_CASE(
    "root cert: a foreign edit of root-cert.pem is reverted, foreign keys and labels kept, "
    "a deleted ConfigMap re-created",
    "[kube][trust]") {
  Fixture x;
  x.f.server->AddNamespace("a");
  // Someone else's ConfigMap of that name, already there: merged into, not replaced.
  OJson theirs;
  theirs["metadata"]["name"] = kName;
  theirs["metadata"]["labels"]["team"] = "payments";
  theirs["data"]["extra.txt"] = "keep me";
  x.f.server->Put("configmaps", "a", theirs);
  x.publisher->Publish("BUNDLE-1", 1);
  REQUIRE(x.publisher->Start().ok());
  REQUIRE(WaitFor([&] { return x.Root("a") == "BUNDLE-1"; }, kWait));
  auto cm = *x.f.server->Find("configmaps", "a", kName);
  CHECK(cm["data"] == OJson{{"extra.txt", "keep me"}, {"root-cert.pem", "BUNDLE-1"}});
  CHECK(cm["metadata"]["labels"] == OJson{{"istio.io/config", "true"}, {"team", "payments"}});

  // A foreign edit of our key: reverted; its other change (a new key) kept.
  cm["data"]["root-cert.pem"] = "TAMPERED";
  cm["data"]["more.txt"] = "also mine";
  x.f.server->Put("configmaps", "a", cm);
  REQUIRE(WaitFor([&] { return x.Root("a") == "BUNDLE-1"; }, kWait));
  cm = *x.f.server->Find("configmaps", "a", kName);
  CHECK(cm["data"]["more.txt"] == "also mine");
  CHECK(cm["data"]["extra.txt"] == "keep me");

  // A foreign change that leaves root-cert.pem alone costs no write.
  const uint64_t writes = x.Writes("a");
  cm["data"]["extra.txt"] = "changed";
  x.f.server->Put("configmaps", "a", cm);
  CHECK_FALSE(WaitFor([&] { return x.Writes("a") > writes + 1; }, kQuietWindow));

  // Deleted: re-created from the delete event.
  REQUIRE(x.f.server->Remove("configmaps", "a", kName));
  REQUIRE(WaitFor([&] { return x.Root("a") == "BUNDLE-1"; }, kWait));
  CHECK((*x.f.server->Find("configmaps", "a", kName))["data"].size() == 1);
}

TEST_CASE("root cert: a new bundle costs exactly one write per ConfigMap; progress N/M to M/M",
          "[kube][trust]") {
  Fixture x({"a", "b", "c"});  // listed namespaces: no Namespace informer
  x.publisher->Publish("BUNDLE-1", 1);
  REQUIRE(x.publisher->Start().ok());
  REQUIRE(WaitFor([&] { return x.Done(3); }, kWait));
  REQUIRE(x.publisher->Progress().last_write);
  REQUIRE(WaitFor([&] { return x.Watching(3); }, kWait));

  // The API fails every new request: the new bundle cannot be written yet. One namespace gets
  // it from someone else (seen through the open watch): 1/3.
  x.f.server->SetErrorRate(1.0);
  x.clock.Advance(1h);
  x.publisher->Publish("BUNDLE-2", 2);
  BundleProgress p = x.publisher->Progress();
  CHECK(p.generation == 2);
  CHECK(p.total == 3);
  CHECK(p.updated == 0);
  CHECK_FALSE(p.last_write);
  OJson a = *x.f.server->Find("configmaps", "a", kName);
  a["data"]["root-cert.pem"] = "BUNDLE-2";
  x.f.server->Put("configmaps", "a", a);
  REQUIRE(WaitFor(
      [&] {
        auto q = x.publisher->Progress();
        return q.updated == 1 && q.total == 3;
      },
      kWait));
  CHECK_FALSE(x.publisher->Progress().last_write);

  // The API recovers: the other two are written once each, and nothing more.
  x.f.server->SetErrorRate(0);
  REQUIRE(WaitFor([&] { return x.Done(3); }, kWait));
  CHECK(x.Writes("a") == 2);  // our create, their update
  CHECK(x.Writes("b") == 2);  // create, one update
  CHECK(x.Writes("c") == 2);
  CHECK(x.publisher->Progress().last_write == x.clock.Now());
  CHECK_FALSE(
      WaitFor([&] { return x.Writes("a") + x.Writes("b") + x.Writes("c") > 6; }, kQuietWindow));

  // The same bundle under a later generation changes nothing on the server.
  x.publisher->Publish("BUNDLE-2", 3);
  CHECK(x.publisher->Progress().generation == 3);
  CHECK(x.publisher->Progress().updated == 3);
  CHECK_FALSE(
      WaitFor([&] { return x.Writes("a") + x.Writes("b") + x.Writes("c") > 6; }, kQuietWindow));
}

TEST_CASE("root cert: a listed namespace that does not exist is left out, not retried forever",
          "[kube][trust]") {
  Fixture x({"a", "ghost"});
  x.f.server->AddNamespace("a");
  x.f.server->AddNamespace("ghost");
  x.f.server->SetNamespaceTerminating("ghost");  // creates there answer 403 NamespaceTerminating
  x.publisher->Publish("BUNDLE-1", 1);
  REQUIRE(x.publisher->Start().ok());
  REQUIRE(WaitFor([&] { return x.Done(1) && x.Watching(2); }, kWait));
  CHECK(x.Root("a") == "BUNDLE-1");
  CHECK_FALSE(x.Root("ghost"));
  const uint64_t requests = x.f.server->requests();
  CHECK_FALSE(WaitFor([&] { return x.f.server->requests() > requests; }, kQuietWindow));
}

TEST_CASE("root cert: Stop then Start resumes (leadership flaps); both are idempotent",
          "[kube][trust]") {
  Fixture x({"a", "b"});
  x.publisher->Publish("BUNDLE-1", 1);
  REQUIRE(x.publisher->Start().ok());
  REQUIRE(x.publisher->Start().ok());
  REQUIRE(WaitFor([&] { return x.Done(2); }, kWait));
  x.publisher->Stop();
  x.publisher->Stop();
  CHECK_FALSE(x.publisher->Progress().synced);

  // While stopped: nothing is repaired.
  REQUIRE(x.f.server->Remove("configmaps", "a", kName));
  x.publisher->Publish("BUNDLE-2", 2);
  CHECK_FALSE(WaitFor([&] { return x.Root("a").has_value(); }, kQuietWindow));
  CHECK(x.Root("b") == "BUNDLE-1");

  REQUIRE(x.publisher->Start().ok());
  REQUIRE(WaitFor([&] { return x.Done(2); }, kWait));
  CHECK(x.Root("a") == "BUNDLE-2");
  CHECK(x.Root("b") == "BUNDLE-2");
  CHECK(x.Writes("b") == 2);
}

}  // namespace
}  // namespace istioca::ca
