// grpc_test_server: the gRPC CSR service on 127.0.0.1:0 for the Python interop client.
//
// Writes into DIR: root-cert.pem, and a client certificate for
// spiffe://cluster.local/ns/ns1/sa/alice (cert-chain.pem, key.pem, 0600); prints "port=N" on
// stdout once serving, and serves until stdin closes. Bearer tokens are checked by a fake
// TokenReviewer: "token:<ns>:<sa>" is accepted, anything else is not.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "base/log.h"
#include "ca/grpc/server.h"
#include "pki/issue.h"

using namespace istioca;

namespace {
class FakeReviewer final : public ca::TokenReviewer {
 public:
  Result<ca::TokenIdentity> Review(const std::string& token) override {
    if (token.rfind("token:", 0) == 0) {
      auto colon = token.find(':', 6);
      if (colon != std::string::npos)
        return ca::TokenIdentity{token.substr(6, colon - 6), token.substr(colon + 1), {}, {}};
    }
    return Status(Code::kUnauthenticated, "token not authenticated");
  }
};

bool Write(const std::string& path, const std::string& data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0) return false;
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return ::close(fd) == 0 && ok;
}

template <class T>
T OrDie(Result<T> r) {
  if (!r.ok()) {
    std::cerr << "grpc_test_server: " << r.status().ToString() << "\n";
    std::exit(1);
  }
  return std::move(r).value();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: grpc_test_server DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  (void)ConfigureLogging("warn", false);
  const Clock& clock = SystemClock::Get();
  ca::Authority authority(ca::IssuancePolicy{}, clock);
  pki::PrivateKey root_key = OrDie(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate root = OrDie(pki::MakeSelfSignedRoot(
      root_key, {"cluster.local", std::chrono::hours(24 * 365)}, clock.Now()));
  authority.SetBundle(std::make_shared<ca::CaBundle>(ca::CaBundle{{root, root_key}, {}, {root}}));

  pki::PrivateKey client_key = OrDie(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  ca::IssuedCert client = OrDie(authority.Sign(
      client_key.get(), {"spiffe://cluster.local/ns/ns1/sa/alice"}, {}, std::chrono::hours(1)));
  if (!Write(dir + "/root-cert.pem", root.ToPem(), 0644) ||
      !Write(dir + "/cert-chain.pem", client.CertChainPem(), 0644) ||
      !Write(dir + "/key.pem", OrDie(client_key.ToPem()).str(), 0600)) {
    std::cerr << "grpc_test_server: cannot write into " << dir << "\n";
    return 1;
  }
  ca::GrpcServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.limits.per_identity_qps = 1000;
  options.limits.per_identity_burst = 1000;
  MetricsRegistry metrics;
  auto server = OrDie(
      ca::GrpcServer::Start(authority, std::make_shared<FakeReviewer>(), options, metrics, clock));
  std::cout << "port=" << server->port() << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "metrics") std::cout << metrics.Render() << "END" << std::endl;
  }
  server->Stop();
  return 0;
}
