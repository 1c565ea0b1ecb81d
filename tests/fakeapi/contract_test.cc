// Contract: the fake API server answers the recorded requests of shared/k8s-api-samples with the
// recorded status code and body, byte for byte (after replacing the values that differ between
// any two servers: resourceVersions, uids and timestamps, and dropping managedFields, which the
// fake does not keep).
#include <httplib.h>

#include <catch2/catch.hpp>
#include <functional>
#include <regex>
#include <sstream>

#include "tests/fakeapi/fake_apiserver.h"

namespace istioca::fakeapi {
namespace {

#include "tests/fakeapi/sample_bodies.inc"

const char* kAdmin = "admin-token-0123456789abcdef";
const char* kAlice = "user-token-0123456789abcdef";

void DropManagedFields(OJson& o) {
  if (o.is_object()) {
    if (o.contains("metadata") && o["metadata"].is_object()) o["metadata"].erase("managedFields");
    for (auto& [k, v] : o.items()) DropManagedFields(v);
  } else if (o.is_array()) {
    for (auto& v : o) DropManagedFields(v);
  }
}

std::string Normalize(std::string s) {
  // One JSON document (not a watch stream): re-dumped compactly in its own key order.
  OJson doc = OJson::parse(s, nullptr, false);
  if (!doc.is_discarded()) {
    DropManagedFields(doc);
    const bool newline = !s.empty() && s.back() == '\n';
    s = doc.dump() + (newline ? "\n" : "");
  }
  s = std::regex_replace(s, std::regex(R"(\((\d+)\))"), "(N)");
  s = std::regex_replace(s, std::regex(R"("uid":"[^"]*")"), R"("uid":"U")");
  s = std::regex_replace(s, std::regex(R"("resourceVersion":"\d+")"), R"("resourceVersion":"RV")");
  s = std::regex_replace(s, std::regex(R"("\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")"), R"("TIME")");
  return s;
}

const RecordedAnswer& Recorded(const std::string& id) {
  for (const auto& r : kRecorded) {
    if (id == r.id) return r;
  }
  FAIL("no recorded sample " << id);
  return kRecorded[0];
}

struct Case {
  std::string id;
  std::string token;  // "" = no Authorization header
  std::string method;
  std::string path;
  std::string body;  // "{RV}" is replaced by the seeded secret's or lease's resourceVersion
  std::function<void(FakeApiServer&)> setup;
  bool require_namespaces = false;
};

void SeedSecret(FakeApiServer& s) {
  OJson o;
  o["metadata"]["name"] = "istio.httpbin";
  o["metadata"]["annotations"]["istio.io/service-account.name"] = "httpbin";
  o["type"] = "istio.io/key-and-cert";
  o["data"]["key.pem"] = "S0VZ";
  s.Put("secrets", "demo", o);
}

void SeedLease(FakeApiServer& s) {
  OJson o;
  o["metadata"]["name"] = "istio-ca-leader";
  o["spec"] = OJson{{"holderIdentity", "istio-ca-7c9d8-replica-a"},
                    {"leaseDurationSeconds", 15},
                    {"acquireTime", "2026-11-29T14:30:45.417724Z"},
                    {"renewTime", "2026-11-29T14:30:45.417724Z"},
                    {"leaseTransitions", 0}};
  s.Put("leases", "istio-system", o);
}

const std::string kDummyPem = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n";

void SeedConfigMap(FakeApiServer& s) {
  OJson o;
  o["metadata"]["name"] = "istio-ca-root-cert";
  o["metadata"]["labels"]["istio.io/config"] = "true";
  o["data"]["root-cert.pem"] = kDummyPem;
  s.Put("configmaps", "demo", o);
}

// Sample 107: only the ConfigMaps of that name, in every namespace, in one list.
void SeedConfigMapsForList(FakeApiServer& s) {
  OJson o;
  o["metadata"]["name"] = "istio-ca-root-cert";
  o["metadata"]["labels"]["istio.io/config"] = "true";
  o["data"]["root-cert.pem"] = kDummyPem + kDummyPem;
  s.Put("configmaps", "demo", o);
  o["metadata"]["name"] = "other";
  s.Put("configmaps", "demo", o);
}

void SeedDoomed(FakeApiServer& s) { s.AddNamespace("doomed"); }
void SeedDoomedTerminating(FakeApiServer& s) {
  s.AddNamespace("doomed");
  s.SetNamespaceTerminating("doomed");
}

const std::string kConfigMapBody =
    R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"istio-ca-root-cert","namespace":"demo","labels":{"istio.io/config":"true"}},"data":{"root-cert.pem":"-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"}})";
const std::string kConfigMapPut =
    R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"istio-ca-root-cert","namespace":"demo","labels":{"istio.io/config":"true"},"resourceVersion":"{RV}"},"data":{"root-cert.pem":"-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"}})";
