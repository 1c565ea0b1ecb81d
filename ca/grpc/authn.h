// ca/grpc/authn.h — who is calling the CSR service.
//
// A caller is authenticated by a client certificate that the TLS layer has already verified
// against the CA's current roots (its SPIFFE URI SANs are its identities), or else by an
// `authorization: Bearer <JWT>` header checked with a Kubernetes TokenReview (identity
// spiffe://<trust-domain>/ns/<ns>/sa/<sa>). The certificate wins when both are present, as in
// Istio. In local mode there is no TokenReviewer and only certificates authenticate.
//
// TokenReviewCache keeps review results for a bounded time in a bounded LRU so that a pod-start
// stampede (and its client retries) does not turn into a TokenReview storm. Tokens are keyed by
// their SHA-256, never kept or logged in clear; when the digest cannot be computed the review
// fails (the caller is told to retry) rather than falling back to a key that other tokens share.
//
// A TokenReview blocks on HTTP, so authentication comes in two steps: TryAuthenticate answers
// without blocking whenever it can (a client certificate, a cached review, no credential at all),
// and only the rest goes to Authenticate, which the CSR service runs on its I/O pool (policy.h).
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "pki/spiffe.h"

namespace istioca::ca {

// What a TokenReview says about a service-account token: the service account, and for a
// pod-bound token (status.user.extra, Kubernetes 1.21+) the pod it was minted for. The pod uid
// tells the callers of one service account apart, so that each pod has its own rate limit.
struct TokenIdentity {
  std::string ns;
  std::string sa;
  std::string pod_name;  // empty: the token is not bound to a pod
  std::string pod_uid;   // empty: the token is not bound to a pod
};

// Checks a Kubernetes service-account JWT with a TokenReview (audiences from
// --token-audiences). Provided by the Kubernetes backends; absent in local mode.
class TokenReviewer {
 public:
  virtual ~TokenReviewer() = default;
  // The token's service account (and pod), or kUnauthenticated. May block on the network.
  virtual Result<TokenIdentity> Review(const std::string& bearer_token) = 0;
  // The answer Review would give when it is known without asking anyone (a cache hit), else
  // nullopt. Never blocks on the network.
  virtual std::optional<Result<TokenIdentity>> Cached(const std::string& /*bearer_token*/) {
    return std::nullopt;
  }
};

// What the transport and the call metadata say about a caller, before any decision.
struct PeerCredentials {
  // URI SANs of the client certificate; the TLS layer verified it (empty: no certificate).
  std::vector<std::string> cert_uris;
  bool has_cert = false;
  // Every value of the "authorization" metadata key, in order.
  std::vector<std::string> authorization;
  // The transport's peer address, e.g. "ipv4:10.1.2.3:41234": audit events, and (without the
  // port) the rate-limit key of callers that are not pods.
  std::string address;
};

// The peer address without its port: "ipv4:10.1.2.3:41234" -> "ipv4:10.1.2.3",
// "ipv6:[::1]:443" -> "ipv6:[::1]". An address without a port is returned whole.
std::string PeerHost(std::string_view address);

struct Caller {
  enum class Via { kCertificate, kToken };
  std::vector<std::string> identities;  // SPIFFE IDs, at least one
  Via via = Via::kCertificate;
  // A pod-bound token's pod (TokenIdentity); empty for certificates and unbound tokens.
  std::string pod_name;
  std::string pod_uid;
};

// The token of the first authorization value with the exact prefix "Bearer " (Istio's
// ExtractBearerToken), or empty.
std::string ExtractBearerToken(const std::vector<std::string>& authorization);

class Authenticator {
 public:
  // `reviewer` may be null (local mode: certificates only).
  Authenticator(std::string trust_domain, std::shared_ptr<TokenReviewer> reviewer)
      : trust_domain_(std::move(trust_domain)), reviewer_(std::move(reviewer)) {}

  // kUnauthenticated when no credential proves an identity; kUnavailable when the token could
  // not be reviewed (the API server is unreachable: the client should retry). May block on a
  // TokenReview.
  Result<Caller> Authenticate(const PeerCredentials& peer) const;
  // Authenticate's answer when it needs no TokenReview round trip (a client certificate, a
  // cached review, no usable credential); nullopt when only a TokenReview can tell. Never blocks.
  std::optional<Result<Caller>> TryAuthenticate(const PeerCredentials& peer) const;

 private:
  // The certificate's identities, or the error for a call without any credential; nullopt
  // when the bearer token decides (`*token` is then set).
  std::optional<Result<Caller>> FromCertificate(const PeerCredentials& peer,
                                                std::string* token) const;
  Result<Caller> FromReview(const PeerCredentials& peer, Result<TokenIdentity> review) const;
  const std::string trust_domain_;
  const std::shared_ptr<TokenReviewer> reviewer_;
};

struct TokenCacheOptions {
  size_t max_entries = 10000;
  Duration ttl = std::chrono::minutes(1);           // accepted tokens
  Duration negative_ttl = std::chrono::seconds(5);  // rejected tokens
};

// The cache key of a token: its SHA-256 (32 bytes). kInternal when OpenSSL cannot compute it.
Result<std::string> TokenCacheKey(std::string_view token);

// A TokenReviewer that remembers answers. Only definite answers (a service account, or
// kUnauthenticated) are cached; transport errors are not.
class TokenReviewCache final : public TokenReviewer {
 public:
  using KeyFunction = std::function<Result<std::string>(std::string_view token)>;
  // `key` is TokenCacheKey except in tests that make it fail.
  TokenReviewCache(std::shared_ptr<TokenReviewer> inner, const Clock& clock,
                   TokenCacheOptions options = {}, KeyFunction key = TokenCacheKey);
  Result<TokenIdentity> Review(const std::string& bearer_token) override;
  std::optional<Result<TokenIdentity>> Cached(const std::string& bearer_token) override;
  size_t size() const;

 private:
  // The cached answer for `key`, if fresh (an expired entry is dropped). Takes mu_.
  std::optional<Result<TokenIdentity>> Lookup(const std::string& key);
  struct Entry {
    Result<TokenIdentity> result;
    TimePoint expires;
    std::list<std::string>::iterator lru;
  };
  const std::shared_ptr<TokenReviewer> inner_;
  const Clock& clock_;
  const TokenCacheOptions options_;
  const KeyFunction key_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // key: SHA-256 of the token
  std::list<std::string> lru_;                      // most recently used first
};

}  // namespace istioca::ca
