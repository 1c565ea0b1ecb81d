#include "ca/grpc/policy.h"

#include <algorithm>
#include <thread>

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

bool ConcurrencyLimiter::TryAcquire() {
  int current = in_flight_.load(std::memory_order_relaxed);
  while (current < limit_) {
    if (in_flight_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel)) {
      return true;
    }
  }
  return false;
}

namespace {

int DefaultConcurrency(int configured) {
  if (configured > 0) return configured;
  return 4 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
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

CsrService::CsrService(Authority& authority, std::shared_ptr<TokenReviewer> reviewer,
                       GrpcLimits limits, MetricsRegistry& metrics, const Clock& clock,
                       EventSink* events)
    : authority_(authority),
      authenticator_(authority.policy().trust_domain, std::move(reviewer)),
      limits_(limits),
      clock_(clock),
      events_(events),
      rate_(limits.per_identity_qps, limits.per_identity_burst, limits.max_tracked_identities),
      signing_(DefaultConcurrency(limits.max_concurrent_signing)),
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
      parse_seconds_(metrics.GetHistogram("citadel_server_csr_phase_seconds",
                                          "Time spent per CSR handling phase.", LatencyBuckets(),
                                          {{"phase", "parse_verify"}})),
      sign_seconds_(metrics.GetHistogram("citadel_server_csr_phase_seconds",
                                         "Time spent per CSR handling phase.", LatencyBuckets(),
                                         {{"phase", "sign"}})) {}

Status CsrService::Refuse(const CsrCall& call, const PeerCredentials& peer,
                          const std::string& caller, const char* reason, Status status) {
  metrics_
      .GetCounter("citadel_server_csr_refusal_count", "CSR calls refused, by reason.",
                  {{"reason", reason}})
      .Inc();
  if (events_ != nullptr) {
    // The message the caller gets (never key material, see above), not the internal detail.
    CaEvent e{clock_.Now(),
              "refused",
              {{"code", CodeName(status.code())},
               {"reason", status.message()},
               {"refusal", reason},
               {"api", AuditApiName(call.api)},
               {"peer", peer.address}}};
    if (!caller.empty()) e.fields["caller"] = caller;
    events_->Record(e);
  }
  uint64_t suppressed = 0;
  if (!refusal_log_.Admit(reason, clock_.Now(), &suppressed)) return status;
  auto log = Logger("grpc");
  if (suppressed > 0) {
    log->info(
        "refusal lines suppressed reason={} count={} (every refusal is counted in "
        "citadel_server_csr_refusal_count)",
        reason, suppressed);
  }
  log->info("refused csr method={} caller={} reason={} code={} detail={}", ApiName(call.api),
            caller.empty() ? "-" : caller, reason, CodeName(status.code()),
            status.detail().empty() ? status.message() : status.detail());
  return status;
}

Result<IssuedCert> CsrService::Handle(const PeerCredentials& peer, const CsrCall& call) {
  csr_count_.Inc();
  Result<Caller> caller = [&] {
    PhaseTimer t(authenticate_seconds_);
    return authenticator_.Authenticate(peer);
  }();
  if (!caller.ok()) {
    authn_failures_.Inc();
    const bool unavailable = caller.status().code() == Code::kUnavailable;
    return Refuse(call, peer, "", unavailable ? "token_review_unavailable" : "unauthenticated",
                  caller.status());
  }
  const std::string who = Join(caller->identities);
  if (!rate_.Allow(caller->identities.front(), clock_.Now())) {
    return Refuse(call, peer, who, "rate_limited",
                  Status(Code::kResourceExhausted, "too many requests for this identity"));
  }
  if (call.csr_pem.size() > limits_.max_csr_bytes) {
    parsing_errors_.Inc();
    return Refuse(call, peer, who, "too_large",
                  InvalidArgument("CSR is larger than " +
                                  std::to_string(limits_.max_csr_bytes / 1024) + " KiB"));
  }
  // Parsing, signature verification and signing are the CPU-heavy steps: bounded, not queued.
  if (!signing_.TryAcquire()) {
    return Refuse(call, peer, who, "overloaded",
                  Status(Code::kResourceExhausted, "the CA is busy, retry later"));
  }
  struct Release {
    ConcurrencyLimiter& l;
    ~Release() { l.Release(); }
  } release{signing_};

  Result<pki::Csr> csr = [&] {
    PhaseTimer t(parse_seconds_);
    return pki::Csr::FromPem(call.csr_pem);
  }();
  if (!csr.ok()) {
    parsing_errors_.Inc();
    // pki errors name the structure that failed, never key bytes.
    return Refuse(call, peer, who, "bad_csr",
                  InvalidArgument("CSR parsing error (" + csr.status().message() + ")",
                                  csr.status().detail()));
  }
  auto sign_error = [&](const char* label) -> Counter& {
    return metrics_.GetCounter("citadel_server_csr_sign_err_count", "CSR signing errors.",
                               {{"error", label}});
  };
  if (Status key = pki::CheckAcceptableKey(csr->PublicKey()); !key.ok()) {
    sign_error("CSR_ERROR").Inc();
    return Refuse(call, peer, who, "bad_key",
                  InvalidArgument("CSR key rejected: " + key.message()));
  }
  if (csr->RequestsCa()) {
    sign_error("CSR_ERROR").Inc();
    return Refuse(call, peer, who, "ca_requested",
                  InvalidArgument("CSR asks for a CA certificate (CA:TRUE); refused"));
  }

  std::vector<std::string> uris;
  if (call.api == CsrApi::kLegacy) {
    uris = csr->UriSans();
    const std::vector<std::string> dns = csr->DnsSans();
    if (uris.empty() && dns.empty()) {
      id_extraction_errors_.Inc();
      return Refuse(
          call, peer, who, "no_san",
          InvalidArgument("CSR identity extraction error (the SAN extension does not exist)"));
    }
    // Callers hold SPIFFE IDs only, so a DNS SAN is never one of theirs.
    std::vector<std::string> requested = uris;
    requested.insert(requested.end(), dns.begin(), dns.end());
    for (const std::string& id : requested) {
      if (std::find(caller->identities.begin(), caller->identities.end(), id) ==
          caller->identities.end()) {
        return Refuse(
            call, peer, who, "permission_denied",
            Status(Code::kPermissionDenied,
                   "the requested identity (" + id + ") does not match the caller's identities"));
      }
    }
  } else {
    uris = caller->identities;
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
    return Refuse(call, peer, who, "bad_ttl", InvalidArgument(message));
  }

  Result<IssuedCert> issued = [&] {
    PhaseTimer t(sign_seconds_);
    return authority_.Sign(csr->PublicKey(), uris, {}, ttl);
  }();
  if (!issued.ok()) {
    if (issued.status().code() == Code::kUnavailable) {
      sign_error("CA_NOT_READY").Inc();
      return Refuse(call, peer, who, "ca_not_ready",
                    Status(Code::kUnavailable, "the CA is not ready", issued.status().ToString()));
    }
    sign_error("CERT_GEN_ERROR").Inc();
    return Refuse(call, peer, who, "sign_failed",
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
         {"authn", caller->via == Caller::Via::kCertificate ? "mtls" : "token"},
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
