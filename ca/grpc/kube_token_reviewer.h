// ca/grpc/kube_token_reviewer.h — the CSR service's TokenReviewer on the Kubernetes API: one
// TokenReview (k8s/token_review.h) per call, with --token-audiences; only service accounts are
// accepted. A pod-bound token's pod (user.extra pod-name and pod-uid) is passed on: the CSR
// service keys its rate limit by it. No cache of its own: the server wraps it in
// TokenReviewCache (authn.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ca/grpc/authn.h"
#include "k8s/api.h"
#include "pki/spiffe.h"

namespace istioca::ca {

class KubeTokenReviewer final : public TokenReviewer {
 public:
  KubeTokenReviewer(std::shared_ptr<k8s::Api> api, std::vector<std::string> audiences)
      : api_(std::move(api)), audiences_(std::move(audiences)) {}
  Result<TokenIdentity> Review(const std::string& bearer_token) override;

 private:
  std::shared_ptr<k8s::Api> api_;
  std::vector<std::string> audiences_;
};

// Parses "system:serviceaccount:<ns>:<sa>" (a TokenReview username).
std::optional<pki::ServiceAccountRef> ParseServiceAccountUser(const std::string& username);

}  // namespace istioca::ca
