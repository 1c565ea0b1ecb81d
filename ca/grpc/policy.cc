#include "ca/grpc/policy.h"

#include <algorithm>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "base/log.h"
#include "pki/csr.h"

namespace istioca::ca {

double RateLimiter::Refilled(const Bucket& b, TimePoint now) const {
  const double elapsed = std::chrono::duration<double>(now - b.last).count();
  return std::min(burst_, b.tokens + std::max(0.0, elapsed) * qps_);
}

bool RateLimiter::Allow(const std::string& key, TimePoint now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    if (index_.size() >= max_keys_) {
      if (lru_.empty()) return false;  // max_keys_ == 0
      ++eviction_checks_;
      const Bucket& oldest = lru_.back();
      if (Refilled(oldest, now) < burst_) return false;
      index_.erase(std::string_view(oldest.key));
      lru_.pop_back();
    }
    lru_.push_front(Bucket{key, burst_, now});
    it = index_.emplace(std::string_view(lru_.front().key), lru_.begin()).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second);
  }
  Bucket& b = *it->second;
  b.tokens = Refilled(b, now);
  b.last = std::max(b.last, now);
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

size_t RateLimiter::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.size();
}

uint64_t RateLimiter::eviction_checks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return eviction_checks_;
}

bool LogThrottle::Admit(const std::string& cause, TimePoint now, uint64_t* suppressed) {
  std::lock_guard<std::mutex> lock(mu_);
  Window& w = windows_[cause];
  // A new window each second (and after a clock step backwards).
  if (now < w.start || now - w.start >= std::chrono::seconds(1)) {
    w.start = now;
    w.written = 0;
  }
  if (w.written >= per_second_) {
    ++w.suppressed;
    return false;
  }
  ++w.written;
  *suppressed = w.suppressed;
  w.suppressed = 0;
  return true;
}

