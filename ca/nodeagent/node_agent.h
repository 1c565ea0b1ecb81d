// ca/nodeagent/node_agent.h — `istio-ca node-agent`: keeps a workload key and certificate fresh on
// disk.
//
// Each renewal generates a fresh key, sends a CSR to the CA over TLS (server verified with
// --root-cert), authenticated by the current certificate (mTLS) when it is still valid, and by
// the bearer token in --token-file when one is given. The response is checked (the leaf holds
// our key, chains to the roots, is valid now) before anything is written. When key and chain
// share a directory (the /etc/certs default) they are published as one unit, as a Secret volume
// is: a new ..g<n>/ directory written in full and fsynced, then one rename of the ..data
// symlink; key.pem, cert-chain.pem (and root-cert.pem when it is there too) are links through
// ..data. A crash leaves the previous pair. In different directories each file is replaced
// atomically, key first (a reader may briefly see the new key with the old chain). Key 0600.
// With the modern API the root bundle the CA returns is written too.
//
// Timing is decided by pure functions: renew at 45-50% of the certificate's lifetime (jittered
// so a fleet does not renew in lockstep), retry failures with capped exponential backoff.
// Unlike Istio's node agent (five tries, then exit) it never gives up; while the CA is down the
// old files stay in place.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/status.h"
#include "base/time.h"
#include "pki/cert.h"
#include "pki/key.h"

namespace istioca::ca {

struct NodeAgentOptions {
  std::string ca_address = "istio-ca:8060";
  std::string ca_server_name;  // TLS name of the CA; default: the host of ca_address
  std::string cert_chain = "/etc/certs/cert-chain.pem";
  std::string key = "/etc/certs/key.pem";
  std::string root_cert = "/etc/certs/root-cert.pem";
  std::string token_file;  // bearer JWT, re-read at every attempt
  bool legacy_api = false;
  Duration workload_cert_ttl = std::chrono::hours(24);
  pki::KeyType key_type = pki::KeyType::kEcP256;
  Duration initial_backoff = std::chrono::seconds(1);
  Duration max_backoff = std::chrono::minutes(5);
  Duration rpc_timeout = std::chrono::seconds(30);
};

// When to renew a certificate valid from `not_before` to `not_after`: at 50% of its lifetime,
// brought forward by up to 5% of it by `jitter` in [0, 1).
TimePoint RenewalTime(TimePoint not_before, TimePoint not_after, double jitter);
// The legacy API's requested_ttl_minutes for `ttl`. That API counts whole minutes and reads 0 as
// "the CA's default", so a TTL it cannot express (not a whole number of minutes, under one
// minute, or over INT32_MAX minutes) is kInvalidArgument with a one-line message, never
// rounded: rounding 20s down would ask for the default (24h).
Result<int32_t> LegacyTtlMinutes(Duration ttl);
// Wait after the `failures`-th consecutive failure (1-based): base/backoff.h's BackoffDelay,
// initial x 2^(failures-1) capped at max, shortened by up to 20% by `jitter` in [0, 1).
Duration RetryBackoff(int failures, Duration initial, Duration max, double jitter);

class NodeAgent {
 public:
  // `random` returns values in [0, 1) for jitter.
  NodeAgent(NodeAgentOptions options, const Clock& clock, std::function<double()> random);

  // One turn of the loop: renews when the current files are missing, unusable or due, and
  // returns when to come back (renewal time, or now + backoff after a failure).
  TimePoint Step();
  // Renews now, whatever the files say (--once).
  Status RenewNow();

  int consecutive_failures() const { return failures_; }
  const Status& last_error() const { return last_error_; }

 private:
  Status RenewImpl();

  const NodeAgentOptions options_;
  const Clock& clock_;
  std::function<double()> random_;
  int failures_ = 0;
  Status last_error_;
  std::string renew_serial_;
  TimePoint renew_at_{};
};

}  // namespace istioca::ca
