#include "k8s/errors.h"

#include <nlohmann/json.hpp>

namespace istioca::k8s {
namespace {

constexpr std::string_view kTag = "k8s http=";

Code CodeFor(int http, const std::string& reason) {
  if (reason == "NotFound" || http == 404) return Code::kNotFound;
  if (reason == "AlreadyExists") return Code::kAlreadyExists;
  if (reason == "Conflict" || http == 409) return Code::kAborted;
  if (reason == "Expired" || reason == "Gone" || http == 410) return Code::kFailedPrecondition;
  if (reason == "Forbidden" || http == 403) return Code::kPermissionDenied;
  if (reason == "Unauthorized" || http == 401) return Code::kUnauthenticated;
  if (reason == "TooManyRequests" || http == 429) return Code::kResourceExhausted;
  if (http >= 500) return Code::kUnavailable;
  if (http == 400 || http == 422 || reason == "Invalid" || reason == "BadRequest") {
    return Code::kInvalidArgument;
  }
  return Code::kInternal;
}

}  // namespace

Status StatusFromHttp(int http_code, std::string_view body) {
  std::string reason;
  std::string message;
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.value("kind", "") == "Status") {
    if (j.contains("reason") && j["reason"].is_string()) reason = j["reason"];
    if (j.contains("message") && j["message"].is_string()) message = j["message"];
  }
  if (message.empty()) message = "HTTP " + std::to_string(http_code);
  return Status(CodeFor(http_code, reason), "kubernetes API: " + message,
                std::string(kTag) + std::to_string(http_code) + " reason=" + reason);
}

Status TransportError(std::string_view what) {
  return Status(Code::kUnavailable, "kubernetes API unreachable: " + std::string(what),
                std::string(kTag) + "0 reason=");
}

std::string ReasonOf(const Status& s) {
  const std::string& d = s.detail();
  if (d.rfind(kTag, 0) != 0) return "";
  auto pos = d.find(" reason=");
  return pos == std::string::npos ? "" : d.substr(pos + 8);
}

int HttpCodeOf(const Status& s) {
  const std::string& d = s.detail();
  if (d.rfind(kTag, 0) != 0) return 0;
  return std::atoi(d.c_str() + kTag.size());
}

bool IsGone(const Status& s) {
  return HttpCodeOf(s) == 410 || ReasonOf(s) == "Expired" || ReasonOf(s) == "Gone";
}

bool IsTransient(const Status& s) {
  return s.code() == Code::kUnavailable || s.code() == Code::kResourceExhausted;
}

}  // namespace istioca::k8s
