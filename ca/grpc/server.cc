#include "ca/grpc/server.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/server_interceptor.h>

#include <algorithm>
#include <atomic>

#include "base/log.h"
#include "istio/v1/auth/ca_service.grpc.pb.h"
#include "istio/v1/auth/certificate_service.grpc.pb.h"
#include "pki/csr.h"

namespace istioca::ca {

// ---- serving certificate ----

bool ServingCert::Due(const pki::Certificate& cert, const CaBundle* issued_under,
                      const CaBundle* current, TimePoint now) {
  if (current != nullptr && current != issued_under) return true;
  const TimePoint half = cert.NotBefore() + cert.Lifetime() / 2;
  return now >= half || now >= cert.NotAfter() - std::chrono::minutes(1);
}

Status ServingCert::RenewLocked(std::shared_ptr<const CaBundle> bundle) {
  ASSIGN_OR_RETURN(pki::PrivateKey key, pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  ASSIGN_OR_RETURN(IssuedCert issued, authority_.Sign(key.get(), {}, dns_names_, Duration::zero()));
  ASSIGN_OR_RETURN(SecretString key_pem, key.ToPem());
  auto next = std::make_shared<const Snapshot>(Snapshot{std::move(key_pem), issued.CertChainPem(),
                                                        issued.RootCertPem(), issued.leaf,
                                                        current_ ? current_->generation + 1 : 1});
  Logger("grpc")->info("serving certificate issued serial={} not_after={} generation={}",
                       issued.leaf.SerialHex(), FormatRfc3339(issued.leaf.NotAfter()),
                       next->generation);
  current_ = std::move(next);
  issued_under_ = std::move(bundle);
  return OkStatus();
}

Result<std::shared_ptr<const ServingCert::Snapshot>> ServingCert::Current() {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<const CaBundle> bundle = authority_.Bundle();
  if (!current_ ||
      Due(current_->leaf, issued_under_.get(), bundle.get(), authority_.clock().Now())) {
    if (Status s = RenewLocked(bundle); !s.ok()) {
      if (!current_) return s;
      Logger("grpc")->warn("serving certificate renewal failed, keeping serial={} error={}",
                           current_->leaf.SerialHex(), s.ToString());
    }
  }
  return current_;
}

std::vector<std::string> ServingDnsNames(const GrpcServerOptions& options) {
  std::vector<std::string> names;
  for (const std::string& h : options.host_identities) {
    for (std::string n : {h, h + "." + options.storage_namespace + ".svc",
                          h + "." + options.storage_namespace + ".svc.cluster.local"}) {
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
  }
  return names;
}

namespace {

namespace pb = ::istio::v1::auth;

// ---- TLS credentials backed by ServingCert ----

grpc_ssl_certificate_config_reload_status FetchConfig(void* user,
                                                      grpc_ssl_server_certificate_config** config);

struct FetchState {
  ServingCert* cert;
  std::mutex mu;
  uint64_t last_returned = 0;
};

grpc_ssl_certificate_config_reload_status FetchConfig(void* user,
                                                      grpc_ssl_server_certificate_config** config) {
  auto* state = static_cast<FetchState*>(user);
  // Asked at every handshake: a shared reference to the current snapshot, no copy of the key.
  Result<std::shared_ptr<const ServingCert::Snapshot>> current = state->cert->Current();
  if (!current.ok()) {
    Logger("grpc")->error("no serving certificate: {}", current.status().ToString());
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
  }
  const ServingCert::Snapshot& snap = **current;
  std::lock_guard<std::mutex> lock(state->mu);
  if (snap.generation == state->last_returned) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  // Only for a new certificate. What gRPC forces: grpc_ssl_server_certificate_config_create
  // copies the PEM strings (gpr_strdup) into a config it owns and frees later without cleansing;
  // the C API has no way to lend it our buffer. So there is one gRPC-held copy of the key per
  // serving certificate (not per handshake), outside our control.
  grpc_ssl_pem_key_cert_pair pair{snap.key_pem.str().c_str(), snap.chain_pem.c_str()};
  *config = grpc_ssl_server_certificate_config_create(snap.roots_pem.c_str(), &pair, 1);
  if (*config == nullptr) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
  state->last_returned = snap.generation;
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

// gRPC C++ 1.51 has no public wrapper for SSL server credentials with a config fetcher; the
// C API has. ServerCredentials' one job is to add a listening port with C credentials, so this
// subclass does exactly that (Server is the only caller of AddPortToServer).
class FetcherServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit FetcherServerCredentials(FetchState* state) : state_(state) {}
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    grpc_ssl_server_credentials_options* options =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(
            GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY, &FetchConfig, state_);
    if (options == nullptr) return 0;
    grpc_server_credentials* creds = grpc_ssl_server_credentials_create_with_options(options);
    if (creds == nullptr) return 0;
    const int port = grpc_server_add_http2_port(server, addr.c_str(), creds);
    grpc_server_credentials_release(creds);
    return port;
  }
  FetchState* state_;
};

// ---- request plumbing ----

grpc::StatusCode ToGrpcCode(Code code) {
  switch (code) {
    case Code::kOk: return grpc::StatusCode::OK;
    case Code::kInvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case Code::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case Code::kAlreadyExists: return grpc::StatusCode::ALREADY_EXISTS;
    case Code::kPermissionDenied: return grpc::StatusCode::PERMISSION_DENIED;
    case Code::kUnauthenticated: return grpc::StatusCode::UNAUTHENTICATED;
    case Code::kFailedPrecondition: return grpc::StatusCode::FAILED_PRECONDITION;
    case Code::kResourceExhausted: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Code::kUnavailable: return grpc::StatusCode::UNAVAILABLE;
    case Code::kAborted: return grpc::StatusCode::ABORTED;
    case Code::kDeadlineExceeded: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case Code::kInternal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

// The one mapping from our errors to the wire: the client sees the safe message only.
grpc::Status ToGrpcStatus(const Status& status) {
  return grpc::Status(ToGrpcCode(status.code()), status.message());
}

PeerCredentials PeerOf(const grpc::ServerContextBase& ctx) {
  PeerCredentials peer;
  if (std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context()) {
    peer.has_cert = !auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME).empty();
    for (const grpc::string_ref& v : auth->FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME)) {
      peer.cert_uris.emplace_back(v.data(), v.size());
    }
  }
  peer.address = ctx.peer();
  auto range = ctx.client_metadata().equal_range("authorization");
  for (auto it = range.first; it != range.second; ++it) {
    peer.authorization.emplace_back(it->second.data(), it->second.size());
  }
  return peer;
}

const char* GoCodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "Unknown";
}

// go-grpc-prometheus' names, which Istio's CA exported from 1.0.
class CallMetrics {
 public:
  CallMetrics(MetricsRegistry& m, const char* service, const char* method)
      : m_(m),
        service_(service),
        method_(method),
        started_(m.GetCounter(
            "grpc_server_started_total", "RPCs started on the server.",
            {{"grpc_service", service}, {"grpc_method", method}, {"grpc_type", "unary"}})),
        seconds_(m.GetHistogram(
            "grpc_server_handling_seconds", "Time to handle an RPC, until the response is ready.",
            LatencyBuckets(),
            {{"grpc_service", service}, {"grpc_method", method}, {"grpc_type", "unary"}})) {}

  std::chrono::steady_clock::time_point Start() {
    started_.Inc();
    return std::chrono::steady_clock::now();
  }
  grpc::Status Finish(std::chrono::steady_clock::time_point start, grpc::Status s) {
    seconds_.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    m_.GetCounter("grpc_server_handled_total", "RPCs completed on the server, by code.",
                  {{"grpc_service", service_},
                   {"grpc_method", method_},
                   {"grpc_type", "unary"},
                   {"grpc_code", GoCodeName(s.error_code())}})
        .Inc();
    return s;
  }

 private:
  MetricsRegistry& m_;
  const char* service_;
  const char* method_;
  Counter& started_;
  Histogram& seconds_;
};

// The caller's deadline on the steady clock (kNoDeadline when it has none: gRPC reports an
// infinite deadline as the largest time point, which no arithmetic may touch).
SteadyTime DeadlineOf(const grpc::ServerContextBase& ctx) {
  const auto deadline = ctx.deadline();
  const auto now = std::chrono::system_clock::now();
  if (deadline >= now + std::chrono::hours(24 * 365)) return kNoDeadline;
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(deadline - now);
}

std::string TrimmedLine(const std::string& pem) {
  size_t b = pem.find_first_not_of("\r\n");
  size_t e = pem.find_last_not_of("\r\n");
  if (b == std::string::npos) return "\n";
  return pem.substr(b, e - b + 1) + "\n";
}

// Both services use gRPC's callback API: the handler runs on a gRPC thread, hands the call to
// CsrService::Submit (which queues the work, policy.h) and returns at once; the answer is
// written and the call finished from whichever thread decides it. So gRPC has no thread pool to
// exhaust, and no call is refused for want of a thread.
class LegacyService final : public pb::IstioCAService::CallbackService {
 public:
  LegacyService(CsrService& core, MetricsRegistry& m)
      : core_(core), metrics_(m, "istio.v1.auth.IstioCAService", "HandleCSR") {}

  grpc::ServerUnaryReactor* HandleCSR(grpc::CallbackServerContext* ctx, const pb::CsrRequest* req,
                                      pb::CsrResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const auto start = metrics_.Start();
    CsrCall call{CsrApi::kLegacy, req->csr_pem(),
                 static_cast<int64_t>(req->requested_ttl_minutes()) * 60};
    // `req` and `resp` live until Finish; so does this service (GrpcServer::Stop).
    core_.Submit(PeerOf(*ctx), call, DeadlineOf(*ctx),
                 [this, reactor, resp, start](Result<IssuedCert> issued) {
                   if (!issued.ok()) {
                     reactor->Finish(metrics_.Finish(start, ToGrpcStatus(issued.status())));
                     return;
                   }
                   resp->set_is_approved(true);
                   resp->set_signed_cert(issued->leaf.ToPem());
                   std::string chain;
                   for (const pki::Certificate& c : issued->intermediates) chain += c.ToPem();
                   resp->set_cert_chain(std::move(chain));
                   reactor->Finish(metrics_.Finish(start, grpc::Status::OK));
                 });
    return reactor;
  }

 private:
  CsrService& core_;
  CallMetrics metrics_;
};

class CertificateService final : public pb::IstioCertificateService::CallbackService {
 public:
  CertificateService(CsrService& core, MetricsRegistry& m)
      : core_(core), metrics_(m, "istio.v1.auth.IstioCertificateService", "CreateCertificate") {}

  grpc::ServerUnaryReactor* CreateCertificate(grpc::CallbackServerContext* ctx,
                                              const pb::IstioCertificateRequest* req,
                                              pb::IstioCertificateResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const auto start = metrics_.Start();
    CsrCall call{CsrApi::kModern, req->csr(), req->validity_duration()};
    core_.Submit(PeerOf(*ctx), call, DeadlineOf(*ctx),
                 [this, reactor, resp, start](Result<IssuedCert> issued) {
                   if (!issued.ok()) {
                     reactor->Finish(metrics_.Finish(start, ToGrpcStatus(issued.status())));
                     return;
                   }
                   // Leaf, each intermediate, then the whole root bundle as one last element
                   // (Istio 1.26+).
                   resp->add_cert_chain(TrimmedLine(issued->leaf.ToPem()));
                   for (const pki::Certificate& c : issued->intermediates) {
                     resp->add_cert_chain(TrimmedLine(c.ToPem()));
                   }
                   resp->add_cert_chain(TrimmedLine(issued->RootCertPem()));
                   reactor->Finish(metrics_.Finish(start, grpc::Status::OK));
                 });
    return reactor;
  }

 private:
  CsrService& core_;
  CallMetrics metrics_;
};

// Counts the calls to our methods that gRPC answers without running the handler: a request that
// is not a valid message. gRPC finishes such a call through a stand-in reactor with
// UNIMPLEMENTED, a code our handlers never send, so that status at PRE_SEND_STATUS marks exactly
// these calls. (A request over max_message_bytes never becomes a call: gRPC's transport refuses
// it with ResourceExhausted before any C++ hook runs, so it cannot be counted here.)
class UndeliveredCallCounter final : public grpc::experimental::Interceptor {
 public:
  UndeliveredCallCounter(grpc::experimental::ServerRpcInfo* info, CsrService& core, CsrApi api)
      : info_(info), core_(core), api_(api) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS) &&
        methods->GetSendStatus().error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      PeerCredentials peer;
      peer.address = info_->server_context()->peer();
      core_.CountRefusal(api_, peer, Refusal::kBadMessage,
                         Status(Code::kInvalidArgument, "the request is not a valid message"));
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* info_;
  CsrService& core_;
  const CsrApi api_;
};

class UndeliveredCallCounterFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit UndeliveredCallCounterFactory(CsrService& core) : core_(core) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const std::string_view method = info->method();
    CsrApi api;
    if (method == "/istio.v1.auth.IstioCertificateService/CreateCertificate") {
      api = CsrApi::kModern;
    } else if (method == "/istio.v1.auth.IstioCAService/HandleCSR") {
      api = CsrApi::kLegacy;
    } else {
      return nullptr;
    }
    return new UndeliveredCallCounter(info, core_, api);
  }

 private:
  CsrService& core_;
};

}  // namespace

