#include "k8s/objects.h"

#include <catch2/catch.hpp>

namespace istioca::k8s {
namespace {

TEST_CASE("MicroTime has exactly six fraction digits and a Z (samples 071, 077, 078)",
          "[k8s][objects]") {
  auto t = ParseMicroTime("2026-11-29T14:30:45.417724Z");
  REQUIRE(t.ok());
  CHECK(FormatMicroTime(*t) == "2026-11-29T14:30:45.417724Z");
  auto whole = ParseRfc3339("2026-11-29T14:30:48Z");
  REQUIRE(whole.ok());
  CHECK(FormatMicroTime(*whole) == "2026-11-29T14:30:48.000000Z");
}

TEST_CASE("a Secret from the API server (sample 009) decodes to its bytes", "[k8s][objects]") {
  const char* body =
      R"({"kind":"Secret","apiVersion":"v1","metadata":{"name":"istio.httpbin","namespace":"demo","uid":"f3656f85-acee-40b2-b927-3bc937fc5fd8","resourceVersion":"224","creationTimestamp":"2026-11-29T14:26:39Z","annotations":{"istio.io/service-account.name":"httpbin"},"managedFields":[]},"data":{"cert-chain.pem":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClBMQUNFSE9MREVSLUxFQUYtQ0VSVAotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==","key.pem":"LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tClBMQUNFSE9MREVSLUtFWQotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==","root-cert.pem":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClBMQUNFSE9MREVSLVJPT1QtQ0VSVAotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg=="},"type":"istio.io/key-and-cert"})";
  auto s = SecretFromJson(Json::parse(body));
  REQUIRE(s.ok());
  CHECK(s->meta.name == "istio.httpbin");
  CHECK(s->meta.ns == "demo");
  CHECK(s->meta.resource_version == "224");
  CHECK(s->type == "istio.io/key-and-cert");
  CHECK(s->meta.annotations.at("istio.io/service-account.name") == "httpbin");
  CHECK(s->data.at("key.pem") ==
        "-----BEGIN PRIVATE KEY-----\nPLACEHOLDER-KEY\n-----END PRIVATE KEY-----\n");

  // And back: the shape of the request in sample 009 (plus the RV for a conditional update).
  Json j = SecretToJson(*s);
  CHECK(j["kind"] == "Secret");
  CHECK(j["apiVersion"] == "v1");
  CHECK(j["type"] == "istio.io/key-and-cert");
  CHECK(j["metadata"]["resourceVersion"] == "224");
  CHECK(j["data"]["root-cert.pem"] == Json::parse(body)["data"]["root-cert.pem"]);
}

TEST_CASE("a ConfigMap from the API server (sample 104) decodes, and encodes as sample 102 sent it",
          "[k8s][objects]") {
  const char* body =
      R"({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"istio-ca-root-cert","namespace":"demo","uid":"01405e14-5f23-45ce-913c-b9d69f06f0f5","resourceVersion":"9232","creationTimestamp":"2026-12-02T05:14:54Z","labels":{"istio.io/config":"true"},"managedFields":[]},"data":{"root-cert.pem":"-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"}})";
  ConfigMap c = ConfigMapFromJson(Json::parse(body));
  CHECK(c.meta.name == "istio-ca-root-cert");
  CHECK(c.meta.ns == "demo");
  CHECK(c.meta.resource_version == "9232");
  CHECK(c.meta.labels == std::map<std::string, std::string>{{"istio.io/config", "true"}});
  CHECK(c.data.at("root-cert.pem") ==
        "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n");
  c.meta.resource_version.clear();
  c.meta.uid.clear();
  CHECK(
      ConfigMapToJson(c) ==
      Json::parse(
          R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"istio-ca-root-cert","namespace":"demo","labels":{"istio.io/config":"true"}},"data":{"root-cert.pem":"-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"}})"));
}

TEST_CASE("merging into a ConfigMap keeps what others put there and reports a change only once",
          "[k8s][objects]") {
  Json o = Json::parse(
      R"({"metadata":{"name":"c","labels":{"team":"a"},"ownerReferences":[{"name":"x"}]},"data":{"root-cert.pem":"OLD","mine":"1"},"binaryData":{"b":"AA=="}})");
  CHECK(SetConfigMapData(o, {{"root-cert.pem", "NEW"}}));
  CHECK_FALSE(SetConfigMapData(o, {{"root-cert.pem", "NEW"}}));
  CHECK(SetLabels(o, {{"istio.io/config", "true"}}));
  CHECK_FALSE(SetLabels(o, {{"istio.io/config", "true"}}));
  CHECK(o["data"] == Json{{"mine", "1"}, {"root-cert.pem", "NEW"}});
  CHECK(o["metadata"]["labels"] == Json{{"istio.io/config", "true"}, {"team", "a"}});
  CHECK(o["metadata"]["ownerReferences"].size() == 1);
  CHECK(o["binaryData"]["b"] == "AA==");
  Json empty = Json::object();
  CHECK(SetConfigMapData(empty, {{"k", "v"}}));
  CHECK(empty["data"]["k"] == "v");
}

TEST_CASE("a Namespace's phase says whether it is being deleted (samples 085, 086)",
          "[k8s][objects]") {
  Namespace active = NamespaceFromJson(Json::parse(
      R"({"kind":"Namespace","apiVersion":"v1","metadata":{"name":"doomed","uid":"b52375ae-b2de-4f33-974c-bd3cb7f36a4e","resourceVersion":"273","labels":{"kubernetes.io/metadata.name":"doomed"}},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}})"));
  CHECK(active.meta.name == "doomed");
  CHECK(active.meta.ns.empty());
  CHECK_FALSE(active.terminating());
  Namespace doomed = NamespaceFromJson(Json::parse(
      R"({"kind":"Namespace","apiVersion":"v1","metadata":{"name":"doomed","resourceVersion":"277","deletionTimestamp":"2026-11-29T14:31:13Z"},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Terminating"}})"));
  CHECK(doomed.phase == "Terminating");
  CHECK(doomed.terminating());
}