const std::string kLateSecretBody =
    R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"istio.late","namespace":"doomed","annotations":{"istio.io/service-account.name":"late"}},"type":"istio.io/key-and-cert","data":{"key.pem":"eA=="}})";

const std::string kSecretBody =
    R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"istio.httpbin","namespace":"demo","annotations":{"istio.io/service-account.name":"httpbin"}},"type":"istio.io/key-and-cert","data":{"key.pem":"S0VZ"}})";
const std::string kLeaseBody =
    R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"istio-ca-leader","namespace":"istio-system"},"spec":{"holderIdentity":"istio-ca-7c9d8-replica-b","leaseDurationSeconds":15,"acquireTime":"2026-11-29T14:30:45.417724Z","renewTime":"2026-11-29T14:30:45.417724Z","leaseTransitions":0}})";

TEST_CASE("the fake answers the recorded requests like the real API server",
          "[fakeapi][contract]") {
  const std::vector<Case> cases = {
      {"010", kAdmin, "POST", "/api/v1/namespaces/demo/secrets", kSecretBody, SeedSecret},
      {"013", kAdmin, "PUT", "/api/v1/namespaces/demo/secrets/istio.httpbin",
       R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"istio.httpbin","namespace":"demo","resourceVersion":"1"},"type":"istio.io/key-and-cert"})",
       SeedSecret},
      {"014", kAdmin, "PUT", "/api/v1/namespaces/demo/secrets/istio.httpbin",
       R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"istio.httpbin","namespace":"demo","resourceVersion":"{RV}"},"type":"Opaque"})",
       SeedSecret},
      {"016", kAdmin, "DELETE", "/api/v1/namespaces/demo/secrets/istio.httpbin",
       R"({"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"resourceVersion":"1"}})",
       SeedSecret},
      {"017", kAdmin, "DELETE", "/api/v1/namespaces/demo/secrets/istio.httpbin", "", SeedSecret},
      {"018", kAdmin, "DELETE", "/api/v1/namespaces/demo/secrets/istio.httpbin", "", nullptr},
      {"019", kAdmin, "GET", "/api/v1/namespaces/demo/secrets/istio.httpbin", "", nullptr},
      {"025", kAdmin, "POST", "/api/v1/namespaces/demo/secrets",
       R"({"apiVersion":"v1","kind":"Secret","metadata":{"namespace":"demo"},"type":"Opaque"})",
       nullptr},
      {"028", kAdmin, "POST", "/api/v1/namespaces/demo/secrets",
       R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"x","resourceVersion":"5"}})",
       nullptr},
      {"035", kAdmin, "GET", "/api/v1/secrets?fieldSelector=data.key%3Dx", "", nullptr},
      {"038", kAdmin, "GET",
       "/api/v1/"
       "serviceaccounts?watch=1&resourceVersion=1&allowWatchBookmarks=true&timeoutSeconds=10",
       "", [](FakeApiServer& s) { s.ExpireHistory(); }},
      {"041", kAdmin, "GET", "/api/v1/serviceaccounts?watch=1&resourceVersion=abc&timeoutSeconds=5",
       "", nullptr},
      {"063", kAlice, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
       R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x","audiences":["istio-ca"]}})",
       nullptr},
      {"072", kAdmin, "POST", "/apis/coordination.k8s.io/v1/namespaces/istio-system/leases",
       kLeaseBody, SeedLease},
      {"075", kAdmin, "PUT",
       "/apis/coordination.k8s.io/v1/namespaces/istio-system/leases/istio-ca-leader",
       R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"istio-ca-leader","namespace":"istio-system","resourceVersion":"1"},"spec":{"holderIdentity":"a","leaseDurationSeconds":15}})",
       SeedLease},
      {"077", kAdmin, "PUT",
       "/apis/coordination.k8s.io/v1/namespaces/istio-system/leases/istio-ca-leader",
       R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"istio-ca-leader","namespace":"istio-system","resourceVersion":"{RV}"},"spec":{"holderIdentity":"istio-ca-7c9d8-replica-b","leaseDurationSeconds":15,"acquireTime":"2026-11-29T14:30:48.112562Z","renewTime":"2026-11-29T14:30:48Z","leaseTransitions":1}})",
       SeedLease},
      {"079", "not-a-valid-token", "GET", "/api/v1/namespaces/demo/secrets", "", nullptr},
      {"080", kAlice, "GET", "/api/v1/namespaces/demo/secrets", "", nullptr},
      {"081", kAlice, "GET", "/api/v1/secrets", "", nullptr},
      {"082", kAlice, "GET", "/api/v1/secrets?watch=1&resourceVersion=0", "", nullptr},
      {"083", "", "GET", "/api/v1/namespaces/demo/secrets", "", nullptr},
      {"084", kAlice, "GET", "/api/v1/namespaces/demo/secrets/istio.app1", "", nullptr},
      {"085", kAdmin, "POST", "/api/v1/namespaces",
       R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"doomed"}})", nullptr},
      {"086", kAdmin, "DELETE", "/api/v1/namespaces/doomed", "", SeedDoomed},
      {"088", kAdmin, "POST", "/api/v1/namespaces/doomed/secrets", kLateSecretBody,
       SeedDoomedTerminating},
      {"091", kAdmin, "GET", "/api/v1/namespaces/doomed", "", nullptr},
      {"092", kAdmin, "POST", "/api/v1/namespaces/doomed/secrets", kLateSecretBody, nullptr, true},
      {"102", kAdmin, "POST", "/api/v1/namespaces/demo/configmaps", kConfigMapBody, nullptr},
      {"103", kAdmin, "POST", "/api/v1/namespaces/demo/configmaps", kConfigMapBody, SeedConfigMap},
      {"104", kAdmin, "GET", "/api/v1/namespaces/demo/configmaps/istio-ca-root-cert", "",
       SeedConfigMap},
      {"105", kAdmin, "PUT", "/api/v1/namespaces/demo/configmaps/istio-ca-root-cert", kConfigMapPut,
       SeedConfigMap},
      {"106", kAdmin, "PUT", "/api/v1/namespaces/demo/configmaps/istio-ca-root-cert",
       std::regex_replace(kConfigMapPut, std::regex(R"(\{RV\})"), "1"), SeedConfigMap},
      {"107", kAdmin, "GET",
       "/api/v1/configmaps?fieldSelector=metadata.name%3Distio-ca-root-cert&limit=500", "",
       SeedConfigMapsForList},
      {"108", kAdmin, "DELETE", "/api/v1/namespaces/demo/configmaps/istio-ca-root-cert", "",
       SeedConfigMap},
      {"109", kAdmin, "GET", "/api/v1/namespaces/demo/configmaps/istio-ca-root-cert", "", nullptr},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION("sample " << c.id) {
      FakeApiOptions options;
      options.require_namespaces = c.require_namespaces;
      auto server = FakeApiServer::Start(options);
      REQUIRE(server.ok());
      FakeApiServer& s = **server;
      s.AddUser(kAdmin, "admin", true);
      s.AddUser(kAlice, "alice", false);
      if (c.setup) c.setup(s);
      std::string body = c.body;
      if (auto pos = body.find("{RV}"); pos != std::string::npos) {
        auto obj = s.Find("secrets", "demo", "istio.httpbin");
        if (!obj) obj = s.Find("configmaps", "demo", "istio-ca-root-cert");
        if (!obj) obj = s.Find("leases", "istio-system", "istio-ca-leader");
        REQUIRE(obj);
        body.replace(pos, 4, (*obj)["metadata"]["resourceVersion"].get<std::string>());
      }
      httplib::Client client("127.0.0.1", s.port());
      httplib::Request req;
      req.method = c.method;
      req.path = c.path;
      req.set_header("Accept", "application/json");
      if (!c.token.empty()) req.set_header("Authorization", "Bearer " + c.token);
      if (!body.empty()) {
        req.body = body + "\n";
        req.set_header("Content-Type", "application/json");
      }
      auto res = client.send(req);
      REQUIRE(res);
      const RecordedAnswer& want = Recorded(c.id);
      CHECK(res->status == want.status);
      CHECK(res->get_header_value("Content-Type") == "application/json");
      CHECK(Normalize(res->body) == Normalize(want.body));
    }
  }
}