namespace {

int SigningThreads(int configured) {
  if (configured > 0) return configured;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

const char* ApiName(CsrApi api) {
  return api == CsrApi::kLegacy ? "HandleCSR" : "CreateCertificate";
}

const char* AuditApiName(CsrApi api) { return api == CsrApi::kLegacy ? "legacy" : "modern"; }

class PhaseTimer {
 public:
  explicit PhaseTimer(Histogram& h) : h_(h), start_(std::chrono::steady_clock::now()) {}
  ~PhaseTimer() {
    h_.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

 private:
  Histogram& h_;
  std::chrono::steady_clock::time_point start_;
};

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

const char* RefusalName(Refusal reason) {
  switch (reason) {
    case Refusal::kUnauthenticated: return "unauthenticated";
    case Refusal::kTokenReviewUnavailable: return "token_review_unavailable";
    case Refusal::kRateLimited: return "rate_limited";
    case Refusal::kTooLarge: return "too_large";
    case Refusal::kBadMessage: return "bad_message";
    case Refusal::kQueueFull: return "queue_full";
    case Refusal::kDeadlineUnmeetable: return "deadline_unmeetable";
    case Refusal::kDeadlineExceeded: return "deadline_exceeded";
    case Refusal::kShuttingDown: return "shutting_down";
    case Refusal::kBadCsr: return "bad_csr";
    case Refusal::kBadKey: return "bad_key";
    case Refusal::kCaRequested: return "ca_requested";
    case Refusal::kNoSan: return "no_san";
    case Refusal::kPermissionDenied: return "permission_denied";
    case Refusal::kBadTtl: return "bad_ttl";
    case Refusal::kCaNotReady: return "ca_not_ready";
    case Refusal::kSignFailed: return "sign_failed";
    case Refusal::kCount: break;
  }
  return "unknown";
}

std::string RateLimitKey(const Caller& caller, const PeerCredentials& peer) {
  if (!caller.pod_uid.empty()) return "pod:" + caller.pod_uid;
  return caller.identities.front() + " " + PeerHost(peer.address);
}

CsrService::CsrService(Authority& authority, std::shared_ptr<TokenReviewer> reviewer,
                       GrpcLimits limits, MetricsRegistry& metrics, const Clock& clock,
                       EventSink* events, std::function<SteadyTime()> steady_now)
    : authority_(authority),
      authenticator_(authority.policy().trust_domain, std::move(reviewer)),
      limits_(limits),
      clock_(clock),
      events_(events),
      steady_now_(steady_now),
      rate_(limits.per_identity_qps, limits.per_identity_burst, limits.max_tracked_identities),
      rate_limited_(limits.per_identity_qps > 0 && limits.per_identity_burst > 0),
      refusal_log_(limits.refusal_log_lines_per_second),
      metrics_(metrics),
      csr_count_(metrics.GetCounter("citadel_server_csr_count", "CSRs received by the CA.")),
      authn_failures_(metrics.GetCounter("citadel_server_authentication_failure_count",
                                         "CSR callers that failed to authenticate.")),
      parsing_errors_(metrics.GetCounter("citadel_server_csr_parsing_err_count",
                                         "CSRs that could not be parsed or verified.")),
      id_extraction_errors_(metrics.GetCounter("citadel_server_id_extraction_err_count",
                                               "Legacy CSRs without a SAN identity.")),
      issued_(metrics.GetCounter("citadel_server_success_cert_issuance_count",
                                 "Certificates issued from CSRs.")),
      authenticate_seconds_(metrics.GetHistogram("citadel_server_csr_phase_seconds",
                                                 "Time spent per CSR handling phase.",
                                                 LatencyBuckets(), {{"phase", "authenticate"}})),
      queue_seconds_(metrics.GetHistogram("citadel_server_csr_phase_seconds",
                                          "Time spent per CSR handling phase.", LatencyBuckets(),
                                          {{"phase", "queue"}})),
      parse_seconds_(metrics.GetHistogram("citadel_server_csr_phase_seconds",
                                          "Time spent per CSR handling phase.", LatencyBuckets(),
                                          {{"phase", "parse_verify"}})),
      sign_seconds_(metrics.GetHistogram("citadel_server_csr_phase_seconds",
                                         "Time spent per CSR handling phase.", LatencyBuckets(),
                                         {{"phase", "sign"}})),
      signing_({.name = "sign",
                .threads = SigningThreads(limits.signing_threads),
                .max_queued = limits.max_queued_calls,
                .run_inline_when_idle = limits.sign_inline_when_idle},
               steady_now),
      review_({"review", std::max(1, limits.token_review_threads), limits.max_queued_calls},
              steady_now) {
  // Every reason from the start, at 0: a dashboard can tell "none" from "not exported".
  for (size_t i = 0; i < refusals_.size(); ++i) {
    refusals_[i] =
        &metrics.GetCounter("citadel_server_csr_refusal_count", "CSR calls refused, by reason.",
                            {{"reason", RefusalName(static_cast<Refusal>(i))}});
  }
  for (auto [pool, label] : {std::pair{&signing_, "sign"}, {&review_, "token_review"}}) {
    WorkPool* p = pool;
    gauges_.push_back(metrics.SetGaugeFunction("citadel_server_csr_queue_length",
                                               "CSR calls waiting in a queue.", {{"queue", label}},
                                               [p] { return static_cast<double>(p->queued()); }));
  }
}

CsrService::~CsrService() { Stop(); }

void CsrService::Stop() {
  // The review pool first: its running jobs hand their calls to the signing pool, which must
  // still answer them (by running or by refusing them).
  review_.Stop();
  signing_.Stop();
}

Status CsrService::Refuse(const CsrCall& call, const PeerCredentials& peer,
                          const std::string& caller, Refusal reason, Status status) {
  const char* name = RefusalName(reason);
  refusals_[static_cast<size_t>(reason)]->Inc();
  if (events_ != nullptr) {
    // The message the caller gets (never key material, see above), not the internal detail.
    CaEvent e{clock_.Now(),
              "refused",
              {{"code", CodeName(status.code())},
               {"reason", status.message()},
               {"refusal", name},
               {"api", AuditApiName(call.api)},
               {"peer", peer.address}}};
    if (!caller.empty()) e.fields["caller"] = caller;
    events_->Record(e);
  }
  uint64_t suppressed = 0;
  if (!refusal_log_.Admit(name, clock_.Now(), &suppressed)) return status;
  auto log = Logger("grpc");
  if (suppressed > 0) {
    log->info(
        "refusal lines suppressed reason={} count={} (every refusal is counted in "
        "citadel_server_csr_refusal_count)",
        name, suppressed);
  }
  log->info("refused csr method={} caller={} reason={} code={} detail={}", ApiName(call.api),
            caller.empty() ? "-" : caller, name, CodeName(status.code()),
            status.detail().empty() ? status.message() : status.detail());
  return status;
}

void CsrService::CountRefusal(CsrApi api, const PeerCredentials& peer, Refusal reason,
                              const Status& status) {
  csr_count_.Inc();
  (void)Refuse(CsrCall{api, {}, 0}, peer, "", reason, status);
}

Status CsrService::RefuseAdmission(const CsrCall& call, const PeerCredentials& peer,
                                   const std::string& caller, WorkPool::Admission admission) {
  switch (admission) {
    case WorkPool::Admission::kQueueFull:
      return Refuse(call, peer, caller, Refusal::kQueueFull,
                    Status(Code::kResourceExhausted, "the CA is busy, retry later"));
    case WorkPool::Admission::kDeadlineUnmeetable:
      return Refuse(call, peer, caller, Refusal::kDeadlineUnmeetable,
                    Status(Code::kResourceExhausted,
                           "the CA is busy: the call cannot be served within its deadline"));
    case WorkPool::Admission::kStopped:
    case WorkPool::Admission::kAccepted: break;
  }
  return Refuse(call, peer, caller, Refusal::kShuttingDown,
                Status(Code::kUnavailable, "the CA is shutting down"));
}

Status CsrService::RefuseQueued(const CsrCall& call, const PeerCredentials& peer,
                                const std::string& caller, WorkPool::Outcome outcome) {
  if (outcome == WorkPool::Outcome::kExpired) {
    return Refuse(call, peer, caller, Refusal::kDeadlineExceeded,
                  Status(Code::kDeadlineExceeded, "the deadline passed while the call waited"));
  }
  return Refuse(call, peer, caller, Refusal::kShuttingDown,
                Status(Code::kUnavailable, "the CA is shutting down"));
}

Result<IssuedCert> CsrService::Handle(const PeerCredentials& peer, const CsrCall& call) {
  std::promise<Result<IssuedCert>> answer;
  std::future<Result<IssuedCert>> future = answer.get_future();
  Submit(peer, call, kNoDeadline,
         [&answer](Result<IssuedCert> r) { answer.set_value(std::move(r)); });
  return future.get();
}

void CsrService::Submit(PeerCredentials peer, const CsrCall& call, SteadyTime deadline, Done done) {
  csr_count_.Inc();
  std::optional<Result<Caller>> caller = [&] {
    PhaseTimer t(authenticate_seconds_);
    return authenticator_.TryAuthenticate(peer);
  }();
  if (caller) {
    Admit(std::move(peer), call, std::move(*caller), deadline, std::move(done));
    return;
  }
  // A TokenReview round trip: on the I/O pool, so that it never holds a gRPC or signing thread.
  // The job owns the credentials; `done` stays here unless the pool takes the job.
  auto state = std::make_shared<std::pair<PeerCredentials, Done>>(std::move(peer), std::move(done));
  WorkPool::Job job = [this, state, call, deadline](WorkPool::Outcome outcome) {
    auto& [peer, done] = *state;
    if (outcome != WorkPool::Outcome::kRun) {
      done(RefuseQueued(call, peer, "", outcome));
      return;
    }
    Result<Caller> reviewed = [&] {
      PhaseTimer t(authenticate_seconds_);
      return authenticator_.Authenticate(peer);
    }();
    Admit(std::move(peer), call, std::move(reviewed), deadline, std::move(done));
  };
  const WorkPool::Admission admission = review_.Submit(deadline, std::move(job));
  if (admission != WorkPool::Admission::kAccepted) {
    state->second(RefuseAdmission(call, state->first, "", admission));
  }
}

void CsrService::Admit(PeerCredentials peer, const CsrCall& call, Result<Caller> caller,
                       SteadyTime deadline, Done done) {
  if (!caller.ok()) {
    authn_failures_.Inc();
    const bool unavailable = caller.status().code() == Code::kUnavailable;
    done(Refuse(call, peer, "",
                unavailable ? Refusal::kTokenReviewUnavailable : Refusal::kUnauthenticated,
                caller.status()));
    return;
  }
  std::string who = Join(caller->identities);
  if (rate_limited_ && !rate_.Allow(RateLimitKey(*caller, peer), clock_.Now())) {
    done(Refuse(call, peer, who, Refusal::kRateLimited,
                Status(Code::kResourceExhausted, "too many requests from this client")));
    return;
  }
  if (call.csr_pem.size() > limits_.max_csr_bytes) {
    parsing_errors_.Inc();
    done(Refuse(call, peer, who, Refusal::kTooLarge,
                InvalidArgument("CSR is larger than " +
                                std::to_string(limits_.max_csr_bytes / 1024) + " KiB")));
    return;
  }
  struct Pending {
    PeerCredentials peer;
    Caller caller;
    std::string who;
    Done done;
    SteadyTime queued_at;
  };
  auto state = std::make_shared<Pending>(
      Pending{std::move(peer), std::move(*caller), std::move(who), std::move(done), steady_now_()});
  WorkPool::Job job = [this, state, call](WorkPool::Outcome outcome) {
    queue_seconds_.Observe(std::chrono::duration<double>(steady_now_() - state->queued_at).count());
    if (outcome != WorkPool::Outcome::kRun) {
      state->done(RefuseQueued(call, state->peer, state->who, outcome));
      return;
    }
    state->done(Sign(state->peer, call, state->caller, state->who));
  };
  const WorkPool::Admission admission = signing_.Submit(deadline, std::move(job));
  if (admission != WorkPool::Admission::kAccepted) {
    state->done(RefuseAdmission(call, state->peer, state->who, admission));
  }
}

Result<IssuedCert> CsrService::Sign(const PeerCredentials& peer, const CsrCall& call,
                                    const Caller& caller, const std::string& who) {
  Result<pki::Csr> csr = [&] {
    PhaseTimer t(parse_seconds_);
    return pki::Csr::FromPem(call.csr_pem);
  }();
  if (!csr.ok()) {
    parsing_errors_.Inc();
    // pki errors name the structure that failed, never key bytes.
    return Refuse(call, peer, who, Refusal::kBadCsr,
                  InvalidArgument("CSR parsing error (" + csr.status().message() + ")",
                                  csr.status().detail()));
  }
  auto sign_error = [&](const char* label) -> Counter& {
    return metrics_.GetCounter("citadel_server_csr_sign_err_count", "CSR signing errors.",
                               {{"error", label}});
  };
  if (Status key = pki::CheckAcceptableKey(csr->PublicKey()); !key.ok()) {
    sign_error("CSR_ERROR").Inc();
    return Refuse(call, peer, who, Refusal::kBadKey,
                  InvalidArgument("CSR key rejected: " + key.message()));
  }
  if (csr->RequestsCa()) {
    sign_error("CSR_ERROR").Inc();
    return Refuse(call, peer, who, Refusal::kCaRequested,
                  InvalidArgument("CSR asks for a CA certificate (CA:TRUE); refused"));
  }

  std::vector<std::string> uris;
  if (call.api == CsrApi::kLegacy) {
    uris = csr->UriSans();
    const std::vector<std::string> dns = csr->DnsSans();
    if (uris.empty() && dns.empty()) {
      id_extraction_errors_.Inc();
      return Refuse(
          call, peer, who, Refusal::kNoSan,
          InvalidArgument("CSR identity extraction error (the SAN extension does not exist)"));
    }
    // Callers hold SPIFFE IDs only, so a DNS SAN is never one of theirs.
    std::vector<std::string> requested = uris;
    requested.insert(requested.end(), dns.begin(), dns.end());
    for (const std::string& id : requested) {
      if (std::find(caller.identities.begin(), caller.identities.end(), id) ==
          caller.identities.end()) {
        return Refuse(
            call, peer, who, Refusal::kPermissionDenied,
            Status(Code::kPermissionDenied,
                   "the requested identity (" + id + ") does not match the caller's identities"));
      }
    }
  } else {
    uris = caller.identities;
  }

  // Checked in seconds first: minutes or seconds from the wire can overflow nanoseconds.
  const Duration max_ttl = authority_.policy().max_ttl;
  const int64_t max_seconds = std::chrono::duration_cast<std::chrono::seconds>(max_ttl).count();
  Duration ttl = call.requested_ttl_seconds > max_seconds
                     ? max_ttl + std::chrono::seconds(1)
                     : Duration(std::chrono::seconds(call.requested_ttl_seconds));
  if (call.requested_ttl_seconds < 0) ttl = Duration(-1);
  Result<Duration> effective = authority_.EffectiveTtl(ttl);
  if (!effective.ok()) {
    sign_error("TTL_ERROR").Inc();
    std::string message = call.requested_ttl_seconds < 0
                              ? "requested TTL is negative"
                              : "requested TTL " + std::to_string(call.requested_ttl_seconds) +
                                    "s is greater than the max allowed TTL " +
                                    FormatDuration(max_ttl);
    return Refuse(call, peer, who, Refusal::kBadTtl, InvalidArgument(message));
  }

  Result<IssuedCert> issued = [&] {
    PhaseTimer t(sign_seconds_);
    return authority_.Sign(*csr, uris, {}, ttl);
  }();
  if (!issued.ok()) {
    if (issued.status().code() == Code::kUnavailable) {
      sign_error("CA_NOT_READY").Inc();
      return Refuse(call, peer, who, Refusal::kCaNotReady,
                    Status(Code::kUnavailable, "the CA is not ready", issued.status().ToString()));
    }
    sign_error("CERT_GEN_ERROR").Inc();
    return Refuse(call, peer, who, Refusal::kSignFailed,
                  Internal("CSR signing error", issued.status().ToString()));
  }
  issued_.Inc();
  if (events_ != nullptr) {
    events_->Record(CaEvent{
        clock_.Now(),
        "issued",
        {{"serial", issued->leaf.SerialHex()},
         {"spiffe_id", Join(uris)},
         {"caller", who},
         {"authn", caller.via == Caller::Via::kCertificate ? "mtls" : "token"},
         {"api", AuditApiName(call.api)},
         {"ttl_seconds",
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*effective).count())},
         {"not_after", FormatRfc3339(issued->leaf.NotAfter())},
         {"peer", peer.address}}});
  }
  Logger("grpc")->debug("issued cert method={} caller={} serial={}", ApiName(call.api), who,
                        issued->leaf.SerialHex());
  return issued;
}

}  // namespace istioca::ca
