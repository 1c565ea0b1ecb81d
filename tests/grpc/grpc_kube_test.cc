// The bearer-token path end to end: gRPC call with a service-account JWT → the Kubernetes
// TokenReviewer (ca/grpc/kube_token_reviewer.h) → the fake API server's TokenReview → certificate
// for that service account. Audiences come from --token-audiences.
#include "ca/grpc/kube_token_reviewer.h"
#include "grpc_fixture.h"
#include "k8s/http_api.h"
#include "tests/fakeapi/fake_apiserver.h"

namespace istioca::testing {
namespace {

TEST_CASE("a JWT is checked by TokenReview on the (fake) API server", "[grpc][kube]") {
  auto tls = Must(fakeapi::MakeTestTls());
  fakeapi::FakeApiOptions o;
  o.cert_pem = tls.cert_pem;
  o.key_pem = tls.key_pem;
  auto api_server = Must(fakeapi::FakeApiServer::Start(o));
  api_server->AddUser("admin-token", "admin", true);
  api_server->AddReviewableToken(
      "jwt-web",
      {"system:serviceaccount:ns2:web", "uid-1", {"system:serviceaccounts"}, {"istio-ca"}});
  api_server->AddReviewableToken(
      "jwt-other-aud",
      {"system:serviceaccount:ns2:web", "uid-2", {"system:serviceaccounts"}, {"vault"}});

  k8s::RestConfig rc;
  rc.server = api_server->url();
  rc.ca_pem = tls.ca_pem;
  rc.token = "admin-token";
  std::shared_ptr<k8s::Api> api = Must(k8s::HttpApi::Create(rc));

  FakeClock clock(SystemClock::Get().Now());
  ca::Authority authority(ca::IssuancePolicy{}, clock);
  authority.SetBundle(MakeBundle(clock.Now()));
  MetricsRegistry metrics;
  ca::GrpcServerOptions options;
  options.listen_address = "127.0.0.1:0";
  auto reviewer =
      std::make_shared<ca::KubeTokenReviewer>(api, std::vector<std::string>{"istio-ca"});
  auto server = Must(ca::GrpcServer::Start(authority, reviewer, options, metrics, clock));

  grpc::SslCredentialsOptions creds;
  creds.pem_root_certs = authority.Bundle()->RootsPem();
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("istio-ca");
  auto ch = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server->port()),
                                      grpc::SslCredentials(creds), args);

  Call ok = CreateCertificate(ch.get(), CsrPem(), 0, "jwt-web");
  INFO(ok.status.error_message());
  REQUIRE(ok.status.ok());
  auto leaf = Must(pki::Certificate::ParsePemChain(ok.chain[0])).front();
  CHECK(leaf.UriSans() == std::vector<std::string>{"spiffe://cluster.local/ns/ns2/sa/web"});
  CHECK(CreateCertificate(ch.get(), CsrPem(), 0, "jwt-other-aud").status.error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
  CHECK(CreateCertificate(ch.get(), CsrPem(), 0, "unknown").status.error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
  server->Stop();
}

}  // namespace
}  // namespace istioca::testing
