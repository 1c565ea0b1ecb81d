#include "ca/grpc/authn.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include "pki/spiffe.h"

namespace istioca::ca {

std::string ExtractBearerToken(const std::vector<std::string>& authorization) {
  constexpr std::string_view kPrefix = "Bearer ";
  for (const std::string& value : authorization) {
    if (value.size() > kPrefix.size() && value.compare(0, kPrefix.size(), kPrefix) == 0) {
      return value.substr(kPrefix.size());
    }
  }
  return "";
}

std::string PeerHost(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return std::string(address);
  const std::string_view port = address.substr(colon + 1);
  if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::string(address);  // "unix:/path"
  }
  const std::string_view host = address.substr(0, colon);
  // An IPv6 address has colons of its own: its port follows a bracket ("ipv6:[::1]:443", or
  // gRPC's URI-escaped "ipv6:%5B::1%5D:443"); in "ipv6:::1" the last group is not a port.
  const bool bracketed =
      !host.empty() &&
      (host.back() == ']' || (host.size() >= 3 && host.substr(host.size() - 3) == "%5D"));
  if (host.rfind("ipv6:", 0) == 0 && !bracketed) return std::string(address);
  return std::string(host);
}

std::optional<Result<Caller>> Authenticator::FromCertificate(const PeerCredentials& peer,
                                                             std::string* token) const {
  if (peer.has_cert) {
    Caller caller{{}, Caller::Via::kCertificate, {}, {}};
    for (const std::string& uri : peer.cert_uris) {
      if (pki::ParseSpiffeId(uri).ok()) caller.identities.push_back(uri);
    }
    if (!caller.identities.empty()) return Result<Caller>(std::move(caller));
    // A verified certificate without a SPIFFE ID (e.g. a DNS-only server cert) proves nothing
    // usable; a bearer token may still authenticate the call.
  }
  *token = ExtractBearerToken(peer.authorization);
  if (token->empty()) {
    return Result<Caller>(Status(Code::kUnauthenticated, "request authenticate failure",
                                 peer.has_cert
                                     ? "client certificate has no SPIFFE ID and no bearer token"
                                     : "no client certificate and no bearer token"));
  }
  if (reviewer_ == nullptr) {
    return Result<Caller>(Status(Code::kUnauthenticated, "request authenticate failure",
                                 "bearer tokens are not accepted in local mode"));
  }
  return std::nullopt;
}

Result<Caller> Authenticator::FromReview(const PeerCredentials& /*peer*/,
                                         Result<TokenIdentity> review) const {
  if (!review.ok()) {
    if (review.status().code() == Code::kUnauthenticated) {
      return Status(Code::kUnauthenticated, "request authenticate failure",
                    "token review: " + review.status().ToString());
    }
    return Status(Code::kUnavailable, "cannot authenticate the token now",
                  "token review: " + review.status().ToString());
  }
  auto id = pki::WorkloadId(trust_domain_, review->ns, review->sa);
  if (!id.ok()) {
    return Status(Code::kUnauthenticated, "request authenticate failure",
                  "token names an invalid service account: " + id.status().message());
  }
  return Caller{{id->ToString()}, Caller::Via::kToken, review->pod_name, review->pod_uid};
}

Result<Caller> Authenticator::Authenticate(const PeerCredentials& peer) const {
  std::string token;
  if (std::optional<Result<Caller>> decided = FromCertificate(peer, &token)) return *decided;
  return FromReview(peer, reviewer_->Review(token));
}

std::optional<Result<Caller>> Authenticator::TryAuthenticate(const PeerCredentials& peer) const {
  std::string token;
  if (std::optional<Result<Caller>> decided = FromCertificate(peer, &token)) return decided;
  std::optional<Result<TokenIdentity>> cached = reviewer_->Cached(token);
  if (!cached) return std::nullopt;
  return FromReview(peer, std::move(*cached));
}

Result<std::string> TokenCacheKey(std::string_view token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(token.data(), token.size(), md, &len, EVP_sha256(), nullptr) != 1 || len != 32) {
    ERR_clear_error();
    return Internal("cannot compute the token cache key", "EVP_Digest(SHA-256) failed");
  }
  return std::string(reinterpret_cast<char*>(md), len);
}

TokenReviewCache::TokenReviewCache(std::shared_ptr<TokenReviewer> inner, const Clock& clock,
                                   TokenCacheOptions options, KeyFunction key)
    : inner_(std::move(inner)), clock_(clock), options_(options), key_(std::move(key)) {}

size_t TokenReviewCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

std::optional<Result<TokenIdentity>> TokenReviewCache::Lookup(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (clock_.Now() < it->second.expires) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second.result;
  }
  lru_.erase(it->second.lru);
  entries_.erase(it);
  return std::nullopt;
}

std::optional<Result<TokenIdentity>> TokenReviewCache::Cached(const std::string& bearer_token) {
  Result<std::string> key = key_(bearer_token);
  // Without a key the answer is Review's (fail closed), known without asking anyone.
  if (!key.ok()) return Result<TokenIdentity>(key.status());
  return Lookup(*key);
}

Result<TokenIdentity> TokenReviewCache::Review(const std::string& bearer_token) {
  // Fail closed: without its own key a token could be answered with another token's review.
  ASSIGN_OR_RETURN(const std::string key, key_(bearer_token));
  if (std::optional<Result<TokenIdentity>> hit = Lookup(key)) return std::move(*hit);
  // Reviewed outside the lock: a slow API server must not serialise unrelated callers.
  Result<TokenIdentity> result = inner_->Review(bearer_token);
  Duration ttl;
  if (result.ok()) {
    ttl = options_.ttl;
  } else if (result.status().code() == Code::kUnauthenticated) {
    ttl = options_.negative_ttl;
  } else {
    return result;
  }
  if (options_.max_entries == 0 || ttl <= Duration::zero()) return result;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }
  while (entries_.size() >= options_.max_entries) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(key);
  entries_.emplace(key, Entry{result, clock_.Now() + ttl, lru_.begin()});
  return result;
}

}  // namespace istioca::ca
