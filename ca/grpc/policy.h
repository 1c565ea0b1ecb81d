// ca/grpc/policy.h — the CSR signing service, independent of gRPC.
//
// CsrService decides every CSR call, in order: authenticate the caller, per-client rate limit,
// size cap, admission to the signing queue, proof of possession (the CSR's signature), key rules,
// CA:TRUE refused, authorization, TTL rules, sign. The gRPC edge (ca/grpc/server.h) only converts
// messages, hands each call to Submit and maps the answer to a gRPC status.
//
// Where the work runs. Submit is called on gRPC's thread and does only cheap work there: read
// the credentials, authenticate when that needs no round trip (a client certificate, a cached
// TokenReview), rate-limit, check the size, and enqueue. Parsing, verifying and signing run on
// the signing pool (threads = hardware threads by default); a TokenReview that misses the cache
// blocks on HTTP, so it runs on a separate, small I/O pool and never stalls signing. Both pools
// are bounded, deadline-aware queues (admission.h).
//
// Backpressure queues, within bounds: a call waits its turn while there are merely more callers
// than cores, and is refused at once with ResourceExhausted (which Istio's clients retry with
// backoff) only when a queue is full ("queue_full") or its deadline cannot be met given the queue
// ahead of it and the measured service time ("deadline_unmeetable"). A call whose deadline
// passes while it waits is answered DeadlineExceeded without doing its work
// ("deadline_exceeded"); calls still queued at shutdown get Unavailable ("shutting_down").
//
// Rate limit, per client rather than per identity, so that a rollout of 1,000 pods of one service
// account is not throttled while one client calling 1,000 times a second is held to its limit
// (RateLimitKey): a pod-bound token's pod uid; otherwise the identity and the peer's address
// without the port. Token buckets of `per_identity_qps` and `per_identity_burst` (the field names
// predate per-client keys); 0 turns the limit off.
//
// Authorization differs by API, as DESIGN.md fixes it:
//  - legacy HandleCSR: the CSR must carry a SAN, and every identity in it must be one of the
//    caller's (PermissionDenied otherwise); the certificate carries the CSR's URIs. Istio
//    0.6-1.0 had disabled this check (istio/istio#8286); we do not.
//  - modern CreateCertificate: the certificate carries the caller's identities, whatever the
//    CSR asks (Istio 1.1+).
//
// Every refusal is counted (Istio's citadel_server_* counters where one exists, and
// citadel_server_csr_refusal_count{reason} for all, RefusalName) and logged here, with the
// caller and the detail; the client sees only the Status message, which never carries key
// material. Refusal lines are rate-limited per reason (GrpcLimits::refusal_log_lines_per_second),
// so a flood of unauthenticated calls cannot fill the log: the lines past the limit are counted,
// and the count is logged with the next line of that reason once the second is over. A request
// gRPC answers itself (not a valid message) is counted by the server through CountRefusal; one
// over the message size limit never becomes a call (server.h).
// Every issuance and every refusal is also one CaEvent ("issued" / "refused", ca/core/events.h)
// to the optional EventSink, never rate-limited: the audit log bounds its own queue.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/metrics.h"
#include "base/status.h"
#include "base/time.h"
#include "ca/core/authority.h"
#include "ca/core/events.h"
#include "ca/grpc/admission.h"
#include "ca/grpc/authn.h"