TEST_CASE("paged lists: continue tokens, remainingItemCount, one snapshot RV (samples 042-046)",
          "[fakeapi][contract]") {
  auto server = FakeApiServer::Start(FakeApiOptions{});
  REQUIRE(server.ok());
  FakeApiServer& s = **server;
  s.AddUser(kAdmin, "admin", true);
  for (const char* ns : {"default", "demo", "demo", "kube-system", "istio-system"}) {
    OJson sa;
    sa["metadata"]["name"] = std::string("sa-") + std::to_string(s.resource_version());
    s.Put("serviceaccounts", ns, sa);
  }
  httplib::Client client("127.0.0.1", s.port());
  httplib::Headers h{{"Authorization", std::string("Bearer ") + kAdmin}};
  std::string path = "/api/v1/serviceaccounts?limit=2";
  std::vector<std::string> keys;
  std::string rv;
  for (int page = 0; page < 5; ++page) {
    auto res = client.Get(path.c_str(), h);
    REQUIRE(res);
    REQUIRE(res->status == 200);
    auto list = OJson::parse(res->body);
    CHECK(list["kind"] == "ServiceAccountList");
    if (rv.empty()) rv = list["metadata"]["resourceVersion"];
    CHECK(list["metadata"]["resourceVersion"] == rv);
    for (const auto& item : list["items"]) {
      CHECK_FALSE(item.contains("kind"));  // items in a List carry no kind/apiVersion
      keys.push_back(item["metadata"]["namespace"].get<std::string>() + "/" +
                     item["metadata"]["name"].get<std::string>());
    }
    if (!list["metadata"].contains("continue")) {
      CHECK_FALSE(list["metadata"].contains("remainingItemCount"));
      break;
    }
    CHECK(list["metadata"]["remainingItemCount"].get<int>() == 5 - static_cast<int>(keys.size()));
    path = "/api/v1/serviceaccounts?limit=2&continue=" +
           list["metadata"]["continue"].get<std::string>();
  }
  CHECK(keys.size() == 5);
  CHECK(std::is_sorted(keys.begin(), keys.end()));  // etcd order: namespace/name
}

