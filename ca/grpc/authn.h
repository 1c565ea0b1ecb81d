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
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "base/time.h"
#include "pki/spiffe.h"

namespace istioca::ca {

// Checks a Kubernetes service-account JWT with a TokenReview (audiences from
// --token-audiences). Provided by the Kubernetes backends; absent in local mode.
class TokenReviewer {
 public:
  virtual ~TokenReviewer() = default;
  // The token's service account, or kUnauthenticated.
  virtual Result<pki::ServiceAccountRef> Review(const std::string& bearer_token) = 0;
};

// What the transport and the call metadata say about a caller, before any decision.
struct PeerCredentials {
  // URI SANs of the client certificate; the TLS layer verified it (empty: no certificate).
  std::vector<std::string> cert_uris;
  bool has_cert = false;
  // Every value of the "authorization" metadata key, in order.
  std::vector<std::string> authorization;
  // The transport's peer address, e.g. "ipv4:10.1.2.3:41234" (audit events only).
  std::string address;
};

struct Caller {
  enum class Via { kCertificate, kToken };
  std::vector<std::string> identities;  // SPIFFE IDs, at least one
  Via via = Via::kCertificate;
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
  // not be reviewed (the API server is unreachable: the client should retry).
  Result<Caller> Authenticate(const PeerCredentials& peer) const;

 private:
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
  Result<pki::ServiceAccountRef> Review(const std::string& bearer_token) override;
  size_t size() const;

 private:
  struct Entry {
    Result<pki::ServiceAccountRef> result;
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