TEST_CASE("a Secret whose data is not base64 is an error, not garbage", "[k8s][objects]") {
  auto s = SecretFromJson(
      Json::parse(R"({"metadata":{"name":"x","namespace":"y"},"data":{"k":"%%%"}})"));
  CHECK(s.status().code() == Code::kInvalidArgument);
}

TEST_CASE("a Lease round-trips with MicroTime fields (sample 071)", "[k8s][objects]") {
  const char* body =
      R"({"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"istio-ca-leader","namespace":"istio-system","resourceVersion":"270"},"spec":{"holderIdentity":"istio-ca-7c9d8-replica-a","leaseDurationSeconds":15,"acquireTime":"2026-11-29T14:30:45.417724Z","renewTime":"2026-11-29T14:30:45.417724Z","leaseTransitions":0}})";
  auto l = LeaseFromJson(Json::parse(body));
  REQUIRE(l.ok());
  CHECK(l->holder == "istio-ca-7c9d8-replica-a");
  CHECK(l->duration_seconds == 15);
  REQUIRE(l->renew_time);
  Json back = LeaseToJson(*l);
  CHECK(back["spec"] == Json::parse(body)["spec"]);
}

}  // namespace
}  // namespace istioca::k8s

namespace istioca::k8s {

TEST_CASE("CleanseJson overwrites every string of a Secret's JSON in place", "[k8s][objects]") {
  Secret s;
  s.meta.name = "istio.web";
  s.meta.ns = "default";
  s.data["key.pem"] = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";
  Json j = SecretToJson(s);
  std::string& encoded = j["data"]["key.pem"].get_ref<std::string&>();
  const size_t size = encoded.size();
  REQUIRE(size > 0);
  const char* bytes = encoded.data();
  CleanseJson(j);
  // The same buffer, same length, every byte zero: nothing of the key is left in it.
  CHECK(j["data"]["key.pem"].get_ref<std::string&>().data() == bytes);
  CHECK(std::string(bytes, size) == std::string(size, '\0'));
  CHECK(j["metadata"]["name"].get<std::string>() == std::string(9, '\0'));
}

}  // namespace istioca::k8s