TEST_CASE("watch stream: one JSON line per event, bookmarks only when asked (samples 003, 037)",
          "[fakeapi][contract]") {
  FakeApiOptions o;
  o.bookmark_interval = std::chrono::milliseconds(100);
  auto server = FakeApiServer::Start(o);
  REQUIRE(server.ok());
  FakeApiServer& s = **server;
  s.AddUser(kAdmin, "admin", true);
  OJson sa;
  sa["metadata"]["name"] = "app1";
  s.Put("serviceaccounts", "demo", sa);
  httplib::Client client("127.0.0.1", s.port());
  httplib::Headers h{{"Authorization", std::string("Bearer ") + kAdmin}};
  // Without a resourceVersion: synthetic ADDED for what exists, no bookmarks, clean end at timeout.
  auto res = client.Get("/api/v1/serviceaccounts?watch=1&timeoutSeconds=1", h);
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("Transfer-Encoding") == "chunked");
  auto first_nl = res->body.find('\n');
  REQUIRE(first_nl != std::string::npos);
  CHECK(first_nl + 1 == res->body.size());
  auto ev = OJson::parse(res->body.substr(0, first_nl));
  CHECK(ev["type"] == "ADDED");
  CHECK(ev["object"]["kind"] == "ServiceAccount");
  CHECK(ev["object"]["apiVersion"] == "v1");
  // With bookmarks: the BOOKMARK object is the bare kind with an RV and a null timestamp.
  std::string rv = std::to_string(s.resource_version());
  res = client.Get(
      ("/api/v1/"
       "serviceaccounts?watch=1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=" +
       rv)
          .c_str(),
      h);
  REQUIRE(res);
  auto nl = res->body.find('\n');
  REQUIRE(nl != std::string::npos);
  CHECK(
      res->body.substr(0, nl) ==
      R"({"type":"BOOKMARK","object":{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"resourceVersion":")" +
          rv + R"(","creationTimestamp":null}}})");
}

std::vector<std::string> WatchTypes(const std::string& stream, std::vector<std::string>* names) {
  std::vector<std::string> types;
  std::stringstream ss(stream);
  std::string line;
  while (std::getline(ss, line)) {
    auto ev = OJson::parse(line);
    types.push_back(ev["type"]);
    names->push_back(ev["object"]["metadata"].value("namespace", "") + "/" +
                     ev["object"]["metadata"].value("name", ""));
  }
  return types;
}