// ---- server ----

struct GrpcServer::Impl {
  Authority* authority = nullptr;
  GrpcServerOptions options;
  std::shared_ptr<TokenReviewer> reviewer;
  std::unique_ptr<CsrService> core;
  std::unique_ptr<LegacyService> legacy;
  std::unique_ptr<CertificateService> modern;
  FetchState fetch;
  std::shared_ptr<FetcherServerCredentials> creds;
  std::unique_ptr<grpc::Server> server;
  std::mutex stop_mu;
  std::atomic<bool> serving{false};  // read by Ready() without waiting for a Stop in progress
};

Result<std::unique_ptr<GrpcServer>> GrpcServer::Start(Authority& authority,
                                                      std::shared_ptr<TokenReviewer> reviewer,
                                                      GrpcServerOptions options,
                                                      MetricsRegistry& metrics,
                                                      const Clock& clock) {
  if (authority.Bundle() == nullptr) return Unavailable("the CA is not loaded");
  std::unique_ptr<GrpcServer> self(new GrpcServer());
  self->serving_ = std::make_unique<ServingCert>(authority, ServingDnsNames(options));
  RETURN_IF_ERROR(self->serving_->Current());  // fail early, not at the first handshake

  auto impl = std::make_unique<Impl>();
  impl->authority = &authority;
  impl->options = options;
  if (reviewer != nullptr) {
    impl->reviewer = std::make_shared<TokenReviewCache>(reviewer, clock, options.token_cache);
  }
  impl->core = std::make_unique<CsrService>(authority, impl->reviewer, options.limits, metrics,
                                            clock, options.events);
  impl->legacy = std::make_unique<LegacyService>(*impl->core, metrics);
  impl->modern = std::make_unique<CertificateService>(*impl->core, metrics);
  impl->fetch.cert = self->serving_.get();
  impl->creds = std::make_shared<FetcherServerCredentials>(&impl->fetch);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_address, impl->creds, &port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> counters;
  counters.push_back(std::make_unique<UndeliveredCallCounterFactory>(*impl->core));
  builder.experimental().SetInterceptorCreators(std::move(counters));
  builder.RegisterService(impl->legacy.get());
  builder.RegisterService(impl->modern.get());
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || port == 0) {
    return Unavailable("cannot listen for gRPC on " + options.listen_address);
  }
  self->port_ = port;
  impl->serving.store(true);
  self->impl_ = std::move(impl);
  Logger("grpc")->info("serving gRPC address={} port={}", options.listen_address, port);
  return self;
}

