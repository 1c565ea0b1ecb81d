// The admission and rate-limit flags of `istio-ca serve` (issue 11): bad values are one line and
// exit 2 before anything starts; good values reach the gRPC server of the real binary.
#include <signal.h>

#include <algorithm>
#include <filesystem>

#include "grpc_fixture.h"
#include "testing/process.h"
#include "testing/wait.h"
#include "tests/ca/temp_dir.h"

namespace istioca::testing {
namespace {

using namespace std::chrono_literals;

CliRun Run(std::vector<std::string> args) {
  args.insert(args.begin(), ISTIOCA_BINARY);
  return RunCli(std::move(args), /*with_stderr=*/true);
}

TEST_CASE("serve: a bad admission or rate-limit flag value is one line naming it and exit 2",
          "[grpc][flags]") {
  TempDir d;
  auto [flag, value] = GENERATE(table<std::string, std::string>({
      {"--csr-rate-limit-qps", "-1"},
      {"--csr-rate-limit-qps", "ten"},
      {"--csr-rate-limit-qps", "nan"},
      {"--csr-rate-limit-qps", "inf"},
      {"--csr-rate-limit-qps", "1e3"},
      {"--csr-rate-limit-qps", "1.2.3"},
      {"--csr-rate-limit-qps", "2000000"},
      {"--csr-rate-limit-qps", ""},
      {"--csr-rate-limit-burst", "-5"},
      {"--csr-rate-limit-burst", "1.5"},
      {"--csr-rate-limit-burst", "9999999999"},
      {"--csr-queue-size", "0"},
      {"--csr-queue-size", "1k"},
      {"--csr-queue-size", "2000000"},
      {"--csr-signing-threads", "-1"},
      {"--csr-signing-threads", "257"},
      {"--token-review-threads", "0"},
      {"--token-review-threads", "x"},
      {"--token-review-qps", "-5"},
      {"--token-review-qps", "fast"},
      {"--token-review-burst", "-1"},
      {"--token-review-burst", "2.5"},
  }));
  CliRun r = Run({"serve", "--local-dir", d.path(), "--grpc-port", "0", "--monitoring-port", "0",
                  flag, value});
  CAPTURE(flag, value, r.out);
  CHECK(r.exit_code == 2);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK(r.out.rfind("istio-ca: " + flag + ": ", 0) == 0);
  CHECK_FALSE(std::filesystem::exists(d / "ca"));  // nothing started
}

TEST_CASE("serve --help documents the admission flags with their defaults", "[grpc][flags]") {
  CliRun r = Run({"serve", "--help"});
  CHECK(r.exit_code == 0);
  for (const char* want : {"--csr-rate-limit-qps", "--csr-rate-limit-burst", "--csr-queue-size",
                           "--csr-signing-threads", "--token-review-threads", "--token-review-qps",
                           "--token-review-burst"}) {
    INFO(want);
    CHECK(r.out.find(want) != std::string::npos);
  }
  CHECK(r.out.find("--csr-rate-limit-qps TEXT=10") != std::string::npos);
  CHECK(r.out.find("--csr-rate-limit-burst TEXT=20") != std::string::npos);
  CHECK(r.out.find("--csr-queue-size TEXT=1024") != std::string::npos);
  CHECK(r.out.find("--token-review-qps TEXT=500") != std::string::npos);
  CHECK(r.out.find("--token-review-burst TEXT=1000") != std::string::npos);
}

TEST_CASE("serve: the rate-limit flags reach the daemon's gRPC server", "[grpc][flags][e2e]") {
  TempDir d;
  WriteFile(d / "serviceaccounts/default/web", "");
  const int grpc_port = FreePort();
  Process daemon(
      {ISTIOCA_BINARY, "serve", "--local-dir", d.path(), "--monitoring-port", "0", "--grpc-port",
       std::to_string(grpc_port), "--csr-rate-limit-qps", "0.001", "--csr-rate-limit-burst", "2",
       "--csr-queue-size", "8", "--csr-signing-threads", "1", "--token-review-threads", "1"},
      d / "daemon.log");
  const std::string secret = d / "secrets/default/istio.web/";
  REQUIRE(WaitFor([&] { return !ReadAll(secret + "key.pem").empty(); }, 20000ms));
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadAll(secret + "root-cert.pem");
  tls.pem_private_key = ReadAll(secret + "key.pem");
  tls.pem_cert_chain = ReadAll(secret + "cert-chain.pem");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("istio-ca");
  auto ch = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(grpc_port),
                                      grpc::SslCredentials(tls), args);
  const std::string csr = CsrPem();
  // The gRPC port may open a little after the secret is written.
  REQUIRE(WaitFor([&] { return CreateCertificate(ch.get(), csr).status.ok(); }, 20000ms));
  CHECK(CreateCertificate(ch.get(), csr).status.ok());
  Call third = CreateCertificate(ch.get(), csr);
  CHECK(third.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(third.status.error_message() == "too many requests from this client");
  CHECK(daemon.Stop(SIGTERM, 15000ms) == 0);
  CHECK(ReadAll(d / "daemon.log").find("reason=rate_limited") != std::string::npos);
}

}  // namespace
}  // namespace istioca::testing
