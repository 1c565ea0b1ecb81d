#include "k8s/token_review.h"

namespace istioca::k8s {
namespace {

std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::vector<std::string> Strings(const Json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

std::string TokenReviewResult::ExtraValue(const std::string& key) const {
  auto it = extra.find(key);
  return it != extra.end() && it->second.size() == 1 ? it->second.front() : std::string();
}

Result<TokenReviewResult> TokenReviewFromJson(const Json& j) {
  TokenReviewResult r;
  auto st = j.find("status");
  if (st == j.end() || !st->is_object()) return Internal("TokenReview answer has no status");
  r.authenticated = st->value("authenticated", false);
  r.error = Str(*st, "error");
  auto u = st->find("user");
  if (u != st->end() && u->is_object()) {
    r.username = Str(*u, "username");
    r.uid = Str(*u, "uid");
    r.groups = Strings(*u, "groups");
    auto extra = u->find("extra");
    if (extra != u->end() && extra->is_object()) {
      for (const auto& [k, v] : extra->items()) r.extra[k] = Strings(*extra, k.c_str());
    }
  }
  r.audiences = Strings(*st, "audiences");
  return r;
}

Result<TokenReviewResult> ReviewToken(Api& api, const std::string& token,
                                      const std::vector<std::string>& audiences) {
  Json spec{{"token", token}};
  if (!audiences.empty()) spec["audiences"] = audiences;
  Json body{{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "TokenReview"}, {"spec", spec}};
  ASSIGN_OR_RETURN(Json j, api.Post(kTokenReviews, "", body));
  return TokenReviewFromJson(j);
}

}  // namespace istioca::k8s
