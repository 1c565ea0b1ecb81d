// k8s/token_review.h — the TokenReview call (authentication.k8s.io/v1): who a bearer token
// belongs to, as the API server says. Knows nothing of SPIFFE or service-account identities;
// no cache (the caller that authenticates RPCs keeps one, ca/grpc/authn.h TokenReviewCache).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "k8s/api.h"

namespace istioca::k8s {

// user.extra keys of a pod-bound service-account token (sample 065).
inline constexpr const char* kExtraPodName = "authentication.kubernetes.io/pod-name";
inline constexpr const char* kExtraPodUid = "authentication.kubernetes.io/pod-uid";

struct TokenReviewResult {
  bool authenticated = false;
  std::string username;  // "system:serviceaccount:<ns>:<sa>" for service accounts
  std::string uid;
  std::vector<std::string> groups;
  // user.extra: for a pod-bound token the pod's name and uid (kExtraPodName, kExtraPodUid).
  std::map<std::string, std::vector<std::string>> extra;
  std::vector<std::string> audiences;  // the overlap the server found
  std::string error;                   // the server's reason when not authenticated

  // The single value of user.extra[key]; empty when absent or not exactly one.
  std::string ExtraValue(const std::string& key) const;
  std::string PodName() const { return ExtraValue(kExtraPodName); }
  std::string PodUid() const { return ExtraValue(kExtraPodUid); }
};

// POST a TokenReview. `audiences` empty: the server's own API audience applies (sample 055),
// so a CA that wants tokens minted for it must pass its audience. An HTTP error (403 without
// RBAC for tokenreviews, 5xx) is an error; a rejected token is an OK result with
// authenticated=false.
Result<TokenReviewResult> ReviewToken(Api& api, const std::string& token,
                                      const std::vector<std::string>& audiences);

// The TokenReview answer body → result (exposed for tests).
Result<TokenReviewResult> TokenReviewFromJson(const Json& answer);

}  // namespace istioca::k8s
