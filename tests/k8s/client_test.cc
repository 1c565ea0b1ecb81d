// The HTTPS client against the fake API server.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "base/base64.h"
#include "k8s/errors.h"
#include "k8s/objects.h"
#include "k8s/token_review.h"
#include "tests/k8s/fixture.h"

namespace istioca::k8s {
namespace {

using namespace std::chrono_literals;
using testing::FakeCluster;

Secret IstioSecret(const std::string& ns, const std::string& sa, const std::string& cert) {
  Secret s;
  s.meta.name = "istio." + sa;
  s.meta.ns = ns;
  s.meta.annotations["istio.io/service-account.name"] = sa;
  s.type = "istio.io/key-and-cert";
  s.data = {{"cert-chain.pem", cert}, {"key.pem", "KEY"}, {"root-cert.pem", "ROOT"}};
  return s;
}

TEST_CASE("secrets: create, get, conditional update, delete over TLS", "[k8s][client]") {
  FakeCluster f;
  auto api = f.Client();
  auto created = CreateSecret(*api, IstioSecret("demo", "httpbin", "CERT1"));
  INFO(created.status().ToString());
  REQUIRE(created.ok());
  CHECK_FALSE(created->meta.resource_version.empty());
  CHECK_FALSE(created->meta.uid.empty());

  auto again = CreateSecret(*api, IstioSecret("demo", "httpbin", "CERT1"));
  CHECK(IsAlreadyExists(again.status()));

  auto got = GetSecret(*api, "demo", "istio.httpbin");
  REQUIRE(got.ok());
  CHECK(got->data.at("cert-chain.pem") == "CERT1");

  Secret stale = *got;
  got->data["cert-chain.pem"] = "CERT2";
  auto updated = UpdateSecret(*api, *got);
  REQUIRE(updated.ok());
  CHECK(updated->meta.resource_version != stale.meta.resource_version);

  stale.data["cert-chain.pem"] = "CERT3";
  auto conflict = UpdateSecret(*api, stale);
  CHECK(IsConflict(conflict.status()));
  CHECK(ReasonOf(conflict.status()) == "Conflict");

  CHECK(IsConflict(DeleteSecret(*api, "demo", "istio.httpbin", stale.meta.resource_version)));
  CHECK(DeleteSecret(*api, "demo", "istio.httpbin").ok());
  CHECK(IsNotFound(DeleteSecret(*api, "demo", "istio.httpbin")));
  CHECK(IsNotFound(GetSecret(*api, "demo", "istio.httpbin").status()));
}

TEST_CASE("configmaps: create, get, conditional update, delete, list by name over TLS",
          "[k8s][client]") {
  FakeCluster f;
  auto api = f.Client();
  ConfigMap c;
  c.meta.name = "istio-ca-root-cert";
  c.meta.ns = "demo";
  c.meta.labels["istio.io/config"] = "true";
  c.data["root-cert.pem"] = "ROOT1";
  auto created = CreateConfigMap(*api, c);
  INFO(created.status().ToString());
  REQUIRE(created.ok());
  CHECK_FALSE(created->meta.resource_version.empty());
  CHECK(IsAlreadyExists(CreateConfigMap(*api, c).status()));

  auto got = GetConfigMap(*api, "demo", "istio-ca-root-cert");
  REQUIRE(got.ok());
  CHECK(got->data.at("root-cert.pem") == "ROOT1");
  ConfigMap stale = *got;
  got->data["root-cert.pem"] = "ROOT2";
  REQUIRE(UpdateConfigMap(*api, *got).ok());
  CHECK(IsConflict(UpdateConfigMap(*api, stale).status()));

  c.meta.ns = "prod";
  REQUIRE(CreateConfigMap(*api, c).ok());
  c.meta.name = "other";
  REQUIRE(CreateConfigMap(*api, c).ok());
  ListOptions o;
  o.field_selector = "metadata.name=istio-ca-root-cert";
  auto all = ListAll(*api, kConfigMaps, "", o);
  REQUIRE(all.ok());
  CHECK(all->items.size() == 2);

  CHECK(DeleteConfigMap(*api, "demo", "istio-ca-root-cert").ok());
  CHECK(IsNotFound(DeleteConfigMap(*api, "demo", "istio-ca-root-cert")));
  CHECK(IsNotFound(GetConfigMap(*api, "demo", "istio-ca-root-cert").status()));
}

TEST_CASE("namespaces: cluster-scoped list; a create into a terminating one is refused for good",
          "[k8s][client]") {
  FakeCluster f;
  auto api = f.Client();
  f.server->AddNamespace("demo");
  f.server->AddNamespace("doomed");
  REQUIRE(api->Delete(kNamespaces, "", "doomed").ok());  // Terminating, not gone
  auto list = ListAll(*api, kNamespaces, "", ListOptions{});
  REQUIRE(list.ok());
  REQUIRE(list->items.size() == 2);
  CHECK_FALSE(NamespaceFromJson(list->items[0]).terminating());
  CHECK(NamespaceFromJson(list->items[1]).terminating());
  ConfigMap c;
  c.meta.name = "istio-ca-root-cert";
  c.meta.ns = "doomed";
  CHECK(IsNamespaceTerminating(CreateConfigMap(*api, c).status()));
}

TEST_CASE("UpdateWithRetry re-reads after a Conflict and writes nothing when nothing changes",
          "[k8s][client]") {
  FakeCluster f;
  auto api = f.Client();
  REQUIRE(CreateSecret(*api, IstioSecret("demo", "a", "V1")).ok());
  int calls = 0;
  auto result = UpdateWithRetry(*api, kSecrets, "demo", "istio.a", [&](Json& obj) -> Result<bool> {
    if (++calls == 1) {
      // Someone else writes between our read and our write.
      f.server->Put("secrets", "demo", fakeapi::OJson::parse(obj.dump()));
    }
    obj["data"]["cert-chain.pem"] = Base64Encode("V2");
    return true;
  });
  REQUIRE(result.ok());
  CHECK(calls == 2);
  CHECK(GetSecret(*api, "demo", "istio.a")->data.at("cert-chain.pem") == "V2");

  uint64_t writes = f.server->Writes("secrets", "demo", "istio.a");
  auto same = UpdateWithRetry(*api, kSecrets, "demo", "istio.a",
                              [](Json&) -> Result<bool> { return false; });
  REQUIRE(same.ok());
  CHECK(f.server->Writes("secrets", "demo", "istio.a") == writes);
}

TEST_CASE("lists come in pages that share one resourceVersion", "[k8s][client]") {
  FakeCluster f;
  for (int i = 0; i < 7; ++i) f.AddServiceAccount(i < 4 ? "a" : "b", "sa" + std::to_string(i));
  auto api = f.Client();
  ListOptions o;
  o.limit = 2;
  auto first = api->List(kServiceAccounts, "", o);
  REQUIRE(first.ok());
  CHECK(first->items.size() == 2);
  CHECK_FALSE(first->continue_token.empty());
  auto all = ListAll(*api, kServiceAccounts, "", o);
  REQUIRE(all.ok());
  CHECK(all->items.size() == 7);
  CHECK(all->resource_version == first->resource_version);
  auto ns_a = ListServiceAccounts(*api, "a");
  REQUIRE(ns_a.ok());
  CHECK(ns_a->size() == 4);
}

TEST_CASE("an expired continue token restarts the list from the beginning", "[k8s][client]") {
  FakeCluster f;
  for (int i = 0; i < 5; ++i) f.AddServiceAccount("a", "sa" + std::to_string(i));
  auto api = f.Client();
  ListOptions o;
  o.limit = 2;
  auto first = api->List(kServiceAccounts, "", o);
  REQUIRE(first.ok());
  f.server->ExpireHistory();
  f.AddServiceAccount("a", "late");
  o.continue_token = first->continue_token;
  auto expired = api->List(kServiceAccounts, "", o);
  CHECK(IsGone(expired.status()));
  o.continue_token.clear();
  auto all = ListAll(*api, kServiceAccounts, "", o);
  REQUIRE(all.ok());
  CHECK(all->items.size() == 6);
}

TEST_CASE("the istio secret field selector leaves other secret types out", "[k8s][client]") {
  FakeCluster f;
  auto api = f.Client();
  REQUIRE(CreateSecret(*api, IstioSecret("demo", "a", "C")).ok());
  Secret opaque;
  opaque.meta.name = "app-config";
  opaque.meta.ns = "demo";
  opaque.data["x"] = "y";
  REQUIRE(CreateSecret(*api, opaque).ok());
  auto only = ListSecrets(*api, "", kIstioSecretSelector);
  REQUIRE(only.ok());
  REQUIRE(only->size() == 1);
  CHECK((*only)[0].meta.name == "istio.a");
  CHECK(ListSecrets(*api, "demo")->size() == 2);
  CHECK(ListSecrets(*api, "other", kIstioSecretSelector)->empty());
}

TEST_CASE("watch delivers events, bookmarks, and the 410 ERROR event", "[k8s][client]") {
  FakeCluster f(50ms);
  auto api = f.Client();
  auto list = api->List(kServiceAccounts, "", {});
  REQUIRE(list.ok());
  f.AddServiceAccount("demo", "app1");
  f.server->Remove("serviceaccounts", "demo", "app1");
  std::vector<std::string> types;
  WatchOptions w;
  w.resource_version = list->resource_version;
  Status st = api->Watch(
      kServiceAccounts, "", w,
      [&](WatchEvent&& ev) {
        types.push_back(ev.type);
        if (ev.type == "BOOKMARK") {
          CHECK(ev.object["kind"] == "ServiceAccount");
          CHECK_FALSE(ev.object["metadata"]["resourceVersion"].get<std::string>().empty());
          return false;
        }
        return true;
      },
      nullptr);
  CHECK(st.ok());
  CHECK(types == std::vector<std::string>{"ADDED", "DELETED", "BOOKMARK"});

  f.server->ExpireHistory();
  WatchEvent error;
  st = api->Watch(
      kServiceAccounts, "", w,
      [&](WatchEvent&& ev) {
        error = std::move(ev);
        return true;
      },
      nullptr);
  CHECK(st.ok());  // the stream itself was fine: the news is in the event
  CHECK(error.type == "ERROR");
  CHECK(error.object["code"] == 410);
  CHECK(error.object["reason"] == "Expired");
}

TEST_CASE("a watch is ended from another thread by Cancel", "[k8s][client]") {
  FakeCluster f;
  auto api = f.Client();
  Cancellation cancel;
  std::thread t([&] {
    while (f.server->open_watches() == 0) std::this_thread::sleep_for(5ms);
    cancel.Cancel();
  });
  auto start = std::chrono::steady_clock::now();
  WatchOptions w;
  w.timeout_seconds = 60;
  Status st = api->Watch(
      kServiceAccounts, "", w, [](WatchEvent&&) { return true; }, &cancel);
  t.join();
  CHECK(st.ok());
  CHECK(std::chrono::steady_clock::now() - start < 10s);
}

TEST_CASE("transient server errors are retried; permanent ones are not", "[k8s][client]") {
  FakeCluster f;
  auto api = f.Client();
  f.server->FailNext(2);
  uint64_t before = api->requests_sent();
  auto ok = api->List(kSecrets, "", {});
  CHECK(ok.ok());
  CHECK(api->requests_sent() - before == 3);

  f.server->FailNext(10);
  auto fail = api->List(kSecrets, "", {});
  CHECK(fail.status().code() == Code::kUnavailable);
  f.server->FailNext(0);

  before = api->requests_sent();
  CHECK(IsNotFound(api->Get(kSecrets, "demo", "nope").status()));
  CHECK(api->requests_sent() - before == 1);
}

TEST_CASE("authentication failures are distinct codes", "[k8s][client]") {
  FakeCluster f;
  CHECK(f.Client("not-a-valid-token")->List(kSecrets, "demo", {}).status().code() ==
        Code::kUnauthenticated);
  auto forbidden = f.Client(testing::kUserToken)->List(kSecrets, "demo", {});
  CHECK(forbidden.status().code() == Code::kPermissionDenied);
  CHECK(forbidden.status().message().find("alice") != std::string::npos);
  CHECK(f.Client("")->List(kSecrets, "demo", {}).status().code() == Code::kPermissionDenied);
}

TEST_CASE("a server certificate from another CA is refused", "[k8s][client]") {
  FakeCluster f;
  auto other = fakeapi::MakeTestTls();
  REQUIRE(other.ok());
  RestConfig c = f.Config();
  c.ca_pem = other->ca_pem;
  auto api = HttpApi::Create(c, {1, 1ms, 1ms});
  REQUIRE(api.ok());
  CHECK((*api)->List(kSecrets, "", {}).status().code() == Code::kUnavailable);
}

TEST_CASE("the token file is re-read, so a rotated token is used", "[k8s][client]") {
  FakeCluster f;
  auto path = std::filesystem::temp_directory_path() / ("k8s_token_" + std::to_string(::getpid()));
  std::ofstream(path) << testing::kAdminToken << "\n";
  RestConfig c = f.Config("");
  c.token_file = path.string();
  auto api = HttpApi::Create(c);
  REQUIRE(api.ok());
  CHECK((*api)->List(kSecrets, "", {}).ok());
  std::filesystem::remove(path);
}

TEST_CASE("Connect reads a kubeconfig, for command-line tools", "[k8s][client]") {
  FakeCluster f;
  auto path =
      std::filesystem::temp_directory_path() / ("k8s_kubeconfig_" + std::to_string(::getpid()));
  std::ofstream(path) << fakeapi::KubeconfigYaml(f.server->url(), testing::Tls().ca_pem,
                                                 testing::kAdminToken);
  auto api = Connect(path.string());
  std::filesystem::remove(path);
  REQUIRE(api.ok());
  REQUIRE(CreateSecret(**api, IstioSecret("demo", "a", "C")).ok());
  auto all = ListSecrets(**api, "", kIstioSecretSelector);
  REQUIRE(all.ok());
  CHECK(all->size() == 1);
  CHECK(Connect("/nonexistent/kubeconfig").status().code() == Code::kInvalidArgument);
}

TEST_CASE("the QPS limit spaces requests out", "[k8s][client]") {
  FakeCluster f;
  RestConfig c = f.Config();
  c.qps = 40;
  c.burst = 1;
  auto api = HttpApi::Create(c);
  REQUIRE(api.ok());
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 11; ++i) REQUIRE((*api)->List(kSecrets, "x", {}).ok());
  // 10 intervals of 25 ms at least.
  CHECK(std::chrono::steady_clock::now() - start >= 240ms);
}

TEST_CASE("TokenReview: audiences are sent and the verdict is read (samples 052-054)",
          "[k8s][client]") {
  FakeCluster f;
  f.server->AddReviewableToken(
      "jwt-httpbin",
      {"system:serviceaccount:demo:httpbin",
       "1d554cac",
       {"system:serviceaccounts", "system:serviceaccounts:demo", "system:authenticated"},
       {"istio-ca"}});
  auto api = f.Client();
  auto ok = ReviewToken(*api, "jwt-httpbin", {"istio-ca"});
  REQUIRE(ok.ok());
  CHECK(ok->authenticated);
  CHECK(ok->username == "system:serviceaccount:demo:httpbin");
  CHECK(ok->audiences == std::vector<std::string>{"istio-ca"});

  auto default_aud = ReviewToken(*api, "jwt-httpbin", {});
  REQUIRE(default_aud.ok());
  CHECK_FALSE(default_aud->authenticated);

  auto garbage = ReviewToken(*api, "garbage.token.value", {"istio-ca"});
  REQUIRE(garbage.ok());
  CHECK_FALSE(garbage->authenticated);
  CHECK(garbage->error == "invalid bearer token");

  auto forbidden = ReviewToken(*f.Client(testing::kUserToken), "jwt-httpbin", {"istio-ca"});
  CHECK(forbidden.status().code() == Code::kPermissionDenied);
}

TEST_CASE("TokenReview of a pod-bound token: the pod's name and uid from user.extra",
          "[k8s][client]") {
  FakeCluster f;
  fakeapi::TokenIdentity id{"system:serviceaccount:demo:httpbin",
                            "1d554cac-e9c1-41fc-9483-058b685815a7",
                            {"system:serviceaccounts", "system:serviceaccounts:demo"},
                            {"istio-ca"}};
  id.extra = {{kExtraPodName, {"httpbin-pod"}},
              {kExtraPodUid, {"18c1bf81-028f-41d3-809b-4694f685ed5f"}}};
  f.server->AddReviewableToken("jwt-pod", id);
  auto r = ReviewToken(*f.Client(), "jwt-pod", {"istio-ca"});
  REQUIRE(r.ok());
  CHECK(r->authenticated);
  CHECK(r->uid == "1d554cac-e9c1-41fc-9483-058b685815a7");
  CHECK(r->PodName() == "httpbin-pod");
  CHECK(r->PodUid() == "18c1bf81-028f-41d3-809b-4694f685ed5f");
  // The answer of sample 065 itself.
  auto sample = TokenReviewFromJson(Json::parse(R"({"kind":"TokenReview","status":{
      "authenticated":true,"user":{"username":"system:serviceaccount:demo:httpbin",
      "uid":"1d554cac-e9c1-41fc-9483-058b685815a7","groups":["system:serviceaccounts",
      "system:serviceaccounts:demo","system:authenticated"],"extra":{
      "authentication.kubernetes.io/pod-name":["httpbin-pod"],
      "authentication.kubernetes.io/pod-uid":["18c1bf81-028f-41d3-809b-4694f685ed5f"]}},
      "audiences":["istio-ca"]}})"));
  REQUIRE(sample.ok());
  CHECK(sample->PodName() == "httpbin-pod");
  CHECK(sample->groups.size() == 3);
  // Not pod-bound: no pod.
  f.server->AddReviewableToken("jwt-plain",
                               {"system:serviceaccount:demo:httpbin", "u", {}, {"istio-ca"}});
  auto plain = ReviewToken(*f.Client(), "jwt-plain", {"istio-ca"});
  REQUIRE(plain.ok());
  CHECK(plain->authenticated);
  CHECK(plain->PodName().empty());
}

TEST_CASE("leases: create race gives one winner; renewals are conditional", "[k8s][client]") {
  FakeCluster f;
  auto api = f.Client();
  Lease l;
  l.meta.name = "istio-ca-leader";
  l.meta.ns = "istio-system";
  l.holder = "replica-a";
  l.duration_seconds = 15;
  l.acquire_time = l.renew_time = istioca::SystemClock::Get().Now();
  auto a = CreateLease(*api, l);
  REQUIRE(a.ok());
  l.holder = "replica-b";
  CHECK(IsAlreadyExists(CreateLease(*api, l).status()));
  Lease renew = *a;
  renew.renew_time = *renew.renew_time + 2s;
  auto renewed = UpdateLease(*api, renew);
  REQUIRE(renewed.ok());
  CHECK(IsConflict(UpdateLease(*api, renew).status()));  // stale RV
  auto got = GetLease(*api, "istio-system", "istio-ca-leader");
  REQUIRE(got.ok());
  CHECK(got->holder == "replica-a");
  CHECK(FormatMicroTime(*got->renew_time) == FormatMicroTime(*renew.renew_time));
}

}  // namespace
}  // namespace istioca::k8s
