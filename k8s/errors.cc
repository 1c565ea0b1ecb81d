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
  std::string cause;
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.value("kind", "") == "Status") {
    if (j.contains("reason") && j["reason"].is_string()) reason = j["reason"];
    if (j.contains("message") && j["message"].is_string()) message = j["message"];
    // The first cause's reason (sample 088: Forbidden with cause NamespaceTerminating).
    const auto& d = j.contains("details") ? j["details"] : nlohmann::json();
    if (d.is_object() && d.contains("causes") && d["causes"].is_array() && !d["causes"].empty() &&
        d["causes"][0].is_object() && d["causes"][0].contains("reason") &&
        d["causes"][0]["reason"].is_string()) {
      cause = d["causes"][0]["reason"];
    }
  }
  if (message.empty()) message = "HTTP " + std::to_string(http_code);
  std::string detail = std::string(kTag) + std::to_string(http_code) + " reason=" + reason;
  if (!cause.empty()) detail += " cause=" + cause;
  return Status(CodeFor(http_code, reason), "kubernetes API: " + message, detail);
}

Status TransportError(std::string_view what) {
  return Status(Code::kUnavailable, "kubernetes API unreachable: " + std::string(what),
                std::string(kTag) + "0 reason=");
}

namespace {

// The value of " key=" in the detail of a Status made above (values have no spaces).
std::string Field(const Status& s, std::string_view key) {
  const std::string& d = s.detail();
  if (d.rfind(kTag, 0) != 0) return "";
  const std::string needle = " " + std::string(key) + "=";
  auto pos = d.find(needle);
  if (pos == std::string::npos) return "";
  pos += needle.size();
  return d.substr(pos, d.find(' ', pos) - pos);
}

}  // namespace

std::string ReasonOf(const Status& s) { return Field(s, "reason"); }

bool IsNamespaceTerminating(const Status& s) {
  return s.code() == Code::kPermissionDenied && Field(s, "cause") == "NamespaceTerminating";
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