TEST_CASE("watch by metadata.name: configmaps across namespaces, a namespace's life (093)",
          "[fakeapi][contract]") {
  auto server = FakeApiServer::Start(FakeApiOptions{});
  REQUIRE(server.ok());
  FakeApiServer& s = **server;
  s.AddUser(kAdmin, "admin", true);
  httplib::Client client("127.0.0.1", s.port());
  httplib::Headers h{{"Authorization", std::string("Bearer ") + kAdmin}};

  std::string rv = std::to_string(s.resource_version());
  SeedConfigMap(s);  // demo/istio-ca-root-cert
  OJson other;
  other["metadata"]["name"] = "other";
  s.Put("configmaps", "demo", other);
  OJson cm = *s.Find("configmaps", "demo", "istio-ca-root-cert");
  cm["data"]["extra"] = "x";
  s.Put("configmaps", "demo", cm);
  cm["metadata"].erase("resourceVersion");
  s.Put("configmaps", "prod", cm);
  REQUIRE(s.Remove("configmaps", "demo", "istio-ca-root-cert"));
  auto res = client.Get(("/api/v1/configmaps?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%"
                         "3Distio-ca-root-cert&resourceVersion=" +
                         rv)
                            .c_str(),
                        h);
  REQUIRE(res);
  CHECK(res->status == 200);
  std::vector<std::string> names;
  CHECK(WatchTypes(res->body, &names) ==
        std::vector<std::string>{"ADDED", "MODIFIED", "ADDED", "DELETED"});
  CHECK(names == std::vector<std::string>{"demo/istio-ca-root-cert", "demo/istio-ca-root-cert",
                                          "prod/istio-ca-root-cert", "demo/istio-ca-root-cert"});

  // Namespaces: cluster-scoped list, then ADDED, MODIFIED (Terminating), DELETED.
  rv = std::to_string(s.resource_version());
  s.AddNamespace("doomed");
  auto del = client.Delete("/api/v1/namespaces/doomed", h);
  REQUIRE(del);
  CHECK(del->status == 200);
  CHECK(OJson::parse(del->body)["status"]["phase"] == "Terminating");
  auto list = client.Get("/api/v1/namespaces", h);
  REQUIRE(list);
  auto items = OJson::parse(list->body);
  CHECK(items["kind"] == "NamespaceList");
  REQUIRE(items["items"].size() == 1);
  CHECK_FALSE(items["items"][0]["metadata"].contains("namespace"));
  CHECK(items["items"][0]["metadata"].contains("deletionTimestamp"));
  REQUIRE(s.Remove("namespaces", "", "doomed"));
  res = client.Get(("/api/v1/namespaces?watch=1&timeoutSeconds=1&fieldSelector=metadata.name%"
                    "3Ddoomed&resourceVersion=" +
                    rv)
                       .c_str(),
                   h);
  REQUIRE(res);
  names.clear();
  CHECK(WatchTypes(res->body, &names) == std::vector<std::string>{"ADDED", "MODIFIED", "DELETED"});
}

TEST_CASE("TokenReview answers 201 with the verdict in status (samples 052, 053, 054)",
          "[fakeapi][contract]") {
  auto server = FakeApiServer::Start(FakeApiOptions{});
  REQUIRE(server.ok());
  FakeApiServer& s = **server;
  s.AddUser(kAdmin, "admin", true);
  s.AddReviewableToken(
      "jwt", {"system:serviceaccount:demo:httpbin",
              "1d554cac-e9c1-41fc-9483-058b685815a7",
              {"system:serviceaccounts", "system:serviceaccounts:demo", "system:authenticated"},
              {"istio-ca"}});
  httplib::Client client("127.0.0.1", s.port());
  httplib::Headers h{{"Authorization", std::string("Bearer ") + kAdmin}};
  auto review = [&](const std::string& spec) {
    auto res = client.Post(
        "/apis/authentication.k8s.io/v1/tokenreviews", h,
        R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":)" + spec + "}",
        "application/json");
    REQUIRE(res);
    CHECK(res->status == 201);
    return OJson::parse(res->body)["status"];
  };
  CHECK(
      review(R"({"token":"jwt","audiences":["istio-ca"]})").dump() ==
      R"({"authenticated":true,"user":{"username":"system:serviceaccount:demo:httpbin","uid":"1d554cac-e9c1-41fc-9483-058b685815a7","groups":["system:serviceaccounts","system:serviceaccounts:demo","system:authenticated"]},"audiences":["istio-ca"]})");
  CHECK(review(R"({"token":"garbage.token.value","audiences":["istio-ca"]})").dump() ==
        R"({"user":{},"error":"invalid bearer token"})");
  CHECK(
      review(R"({"token":"jwt","audiences":["wrong-audience"]})").dump() ==
      R"({"user":{},"error":"[invalid bearer token, token audiences [\"istio-ca\"] is invalid for the target audiences [\"wrong-audience\"]]"})");
}

}  // namespace
}  // namespace istioca::fakeapi
