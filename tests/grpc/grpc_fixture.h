// tests/grpc/grpc_fixture.h — an Authority and a GrpcServer on 127.0.0.1:0, plus client helpers.
//
// The TLS stack checks certificate validity against the real time, so the fake clock starts at
// the real time; tests move it forward only where no handshake depends on the result.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>

#include "ca/grpc/server.h"
#include "istio/v1/auth/ca_service.grpc.pb.h"
#include "istio/v1/auth/certificate_service.grpc.pb.h"
#include "pki/csr.h"
#include "testing/test_ca.h"

namespace istioca::testing {

namespace pb = ::istio::v1::auth;

// Accepts tokens "token:<ns>:<sa>" and pod-bound "pod:<ns>:<sa>:<pod-uid>"; "unreachable" fails
// as a down API server; counts reviews.
class FakeTokenReviewer final : public ca::TokenReviewer {
 public:
  Result<ca::TokenIdentity> Review(const std::string& token) override {
    ++reviews;
    if (token == "unreachable") return Unavailable("connection refused");
    for (const char* kind : {"token:", "pod:"}) {
      if (token.rfind(kind, 0) != 0) continue;
      std::vector<std::string> parts;
      for (size_t at = std::string_view(kind).size(); at <= token.size();) {
        size_t colon = std::min(token.find(':', at), token.size());
        parts.push_back(token.substr(at, colon - at));
        at = colon + 1;
      }
      if (kind[0] == 't' && parts.size() == 2) return ca::TokenIdentity{parts[0], parts[1], {}, {}};
      if (kind[0] == 'p' && parts.size() == 3)
        return ca::TokenIdentity{parts[0], parts[1], "pod-" + parts[2], parts[2]};
    }
    return Status(Code::kUnauthenticated, "token not authenticated");
  }
  std::atomic<int> reviews{0};
};

inline std::shared_ptr<const ca::CaBundle> MakeBundle(TimePoint now, bool intermediate = false) {
  pki::PrivateKey root_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate root =
      Must(pki::MakeSelfSignedRoot(root_key, {"cluster.local", std::chrono::hours(24 * 365)}, now));
  auto bundle = std::make_shared<ca::CaBundle>(ca::CaBundle{{root, root_key}, {}, {root}});
  if (intermediate) {
    pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
    pki::Certificate inter = Must(pki::IssueIntermediate(
        {root, root_key}, key.get(), {"intermediate", std::chrono::hours(24 * 100)}, now));
    bundle->signer = {inter, key};
  }
  return bundle;
}

struct ClientCreds {
  std::string key_pem;
  std::string chain_pem;
};

struct GrpcFixture {
  explicit GrpcFixture(bool with_reviewer = true, ca::GrpcLimits limits = {},
                       bool intermediate = false)
      : clock(SystemClock::Get().Now()),
        authority(ca::IssuancePolicy{}, clock),
        reviewer(with_reviewer ? std::make_shared<FakeTokenReviewer>() : nullptr) {
    authority.SetBundle(MakeBundle(clock.Now(), intermediate));
    options.listen_address = "127.0.0.1:0";
    options.limits = limits;
    server = Must(ca::GrpcServer::Start(authority, reviewer, options, metrics, clock));
  }

  // A CA outage: the server goes away...
  void StopServer() {
    port = server->port();
    server->Stop();
    server.reset();
  }
  // ...and comes back on the same port.
  void StartServer() {
    options.listen_address = "127.0.0.1:" + std::to_string(port);
    server = Must(ca::GrpcServer::Start(authority, reviewer, options, metrics, clock));
  }

  std::string Address() const { return "127.0.0.1:" + std::to_string(server->port()); }
  std::string RootsPem() const { return authority.Bundle()->RootsPem(); }

  // A client certificate for `uri` from the current CA.
  ClientCreds ClientCert(const std::string& uri) {
    pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
    ca::IssuedCert c = Must(authority.Sign(key.get(), {uri}, {}, std::chrono::hours(1)));
    return {Must(key.ToPem()).str(), c.CertChainPem()};
  }

  std::shared_ptr<grpc::Channel> Channel(const ClientCreds* creds = nullptr,
                                         std::string roots = "") {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = roots.empty() ? RootsPem() : roots;
    if (creds != nullptr) {
      tls.pem_private_key = creds->key_pem;
      tls.pem_cert_chain = creds->chain_pem;
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("istio-ca");
    return grpc::CreateCustomChannel(Address(), grpc::SslCredentials(tls), args);
  }

  FakeClock clock;
  MetricsRegistry metrics;
  ca::Authority authority;
  std::shared_ptr<FakeTokenReviewer> reviewer;
  ca::GrpcServerOptions options;
  std::unique_ptr<ca::GrpcServer> server;
  int port = 0;
};

inline std::string CsrPem(const std::vector<std::string>& uris = {},
                          pki::KeyType type = pki::KeyType::kEcP256,
                          const std::vector<std::string>& dns = {}) {
  pki::PrivateKey key = Must(pki::PrivateKey::Generate(type));
  return Must(pki::Csr::Build(key, {uris, dns, ""})).ToPem();
}

struct Call {
  grpc::Status status;
  std::vector<std::string> chain;  // modern: cert_chain; legacy: {signed_cert, cert_chain}
};

inline Call CreateCertificate(grpc::Channel* ch, const std::string& csr, int64_t ttl_seconds = 0,
                              const std::string& bearer = "") {
  auto stub =
      pb::IstioCertificateService::NewStub(std::shared_ptr<grpc::Channel>(ch, [](auto*) {}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!bearer.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer);
  pb::IstioCertificateRequest req;
  req.set_csr(csr);
  req.set_validity_duration(ttl_seconds);
  pb::IstioCertificateResponse resp;
  Call out;
  out.status = stub->CreateCertificate(&ctx, req, &resp);
  out.chain.assign(resp.cert_chain().begin(), resp.cert_chain().end());
  return out;
}

inline Call HandleCsr(grpc::Channel* ch, const std::string& csr, int32_t ttl_minutes = 0,
                      const std::string& bearer = "") {
  auto stub = pb::IstioCAService::NewStub(std::shared_ptr<grpc::Channel>(ch, [](auto*) {}));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!bearer.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer);
  pb::CsrRequest req;
  req.set_csr_pem(csr);
  req.set_requested_ttl_minutes(ttl_minutes);
  pb::CsrResponse resp;
  Call out;
  out.status = stub->HandleCSR(&ctx, req, &resp);
  if (out.status.ok()) {
    CHECK(resp.is_approved());
    out.chain = {resp.signed_cert(), resp.cert_chain()};
  }
  return out;
}

}  // namespace istioca::testing