namespace istioca::ca {

struct GrpcLimits {
  size_t max_csr_bytes = 64 * 1024;
  // Per client (RateLimitKey): a token bucket refilled at `per_identity_qps`, holding `burst`.
  // Either 0: no limit. (--csr-rate-limit-qps, --csr-rate-limit-burst)
  double per_identity_qps = 10;
  double per_identity_burst = 20;
  size_t max_tracked_identities = 100000;  // rate-limit buckets kept (LRU)
  // Threads that parse, verify and sign; 0 = hardware threads. (--csr-signing-threads)
  int signing_threads = 0;
  // Threads that wait on TokenReviews missing the cache. (--token-review-threads)
  int token_review_threads = 16;
  // Calls waiting in each of the two queues, at most. (--csr-queue-size)
  size_t max_queued_calls = 1024;
  // A call that finds the signing queue empty and a signing slot free is signed on the gRPC
  // thread that received it (no hand-off; admission.h). Tests that hold signing turn it off.
  bool sign_inline_when_idle = true;
  // Refusal log lines per reason and second; the rest are counted, not written.
  int refusal_log_lines_per_second = 10;
};

// Why a call was refused: the `reason` label of citadel_server_csr_refusal_count.
enum class Refusal {
  kUnauthenticated,         // no credential proves an identity
  kTokenReviewUnavailable,  // the token could not be reviewed now
  kRateLimited,             // the client's bucket is empty
  kTooLarge,                // CSR over max_csr_bytes
  kBadMessage,              // not a valid message (answered by gRPC itself)
  kQueueFull,               // a queue is at its bound
  kDeadlineUnmeetable,      // the queue ahead would outlast the caller's deadline
  kDeadlineExceeded,        // the deadline passed while the call waited
  kShuttingDown,            // the server is stopping
  kBadCsr,
  kBadKey,
  kCaRequested,
  kNoSan,
  kPermissionDenied,
  kBadTtl,
  kCaNotReady,
  kSignFailed,
  kCount
};
const char* RefusalName(Refusal reason);

// The rate-limit key of a caller: "pod:<uid>" for a pod-bound token, else
// "<first identity> <peer address without port>" (a certificate, or a token of no pod).
std::string RateLimitKey(const Caller& caller, const PeerCredentials& peer);

// Token buckets keyed by client (RateLimitKey), in least-recently-used order. When the table is
// full, a new identity may take the place of the least recently used bucket if that one has
// refilled completely (it is then equivalent to a fresh one); otherwise the call is refused rather
// than letting memory grow. That is one bucket looked at per new identity, whatever the table size:
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

enum class CsrApi { kLegacy, kModern };

struct CsrCall {
  CsrApi api = CsrApi::kModern;
  std::string_view csr_pem;
  // Legacy: requested_ttl_minutes x 60; modern: validity_duration. 0 = default.
  int64_t requested_ttl_seconds = 0;
};

class CsrService {
 public:
  using Done = std::function<void(Result<IssuedCert>)>;
  // `events` is borrowed and may be null. `steady_now` is the clock of deadlines and queue times.
  CsrService(Authority& authority, std::shared_ptr<TokenReviewer> reviewer, GrpcLimits limits,
             MetricsRegistry& metrics, const Clock& clock, EventSink* events = nullptr,
             std::function<SteadyTime()> steady_now = &std::chrono::steady_clock::now);
  ~CsrService();  // Stop()

  // Decides one call. `done` gets the certificate or the refusal exactly once: on this thread
  // when the call is decided without waiting (every refusal at admission), else on a pool thread.
  // `call.csr_pem` must stay valid until `done` has run. `deadline`: the caller's, or kNoDeadline.
  void Submit(PeerCredentials peer, const CsrCall& call, SteadyTime deadline, Done done);
  // Submit without a deadline, and wait for the answer.
  Result<IssuedCert> Handle(const PeerCredentials& peer, const CsrCall& call);

  // New calls are refused and queued ones answered (Unavailable, "shutting_down"); returns once
  // the running ones are done (a TokenReview in flight ends within the API client's timeout).
  // Idempotent.
  void Stop();

  // Counts and logs a refusal made outside Submit (the gRPC library's own), as Submit would.
  void CountRefusal(CsrApi api, const PeerCredentials& peer, Refusal reason, const Status& status);

  WorkPool& signing_pool() { return signing_; }
  WorkPool& review_pool() { return review_; }

 private:
  // After authentication: rate limit, size cap, then the signing queue.
  void Admit(PeerCredentials peer, const CsrCall& call, Result<Caller> caller, SteadyTime deadline,
             Done done);
  // On the signing pool: everything that parses or signs.
  Result<IssuedCert> Sign(const PeerCredentials& peer, const CsrCall& call, const Caller& caller,
                          const std::string& who);
  // The refusal for a pool that did not take a call.
  Status RefuseAdmission(const CsrCall& call, const PeerCredentials& peer,
                         const std::string& caller, WorkPool::Admission admission);
  // The refusal for a queued call that was not run.
  Status RefuseQueued(const CsrCall& call, const PeerCredentials& peer, const std::string& caller,
                      WorkPool::Outcome outcome);
  Status Refuse(const CsrCall& call, const PeerCredentials& peer, const std::string& caller,
                Refusal reason, Status status);

  Authority& authority_;
  Authenticator authenticator_;
  const GrpcLimits limits_;
  const Clock& clock_;
  EventSink* const events_;
  const std::function<SteadyTime()> steady_now_;
  RateLimiter rate_;
  const bool rate_limited_;
  LogThrottle refusal_log_;
  MetricsRegistry& metrics_;
  // Istio's names (no _total suffix, as Istio's exporter of that era).
  Counter& csr_count_;
  Counter& authn_failures_;
  Counter& parsing_errors_;
  Counter& id_extraction_errors_;
  Counter& issued_;
  std::array<Counter*, static_cast<size_t>(Refusal::kCount)> refusals_{};
  Histogram& authenticate_seconds_;
  Histogram& queue_seconds_;
  Histogram& parse_seconds_;
  Histogram& sign_seconds_;
  // Declared last: destroyed (threads joined) before anything their jobs use.
  WorkPool signing_;
  WorkPool review_;
  std::vector<GaugeFunctionHandle> gauges_;
};

}  // namespace istioca::ca
