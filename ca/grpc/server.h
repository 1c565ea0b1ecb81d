// ca/grpc/server.h — the CA's gRPC endpoint: Istio's two CSR APIs over TLS.
//
// A plain server (Start, Stop, Ready, SelfCheck) with its own options; the daemon wraps it in a
// component (ca/daemon/grpc_component.cc), so this library knows nothing of the daemon.
//
// TLS. The server certificate is issued by the Authority itself (DNS SANs: each
// --grpc-host-identities entry h, h.<storage-ns>.svc and h.<storage-ns>.svc.cluster.local) with
// a fresh EC P-256 key. Client certificates are optional, and verified when given against the
// Authority's roots at handshake time (Istio's VerifyClientCertIfGiven).
//
// Why gRPC's SSL "certificate config fetcher": it is the stable C API made for reloading a
// server's key, certificate and client roots without restarting the server, and it is asked
// at every new connection. ServingCert answers it: at each handshake it renews the certificate
// if it is past half its lifetime or the CA bundle changed (a root or signer rotation), then
// hands gRPC the new key, chain and roots. So a renewal or a root change is in effect from the
// next connection, with no timer, no files and no restart; open connections keep the
// credentials they were made with (as any TLS server). The experimental TLS credentials API of
// gRPC 1.51 can only watch files or hold static data, so it would need the key on disk.
//
// Requests: see ca/grpc/policy.h. The services use gRPC's callback API: gRPC's threads only hand
// each call to CsrService::Submit, which queues the work on its own bounded pools, so there is
// no gRPC thread pool to exhaust. A request that is not a valid message is answered by gRPC
// itself; an interceptor counts it (reason bad_message). Messages above max_message_bytes are
// refused by gRPC's transport (ResourceExhausted) before a call exists, where gRPC 1.51 has no
// hook to count them; the limit is set far above the CSR cap so that a merely oversized CSR gets
// InvalidArgument from the policy, counted and logged.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/metrics.h"
#include "base/secret.h"
#include "base/status.h"
#include "base/time.h"
#include "ca/core/authority.h"
#include "ca/core/events.h"
#include "ca/grpc/policy.h"
#include "pki/key.h"

namespace istioca::ca {

// The server's own certificate, renewed on demand. Thread-safe.
class ServingCert {
 public:
  ServingCert(Authority& authority, std::vector<std::string> dns_names)
      : authority_(authority), dns_names_(std::move(dns_names)) {}

  // When a serving certificate issued under `issued_under` must be replaced at `now`: the CA
  // bundle changed, or half its lifetime has passed, or it expires within a minute.
  static bool Due(const pki::Certificate& cert, const CaBundle* issued_under,
                  const CaBundle* current, TimePoint now);

  // Immutable once made; replaced whole on renewal. The key exists once per certificate: every
  // caller shares this object, and its PEM is cleansed when the last holder lets it go.
  struct Snapshot {
    SecretString key_pem;   // wiped when the last handshake holding this snapshot lets go
    std::string chain_pem;  // leaf + intermediates
    std::string roots_pem;  // client certificates are verified against these
    pki::Certificate leaf;
    uint64_t generation = 0;
  };
  // Renews if due (an error keeps the previous certificate) and returns the current one.
  Result<std::shared_ptr<const Snapshot>> Current();

 private:
  Status RenewLocked(std::shared_ptr<const CaBundle> bundle);
  Authority& authority_;
  const std::vector<std::string> dns_names_;
  std::mutex mu_;
  std::shared_ptr<const Snapshot> current_;
  std::shared_ptr<const CaBundle> issued_under_;
};

struct GrpcServerOptions {
  std::string listen_address = "0.0.0.0:8060";  // "127.0.0.1:0" in tests
  std::vector<std::string> host_identities = {"istio-ca", "istio-citadel"};
  std::string storage_namespace = "istio-system";
  GrpcLimits limits;
  int max_message_bytes = 2 * 1024 * 1024;
  TokenCacheOptions token_cache;
  // Issuances and refusals (ca/core/events.h); borrowed, may be null, must outlive the server.
  EventSink* events = nullptr;
};

// Every DNS name the serving certificate carries.
std::vector<std::string> ServingDnsNames(const GrpcServerOptions& options);

class GrpcServer {
 public:
  // Binds and starts serving. `reviewer` may be null (local mode: certificates only); it is
  // wrapped in a TokenReviewCache. The Authority must have a bundle.
  static Result<std::unique_ptr<GrpcServer>> Start(Authority& authority,
                                                   std::shared_ptr<TokenReviewer> reviewer,
                                                   GrpcServerOptions options,
                                                   MetricsRegistry& metrics, const Clock& clock);
  ~GrpcServer();

  int port() const { return port_; }
  // Answers the queued calls (Unavailable), lets the running ones finish, stops gRPC and returns.
  // Idempotent.
  void Stop();
  // Serving: started and not stopped.
  bool Ready() const;

  // The liveness self-check, as Istio's: a client certificate for `identity` issued in-process,
  // then HandleCSR over TLS to our own port for the same identity.
  Status SelfCheck(const std::string& identity, Duration timeout);

  ServingCert& serving_cert() { return *serving_; }
  // The service behind both APIs (tests: its queues).
  CsrService& service();

 private:
  struct Impl;
  GrpcServer() = default;
  // Declared first so that it outlives the server, whose TLS credentials point at it.
  std::unique_ptr<ServingCert> serving_;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace istioca::ca
