#include "ca/grpc/kube_token_reviewer.h"

#include "k8s/token_review.h"

namespace istioca::ca {

std::optional<pki::ServiceAccountRef> ParseServiceAccountUser(const std::string& username) {
  const std::string prefix = "system:serviceaccount:";
  if (username.rfind(prefix, 0) != 0) return std::nullopt;
  std::string rest = username.substr(prefix.size());
  auto colon = rest.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= rest.size()) return std::nullopt;
  std::string sa = rest.substr(colon + 1);
  if (sa.find(':') != std::string::npos) return std::nullopt;
  return pki::ServiceAccountRef{rest.substr(0, colon), sa};
}

Result<TokenIdentity> KubeTokenReviewer::Review(const std::string& bearer_token) {
  auto review = k8s::ReviewToken(*api_, bearer_token, audiences_);
  if (!review.ok()) {
    if (review.status().code() == Code::kUnavailable ||
        review.status().code() == Code::kResourceExhausted) {
      return Unavailable("token review unavailable", review.status().message());
    }
    return Internal("token review failed", review.status().message());
  }
  if (!review->authenticated) {
    return Status(Code::kUnauthenticated, "the bearer token was not accepted", review->error);
  }
  auto sa = ParseServiceAccountUser(review->username);
  if (!sa) {
    return Status(Code::kUnauthenticated, "the bearer token is not a service account's",
                  "user=" + review->username);
  }
  // Both or neither: a pod name without its uid cannot tell two pods of one name apart.
  std::string pod_name = review->PodName(), pod_uid = review->PodUid();
  if (pod_uid.empty()) pod_name.clear();
  return TokenIdentity{sa->ns, sa->sa, std::move(pod_name), std::move(pod_uid)};
}

}  // namespace istioca::ca