GrpcServer::~GrpcServer() { Stop(); }

void GrpcServer::Stop() {
  if (!impl_) return;
  impl_->serving.store(false);
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->server) {
    // The queues first: a queued call is answered now (Unavailable) instead of holding the
    // shutdown, and a call arriving from here on is refused at once. Then gRPC's shutdown has
    // only calls that are being answered to wait for.
    impl_->core->Stop();
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    impl_->server->Wait();
    impl_->server.reset();
  }
}

CsrService& GrpcServer::service() { return *impl_->core; }

bool GrpcServer::Ready() const { return impl_ && impl_->serving.load(); }

Status GrpcServer::SelfCheck(const std::string& identity, Duration timeout) {
  Authority& authority = *impl_->authority;
  ASSIGN_OR_RETURN(pki::PrivateKey client_key, pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  Duration ttl = std::min<Duration>(authority.policy().max_ttl, std::chrono::minutes(10));
  ASSIGN_OR_RETURN(IssuedCert client, authority.Sign(client_key.get(), {identity}, {}, ttl));
  ASSIGN_OR_RETURN(pki::PrivateKey csr_key, pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  ASSIGN_OR_RETURN(pki::Csr csr, pki::Csr::Build(csr_key, {{identity}, {}, ""}));

  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = client.RootCertPem();
  ASSIGN_OR_RETURN(SecretString client_key_pem, client_key.ToPem());
  tls.pem_private_key = client_key_pem.str();
  tls.pem_cert_chain = client.CertChainPem();
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(impl_->options.host_identities.empty()
                                    ? std::string("istio-ca")
                                    : impl_->options.host_identities.front());
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_),
                                           grpc::SslCredentials(tls), args);
  auto stub = pb::IstioCAService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  pb::CsrRequest req;
  req.set_csr_pem(csr.ToPem());
  req.set_requested_ttl_minutes(
      static_cast<int32_t>(std::chrono::duration_cast<std::chrono::minutes>(ttl).count()));
  pb::CsrResponse resp;
  grpc::Status s = stub->HandleCSR(&ctx, req, &resp);
  if (!s.ok()) {
    return Unavailable("gRPC self-check failed: " + std::string(GoCodeName(s.error_code())) + ": " +
                       s.error_message());
  }
  if (!resp.is_approved() || resp.signed_cert().empty()) {
    return Unavailable("gRPC self-check: CSR not approved");
  }
  return OkStatus();
}

}  // namespace istioca::ca
