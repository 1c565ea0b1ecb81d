#include "k8s/errors.h"

#include <catch2/catch.hpp>

namespace istioca::k8s {
namespace {

TEST_CASE("Status bodies of the API server map to codes and keep the reason", "[k8s][errors]") {
  struct Row {
    int http;
    std::string body;
    Code code;
    std::string reason;
    bool conflict, gone, transient;
  };
  auto row = GENERATE(values<Row>({
      {404,
       R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \"istio.httpbin\" not found","reason":"NotFound","details":{"name":"istio.httpbin","kind":"secrets"},"code":404})",
       Code::kNotFound, "NotFound", false, false, false},
      {409,
       R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \"istio.httpbin\" already exists","reason":"AlreadyExists","details":{"name":"istio.httpbin","kind":"secrets"},"code":409})",
       Code::kAlreadyExists, "AlreadyExists", false, false, false},
      {409,
       R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled","reason":"Conflict","details":{"name":"istio.httpbin","kind":"secrets"},"code":409})",
       Code::kAborted, "Conflict", true, false, false},
      {410,
       R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"The resourceVersion for the provided list is too old.","reason":"Expired","code":410})",
       Code::kFailedPrecondition, "Expired", false, true, false},
      {403,
       R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets is forbidden","reason":"Forbidden","details":{"kind":"secrets"},"code":403})",
       Code::kPermissionDenied, "Forbidden", false, false, false},
      {401,
       R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})",
       Code::kUnauthenticated, "Unauthorized", false, false, false},
      {422,
       R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Secret \"x\" is invalid","reason":"Invalid","code":422})",
       Code::kInvalidArgument, "Invalid", false, false, false},
      {400,
       R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"field label not supported: data.key","reason":"BadRequest","code":400})",
       Code::kInvalidArgument, "BadRequest", false, false, false},
      {500,
       R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"resourceVersion should not be set on objects to be created","code":500})",
       Code::kUnavailable, "", false, false, true},
      {503, "<html>proxy says no</html>", Code::kUnavailable, "", false, false, true},
      {429,
       R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"slow down","reason":"TooManyRequests","code":429})",
       Code::kResourceExhausted, "TooManyRequests", false, false, true},
  }));
  Status s = StatusFromHttp(row.http, row.body);
  INFO(row.body);
  CHECK(s.code() == row.code);
  CHECK(ReasonOf(s) == row.reason);
  CHECK(HttpCodeOf(s) == row.http);
  CHECK(IsConflict(s) == row.conflict);
  CHECK(IsGone(s) == row.gone);
  CHECK(IsTransient(s) == row.transient);
}

TEST_CASE("the server's message is kept for the operator", "[k8s][errors]") {
  Status s = StatusFromHttp(
      404,
      R"({"kind":"Status","message":"secrets \"a\" not found","reason":"NotFound","code":404})");
  CHECK(s.message().find("secrets \"a\" not found") != std::string::npos);
  CHECK(IsNotFound(s));
}

TEST_CASE("a create into a terminating namespace is told apart from other 403s (sample 088)",
          "[k8s][errors]") {
  Status terminating = StatusFromHttp(
      403,
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \"istio.late\" is forbidden: unable to create new content in namespace doomed because it is being terminated","reason":"Forbidden","details":{"name":"istio.late","kind":"secrets","causes":[{"reason":"NamespaceTerminating","message":"namespace doomed is being terminated","field":"metadata.namespace"}]},"code":403})");
  CHECK(IsNamespaceTerminating(terminating));
  CHECK(ReasonOf(terminating) == "Forbidden");  // the cause does not leak into the reason
  CHECK(HttpCodeOf(terminating) == 403);
  Status rbac = StatusFromHttp(
      403,
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets is forbidden","reason":"Forbidden","details":{"kind":"secrets"},"code":403})");
  CHECK_FALSE(IsNamespaceTerminating(rbac));
}

TEST_CASE("a request without an answer is transient and has no HTTP code", "[k8s][errors]") {
  Status s = TransportError("Connection refused");
  CHECK(IsTransient(s));
  CHECK(HttpCodeOf(s) == 0);
  CHECK_FALSE(IsGone(s));
}

}  // namespace
}  // namespace istioca::k8s
