// ca/grpc/policy.h — the CSR signing service, independent of gRPC.
//
// CsrService::Handle is everything a CSR call decides, in order: authenticate the caller,
// per-identity rate limit, size cap, bound on concurrent signing, proof of possession (the
// CSR's signature), key rules, CA:TRUE refused, authorization, TTL rules, sign. The gRPC edge
// (ca/grpc/server.h) only converts messages and maps the returned Status to a gRPC status.
//
// Authorization differs by API, as DESIGN.md fixes it:
//  - legacy HandleCSR: the CSR must carry a SAN, and every identity in it must be one of the
//    caller's (PermissionDenied otherwise); the certificate carries the CSR's URIs. Istio
//    0.6-1.0 had disabled this check (istio/istio#8286); we do not.
//  - modern CreateCertificate: the certificate carries the caller's identities, whatever the
//    CSR asks (Istio 1.1+).
//
// Every refusal is counted (Istio's citadel_server_* counters where one exists, and
// citadel_server_csr_refusal_count{reason} for all) and logged here, with the caller and the
// detail; the client sees only the Status message, which never carries key material. Refusal
// lines are rate-limited per reason (GrpcLimits::refusal_log_lines_per_second), so a flood of
// unauthenticated calls cannot fill the log: the lines past the limit are counted, and the count
// is logged with the next line of that reason once the second is over.
// Every issuance and every refusal is also one CaEvent ("issued" / "refused", ca/core/events.h)
// to the optional EventSink, never rate-limited: the audit log bounds its own queue.
// Backpressure never queues: over the rate or the concurrency bound a call fails at once with
// ResourceExhausted (Istio's clients retry that code with backoff).
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/metrics.h"
#include "base/status.h"
#include "base/time.h"
#include "ca/core/authority.h"
#include "ca/core/events.h"
#include "ca/grpc/authn.h"

namespace istioca::ca {

struct GrpcLimits {
  size_t max_csr_bytes = 64 * 1024;
  // Per caller identity: a token bucket refilled at `per_identity_qps`, holding `burst`.
  double per_identity_qps = 10;
  double per_identity_burst = 20;
  size_t max_tracked_identities = 100000;
  // Calls parsing or signing at once; 0 = 4 x hardware threads.
  int max_concurrent_signing = 0;
  // Refusal log lines per reason and second; the rest are counted, not written.
  int refusal_log_lines_per_second = 10;
};

// Token buckets keyed by identity, in least-recently-used order. When the table is full, a new
// identity may take the place of the least recently used bucket if that one has refilled
// completely (it is then equivalent to a fresh one); otherwise the call is refused rather than
// letting memory grow. That is one bucket looked at per new identity, whatever the table size:
// the mutex is never held for a scan. A refused newcomer waits at most burst/qps after the
// oldest bucket's last use.
class RateLimiter {
 public:
  RateLimiter(double qps, double burst, size_t max_keys)
      : qps_(qps), burst_(burst), max_keys_(max_keys) {}
  bool Allow(const std::string& key, TimePoint now);
  size_t size() const;
  // Buckets looked at to make room for new identities, since construction (tests: the work
  // per call is bounded).
  uint64_t eviction_checks() const;

 private:
  struct Bucket {
    std::string key;
    double tokens;
    TimePoint last;
  };
  using Lru = std::list<Bucket>;  // most recently used first
  double Refilled(const Bucket& b, TimePoint now) const;
  const double qps_, burst_;
  const size_t max_keys_;
  mutable std::mutex mu_;
  Lru lru_;
  std::unordered_map<std::string_view, Lru::iterator> index_;  // views of Bucket::key
  uint64_t eviction_checks_ = 0;
};

// Whether a log line may be written: at most `per_second` lines per cause in each second; the
// lines held back are counted and handed to the next line that is written for that cause. The
// causes are a small fixed set (refusal reasons), so the table stays small.
class LogThrottle {
 public:
  explicit LogThrottle(int per_second) : per_second_(per_second) {}
  // True when a line for `cause` may be written at `now`; then `*suppressed` is the number of
  // lines held back for `cause` since the previous written one.
  bool Admit(const std::string& cause, TimePoint now, uint64_t* suppressed);

 private:
  struct Window {
    TimePoint start{};
    int written = 0;
    uint64_t suppressed = 0;
  };
  const int per_second_;
  std::mutex mu_;
  std::map<std::string, Window> windows_;
};

// A counting bound without a queue: TryAcquire fails instead of waiting.
class ConcurrencyLimiter {
 public:
  explicit ConcurrencyLimiter(int limit) : limit_(limit) {}
  bool TryAcquire();
  void Release() { in_flight_.fetch_sub(1, std::memory_order_acq_rel); }
  int in_flight() const { return in_flight_.load(); }

 private:
  const int limit_;
  std::atomic<int> in_flight_{0};
};

enum class CsrApi { kLegacy, kModern };

struct CsrCall {
  CsrApi api = CsrApi::kModern;
  std::string_view csr_pem;
  // Legacy: requested_ttl_minutes x 60; modern: validity_duration. 0 = default.
  int64_t requested_ttl_seconds = 0;
};

class CsrService {
 public:
  // `events` is borrowed and may be null.
  CsrService(Authority& authority, std::shared_ptr<TokenReviewer> reviewer, GrpcLimits limits,
             MetricsRegistry& metrics, const Clock& clock, EventSink* events = nullptr);

  Result<IssuedCert> Handle(const PeerCredentials& peer, const CsrCall& call);
  ConcurrencyLimiter& signing_limiter() { return signing_; }

 private:
  Status Refuse(const CsrCall& call, const PeerCredentials& peer, const std::string& caller,
                const char* reason, Status status);

  Authority& authority_;
  Authenticator authenticator_;
  const GrpcLimits limits_;
  const Clock& clock_;
  EventSink* const events_;
  RateLimiter rate_;
  ConcurrencyLimiter signing_;
  LogThrottle refusal_log_;
  MetricsRegistry& metrics_;
  // Istio's names (no _total suffix, as Istio's exporter of that era).
  Counter& csr_count_;
  Counter& authn_failures_;
  Counter& parsing_errors_;
  Counter& id_extraction_errors_;
  Counter& issued_;
  Histogram& authenticate_seconds_;
  Histogram& parse_seconds_;
  Histogram& sign_seconds_;
};

}  // namespace istioca::ca
