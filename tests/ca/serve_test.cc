// End-to-end tests of `istio-ca serve --local-dir`: the real binary on a temp directory.
//
// The monitoring port is chosen by binding 127.0.0.1:0 in the test and releasing it (the child
// cannot report a port it picked itself: 0 means "off"). Every wait is a bounded poll with a
// short interval and a hard timeout; no fixed sleep decides an outcome.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "istio/v1/auth/ca_service.grpc.pb.h"
#include "istio/v1/auth/certificate_service.grpc.pb.h"
#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/issue.h"
#include "pki/key.h"
#include "pki/verify.h"
#include "tests/ca/temp_dir.h"
#include "tests/testing/process.h"
#include "tests/testing/test_ca.h"
#include "tests/testing/wait.h"

using namespace istioca;
using namespace std::chrono_literals;
using istioca::testing::CliRun;
using istioca::testing::FreePort;
using istioca::testing::Must;
using istioca::testing::Process;
using istioca::testing::ReadAll;
using istioca::testing::TempDir;
using istioca::testing::WaitFor;
using istioca::testing::WriteFile;
namespace fs = std::filesystem;

namespace {

// `istio-ca` with `args`: its exit code and what it wrote to stdout and stderr.
CliRun RunCli(std::vector<std::string> args) {
  args.insert(args.begin(), ISTIOCA_BINARY);
  return istioca::testing::RunCli(std::move(args), /*with_stderr=*/true);
}

class Serve {
 public:
  Serve(const TempDir& dir, std::vector<std::string> extra = {}) : port_(FreePort()) {
    std::vector<std::string> args = {
        ISTIOCA_BINARY,        "serve",           "--local-dir", dir.path(), "--monitoring-port",
        std::to_string(port_), "--resync-period", "1s"};
    if (std::find(extra.begin(), extra.end(), "--grpc-port") == extra.end()) {
      args.insert(args.end(), {"--grpc-port", "0"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    log_ = dir.path() + "/daemon.log." + std::to_string(counter_++);
    process_ = std::make_unique<Process>(std::move(args), log_);
  }
  ~Serve() { Stop(); }
  int port() const { return port_; }
  std::string Log() const { return ReadAll(log_); }
  // `sig` and wait (bounded); returns the exit code. 15 s: an idle gRPC connection can hold the
  // server's shutdown until its 2 s deadline, and the ASan pass on a loaded machine is slow; a hang
  // still fails.
  int Stop(int sig = SIGTERM) { return process_->Stop(sig, 15000ms); }
  void Signal(int sig) { process_->Signal(sig); }
  httplib::Result Get(const std::string& path) {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(1);
    return c.Get(path.c_str());
  }
  bool WaitReady() {
    return WaitFor([&] {
      auto r = Get("/readyz");
      return r && r->status == 200;
    });
  }

 private:
  int port_;
  std::string log_;
  std::unique_ptr<Process> process_;
  static inline int counter_ = 0;
};

std::string SecretFile(const TempDir& d, const std::string& ns, const std::string& sa,
                       const std::string& f) {
  return d / ("secrets/" + ns + "/istio." + sa + "/" + f);
}

pki::Certificate LeafOf(const TempDir& d, const std::string& ns, const std::string& sa) {
  return Must(pki::Certificate::ParsePemChain(ReadAll(SecretFile(d, ns, sa, "cert-chain.pem"))))
      .front();
}

bool Published(const TempDir& d, const std::string& ns, const std::string& sa) {
  return !ReadAll(SecretFile(d, ns, sa, "cert-chain.pem")).empty();
}

}  // namespace

TEST_CASE("serve: secrets appear, verify with the right SPIFFE ID, and follow the SA files",
          "[serve][e2e]") {
  TempDir d;
  WriteFile(d / "serviceaccounts/default/web", "");
  WriteFile(d / "serviceaccounts/prod/db", "");
  Serve s(d);
  REQUIRE(s.WaitReady());
  REQUIRE(WaitFor([&] { return Published(d, "default", "web") && Published(d, "prod", "db"); }));

  const auto roots =
      Must(pki::Certificate::ParsePemChain(ReadAll(SecretFile(d, "prod", "db", "root-cert.pem"))));
  const auto leaf = LeafOf(d, "prod", "db");
  CHECK(leaf.UriSans() == std::vector<std::string>{"spiffe://cluster.local/ns/prod/sa/db"});
  CHECK(pki::VerifyChain(leaf, {}, roots, istioca::SystemClock::Get().Now()).ok());
  auto key = Must(pki::PrivateKey::FromPem(ReadAll(SecretFile(d, "prod", "db", "key.pem"))));
  CHECK(pki::SamePublicKey(key.get(), leaf.PublicKey()));
  CHECK(ReadAll(d / "ca/root-cert.pem") == ReadAll(SecretFile(d, "prod", "db", "root-cert.pem")));

  // A new service account takes effect within a second (hard limit here: 1.5 s).
  WriteFile(d / "serviceaccounts/default/api", "");
  CHECK(WaitFor([&] { return Published(d, "default", "api"); }, 1500ms));
  // Deleting it deletes its secret.
  fs::remove(d / "serviceaccounts/default/api");
  CHECK(WaitFor([&] { return !fs::exists(d / "secrets/default/istio.api"); }, 1500ms));
  // A deleted secret of an existing SA comes back.
  fs::remove_all(d / "secrets/default/istio.web");
  CHECK(WaitFor([&] { return Published(d, "default", "web"); }, 1500ms));
  // A corrupted one is repaired by the (1 s) resync.
  WriteFile(SecretFile(d, "prod", "db", "cert-chain.pem"), "garbage");
  CHECK(WaitFor([&] {
    return ReadAll(SecretFile(d, "prod", "db", "cert-chain.pem")).find("BEGIN CERTIFICATE") !=
           std::string::npos;
  }));
  // Invalid names: logged, not fatal.
  WriteFile(d / "serviceaccounts/default/Not_Valid", "");
  CHECK(WaitFor([&] { return s.Log().find("not a valid Kubernetes name") != std::string::npos; }));
  auto health = s.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(s.Stop() == 0);
}

TEST_CASE("serve: /metrics has Istio's names and passes promtool", "[serve][e2e]") {
  TempDir d;
  WriteFile(d / "serviceaccounts/default/web", "");
  Serve s(d);
  REQUIRE(s.WaitReady());
  auto r = s.Get("/metrics");
  REQUIRE(r);
  const std::string text = r->body;
  for (const char* name :
       {"citadel_secret_controller_svc_acc_created_cert_count 1",
        "citadel_secret_controller_svc_acc_deleted_cert_count",
        "citadel_secret_controller_secret_deleted_cert_count",
        "citadel_secret_controller_csr_err_count",
        "citadel_secret_controller_csr_sign_err_count{error=\"CA_NOT_READY\"}",
        "citadel_server_root_cert_expiry_timestamp", "citadel_server_cert_chain_expiry_timestamp",
        "istio_ca_workload_secret_issue_seconds_bucket",
        "istio_ca_workload_cert_earliest_expiry_seconds", "istio_ca_trust_stage 0",
        "istio_ca_trust_bundle_generation 1", "istio_ca_trust_roots 1",
        "istio_ca_trust_next_transition_timestamp_seconds", "istio_ca_trust_objects_updated",
        "istio_ca_trust_objects_required", "istio_ca_trust_unsafe_activation 0"}) {
    CHECK_THAT(text, Catch::Contains(name));
  }
  if (system("command -v promtool >/dev/null 2>&1") == 0) {
    const std::string file = d / "metrics.txt";
    WriteFile(file, text);
    const int rc = system(("promtool check metrics < " + file + " >/dev/null 2>&1").c_str());
    CHECK(rc == 0);
  } else {
    WARN("promtool not installed; lint skipped");
  }
  auto v = s.Get("/version");
  REQUIRE(v);
  CHECK_THAT(v->body, Catch::Contains("istio-ca"));
}

TEST_CASE("serve: / and /status.json show the trust bundle and every managed certificate",
          "[serve][e2e][status]") {
  TempDir d;
  WriteFile(d / "serviceaccounts/default/web", "");
  WriteFile(d / "serviceaccounts/shop/cart", "");
  Serve s(d);
  REQUIRE(s.WaitReady());
  REQUIRE(WaitFor([&] {
    auto r = s.Get("/status.json");
    return r && nlohmann::json::parse(r->body)["certificates"].size() == 2;
  }));
  auto j = nlohmann::json::parse(s.Get("/status.json")->body);
  CHECK(j["trust"]["stage"] == "stable");
  REQUIRE(j["roots"].size() == 1);
  CHECK(j["roots"][0]["anchors_signer"] == true);
  CHECK(j["outage_budget_seconds"].get<int64_t>() > 0);
  const pki::Certificate leaf = LeafOf(d, "default", "web");
  bool found = false;
  for (const auto& c : j["certificates"]) {
    if (c["service_account"] == "default/web") {
      found = true;
      CHECK(c["serial"] == leaf.SerialHex());
      CHECK(c["not_after"] == FormatRfc3339(leaf.NotAfter()));
    }
  }
  CHECK(found);
  auto page = s.Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK_THAT(page->get_header_value("Content-Type"), Catch::Contains("text/html"));
  CHECK_THAT(page->body, Catch::Contains("data-sa=\"default/web\""));
  CHECK_THAT(page->body, Catch::Contains("data-sa=\"shop/cart\""));
  CHECK_THAT(page->body, Catch::Contains("<svg"));
}

TEST_CASE("serve: an open monitoring connection does not hold up shutdown", "[serve][e2e]") {
  TempDir d;
  Serve s(d);
  REQUIRE(s.WaitReady());
  httplib::Client scraper("127.0.0.1", s.port());
  scraper.set_keep_alive(true);  // as Prometheus: the connection stays open between scrapes
  auto r = scraper.Get("/metrics");
  REQUIRE(r);
  CHECK(r->get_header_value("Connection") == "close");
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(s.Stop() == 0);
  // httplib's keep-alive timeout is 5 s; a clean stop is far below it.
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
}

TEST_CASE("serve: a restart keeps the root and the published secrets", "[serve][e2e]") {
  TempDir d;
  WriteFile(d / "serviceaccounts/default/web", "");
  std::string root, serial;
  {
    Serve s(d);
    REQUIRE(WaitFor([&] { return Published(d, "default", "web"); }));
    root = ReadAll(d / "ca/root-cert.pem");
    serial = LeafOf(d, "default", "web").SerialHex();
    CHECK(s.Stop(SIGINT) == 0);
  }
  Serve s(d);
  REQUIRE(s.WaitReady());
  CHECK(ReadAll(d / "ca/root-cert.pem") == root);
  CHECK(LeafOf(d, "default", "web").SerialHex() == serial);
  CHECK(s.Stop() == 0);
  // Nothing half-written is left behind.
  for (const auto& e : fs::recursive_directory_iterator(d.path())) {
    CHECK(e.path().filename().string().rfind(".tmp.", 0) != 0);
  }
}

TEST_CASE("serve: a self-signed root in its grace period is re-issued with the same key",
          "[serve][e2e][trust]") {
  TempDir d;
  WriteFile(d / "serviceaccounts/default/web", "");
  // A 10 s root (backdated 2 min like every root) is within the last 20% of its life at once.
  Serve s(d, {"--self-signed-ca-cert-ttl", "10s", "--self-signed-root-cert-check-interval", "1s",
              "--workload-cert-ttl", "5s"});
  REQUIRE(WaitFor([&] { return Published(d, "default", "web"); }));
  const pki::Certificate first =
      Must(pki::Certificate::ParsePemChain(ReadAll(d / "ca/ca-cert.pem"))).front();
  const pki::Certificate leaf = LeafOf(d, "default", "web");
  REQUIRE(WaitFor(
      [&] {
        auto now = pki::Certificate::ParsePemChain(ReadAll(d / "ca/ca-cert.pem"));
        return now.ok() && now->front().SerialHex() != first.SerialHex();
      },
      30000ms));
  const pki::Certificate reissued =
      Must(pki::Certificate::ParsePemChain(ReadAll(d / "ca/ca-cert.pem"))).front();
  // Same key and subject: the old root's leaves verify against the new root certificate.
  CHECK(pki::Describe(reissued).subject_key_id == pki::Describe(first).subject_key_id);
  CHECK(reissued.Subject() == first.Subject());
  CHECK(reissued.NotAfter() > first.NotAfter());
  CHECK(pki::VerifyChain(leaf, {}, {reissued}, SystemClock::Get().Now()).ok());
  CHECK_THAT(s.Log(), Catch::Contains("re-issued with the same key"));
  CHECK(s.Stop() == 0);
}

TEST_CASE("serve: a short TTL shows rotation", "[serve][e2e]") {
  TempDir d;
  WriteFile(d / "serviceaccounts/default/web", "");
  Serve s(d, {"--workload-cert-ttl", "4s", "--workload-cert-min-grace-period", "0s"});
  REQUIRE(WaitFor([&] { return Published(d, "default", "web"); }));
  const std::string first = LeafOf(d, "default", "web").SerialHex();
  // Grace = 50% of 4 s (+ up to 10% jitter): renewed about 2 s after issuance.
  CHECK(WaitFor([&] { return LeafOf(d, "default", "web").SerialHex() != first; }, 8000ms));
  CHECK(LeafOf(d, "default", "web").NotAfter() > istioca::SystemClock::Get().Now());
}

TEST_CASE("serve: liveness file and probe", "[serve][e2e]") {
  TempDir d;
  const std::string probe = d / "liveness";
  Serve s(d, {"--liveness-probe-path", probe, "--liveness-probe-interval", "2s",
              "--probe-check-interval", "1s"});
  REQUIRE(WaitFor([&] { return fs::exists(probe); }));
  CHECK(RunCli({"probe", "--probe-path", probe, "--interval", "3s"}).exit_code == 0);
  CHECK(s.Stop() == 0);
  CHECK_FALSE(fs::exists(probe));
  CliRun r = RunCli({"probe", "--probe-path", probe, "--interval", "3s"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("probe file"));
  CHECK(RunCli({"probe", "--probe-path", probe, "--interval", "soon"}).exit_code == 2);
}

// Istio's liveness checker sent a CSR to its own gRPC port; so does ours. The only HandleCSR
// caller in this test is the self-check, so a successful HandleCSR on /metrics proves the
// probe file is fed through the gRPC server.
TEST_CASE("serve: the liveness self-check goes through the gRPC server", "[serve][e2e]") {
  TempDir d;
  const std::string probe = d / "liveness";
  Serve s(d, {"--grpc-port", std::to_string(FreePort()), "--liveness-probe-path", probe,
              "--liveness-probe-interval", "2s", "--probe-check-interval", "1s"});
  REQUIRE(WaitFor([&] { return fs::exists(probe); }, 10000ms));
  const std::string handled =
      "grpc_server_handled_total{grpc_service=\"istio.v1.auth.IstioCAService\","
      "grpc_method=\"HandleCSR\",grpc_type=\"unary\",grpc_code=\"OK\"} ";
  auto count = [&]() -> double {
    auto m = s.Get("/metrics");
    if (!m) return -1;
    const size_t at = m->body.find(handled);
    return at == std::string::npos ? 0 : std::stod(m->body.substr(at + handled.size()));
  };
  CHECK(WaitFor([&] { return count() >= 1; }));
  // And it keeps going: a second check within the next interval.
  const double first = count();
  CHECK(WaitFor([&] { return count() > first; }, 5000ms));
  CHECK_THAT(s.Log(), !Catch::Contains("self-check failed"));
  CHECK(s.Stop() == 0);
  CHECK_FALSE(fs::exists(probe));
}

TEST_CASE("serve: bad flag values are one line and exit 2, before anything starts",
          "[serve][e2e]") {
  TempDir d;
  auto args = GENERATE(as<std::vector<std::string>>{},
                       std::vector<std::string>{"--workload-cert-ttl", "1y"},
                       std::vector<std::string>{"--workload-cert-ttl", "3000h"},
                       std::vector<std::string>{"--workload-cert-grace-period-ratio", "2"},
                       std::vector<std::string>{"--workload-key-type", "dsa-1024"},
                       std::vector<std::string>{"--monitoring-port", "70000"},
                       std::vector<std::string>{"--custom-dns-names", "nocolon"},
                       std::vector<std::string>{"--signing-cert", "/x"},
                       std::vector<std::string>{"--log_output_level", "chatty"},
                       std::vector<std::string>{"--trust-domain", "UPPER"},
                       std::vector<std::string>{"--audit-log-max-size", "10 MB"},
                       std::vector<std::string>{"--audit-log-max-size", "1KB"},
                       std::vector<std::string>{"--audit-log-max-size", "1.5MB"},
                       std::vector<std::string>{"--audit-log-max-files", "-1"},
                       std::vector<std::string>{"--audit-log-max-files", "5x"},
                       std::vector<std::string>{"--audit-log", "/nonexistent/dir/audit.log"});
  std::vector<std::string> full = {"serve", "--local-dir", d.path()};
  full.insert(full.end(), args.begin(), args.end());
  CliRun r = RunCli(full);
  CAPTURE(r.out);
  CHECK(r.exit_code == 2);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(d / "ca"));  // nothing started
}

TEST_CASE("serve: a missing plugged-in CA file is one line naming it and exit 2", "[serve][e2e]") {
  TempDir d;
  WriteFile(d / "plugged/ca-cert.pem", "x");
  WriteFile(d / "plugged/ca-key.pem", "x");
  WriteFile(d / "plugged/root-cert.pem", "x");
  const std::string missing = d / "plugged/missing.pem";
  const std::string flag = GENERATE(as<std::string>{}, "--signing-cert", "--root-cert");
  std::vector<std::string> args = {"serve",
                                   "--local-dir",
                                   d.path(),
                                   "--grpc-port",
                                   "0",
                                   "--monitoring-port",
                                   "0",
                                   "--signing-cert",
                                   d / "plugged/ca-cert.pem",
                                   "--signing-key",
                                   d / "plugged/ca-key.pem",
                                   "--root-cert",
                                   d / "plugged/root-cert.pem"};
  *(std::find(args.begin(), args.end(), flag) + 1) = missing;
  CliRun r = RunCli(args);
  CAPTURE(r.out);
  CHECK(r.exit_code == 2);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  CHECK_THAT(r.out, Catch::StartsWith("istio-ca: " + flag + " " + missing + ": "));
  CHECK_FALSE(fs::exists(d / "secrets"));  // nothing started
}

TEST_CASE(
    "serve: a plugged-in CA is validated, reloaded on change, and a bad change keeps the old one",
    "[serve][e2e]") {
  TempDir d;
  const auto now = istioca::SystemClock::Get().Now();
  auto make_ca = [&](const std::string& sub) {
    auto root_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
    auto root = Must(pki::MakeSelfSignedRoot(root_key, {"Root " + sub, 87600h}, now));
    auto int_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
    auto inter = Must(pki::IssueIntermediate({root, root_key}, int_key.get(),
                                             {"Intermediate " + sub, 8760h}, now));
    WriteFile(d / (sub + "/ca-cert.pem"), inter.ToPem());
    WriteFile(d / (sub + "/ca-key.pem"), Must(int_key.ToPem()).str());
    WriteFile(d / (sub + "/root-cert.pem"), root.ToPem());
    WriteFile(d / (sub + "/cert-chain.pem"), inter.ToPem());
    return root;
  };
  const pki::Certificate root1 = make_ca("ca1");
  const pki::Certificate root2 = make_ca("ca2");
  WriteFile(d / "serviceaccounts/default/web", "");
  fs::create_directories(d / "plugged");
  for (const char* f : {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"}) {
    fs::copy_file(d / (std::string("ca1/") + f), d / (std::string("plugged/") + f));
  }
  const std::vector<std::string> flags = {
      "--signing-cert", d / "plugged/ca-cert.pem",   "--signing-key", d / "plugged/ca-key.pem",
      "--root-cert",    d / "plugged/root-cert.pem", "--cert-chain",  d / "plugged/cert-chain.pem"};
  {
    // Mismatched key: refused at start with an error naming the problem.
    std::vector<std::string> bad = {"serve",
                                    "--local-dir",
                                    d.path(),
                                    "--grpc-port",
                                    "0",
                                    "--monitoring-port",
                                    "0",
                                    "--signing-cert",
                                    d / "ca1/ca-cert.pem",
                                    "--signing-key",
                                    d / "ca2/ca-key.pem",
                                    "--root-cert",
                                    d / "ca1/root-cert.pem"};
    CliRun r = RunCli(bad);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.out, Catch::Contains("key does not match"));
  }
  Serve s(d, flags);
  REQUIRE(WaitFor([&] { return Published(d, "default", "web"); }));
  auto chain = Must(
      pki::Certificate::ParsePemChain(ReadAll(SecretFile(d, "default", "web", "cert-chain.pem"))));
  REQUIRE(chain.size() == 2);  // leaf + intermediate
  CHECK(pki::VerifyChain(chain[0], {chain[1]}, {root1}, now).ok());

  // A bad change (key of another CA) is rejected: old bundle keeps serving, a metric says so.
  WriteFile(d / "plugged/ca-key.pem", ReadAll(d / "ca2/ca-key.pem"));
  CHECK(WaitFor(
      [&] { return s.Log().find("rejected the changed plugged-in CA") != std::string::npos; }));
  auto m = s.Get("/metrics");
  REQUIRE(m);
  CHECK_THAT(m->body, Catch::Contains("istio_ca_ca_bundle_reload_failures_total 1"));
  CHECK(ReadAll(SecretFile(d, "default", "web", "root-cert.pem")) == root1.ToPem());

  // A good change to a new root is staged, not switched: the new root joins every secret's
  // bundle while the old signer keeps signing (the switch waits for the propagation delay and
  // the certificates handed out without the new root; the continuity test covers it).
  for (const char* f : {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"}) {
    WriteFile(d / (std::string("plugged/") + f), ReadAll(d / (std::string("ca2/") + f)));
  }
  s.Signal(SIGHUP);
  CHECK(WaitFor([&] {
    return ReadAll(SecretFile(d, "default", "web", "root-cert.pem")) ==
           root1.ToPem() + root2.ToPem();
  }));
  CHECK_THAT(s.Log(), Catch::Contains("new root (staged: prepared)"));
  auto staged = Must(
      pki::Certificate::ParsePemChain(ReadAll(SecretFile(d, "default", "web", "cert-chain.pem"))));
  CHECK(pki::VerifyChain(staged[0], {staged[1]}, {root1}, now).ok());
  CHECK(s.Stop() == 0);
}

TEST_CASE("serve: --log_as_json writes one JSON object per line", "[serve][e2e]") {
  TempDir d;
  WriteFile(d / "serviceaccounts/default/web", "");
  Serve s(d, {"--log_as_json", "--log_output_level", "default:debug"});
  REQUIRE(WaitFor([&] { return Published(d, "default", "web"); }));
  CHECK(s.Stop() == 0);
  std::istringstream in(s.Log());
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    CAPTURE(line);
    auto j = nlohmann::json::parse(line, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    CHECK(j.contains("msg"));
    CHECK(j.contains("level"));
    ++lines;
  }
  CHECK(lines >= 3);
  CHECK_THAT(s.Log(), Catch::Contains("created workload secret ns=default name=istio.web"));
  CHECK_THAT(s.Log(), !Catch::Contains("PRIVATE KEY"));
}

namespace {

namespace pb = ::istio::v1::auth;

std::shared_ptr<grpc::Channel> DaemonChannel(int port, const std::string& roots,
                                             const std::string& key_pem = "",
                                             const std::string& chain_pem = "") {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = roots;
  tls.pem_private_key = key_pem;
  tls.pem_cert_chain = chain_pem;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("istio-ca");
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), grpc::SslCredentials(tls),
                                   args);
}

std::string CsrFor(const std::string& uri) {
  pki::PrivateKey key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  return Must(pki::Csr::Build(key, {{uri}, {}, ""})).ToPem();
}

std::vector<nlohmann::json> AuditLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(ReadAll(path));
  for (std::string line; std::getline(in, line);) {
    INFO(line);
    REQUIRE_NOTHROW(out.push_back(nlohmann::json::parse(line)));
  }
  return out;
}

const nlohmann::json* Find(const std::vector<nlohmann::json>& lines, const std::string& event,
                           const std::string& key, const std::string& value) {
  for (const auto& j : lines) {
    if (j["event"] == event && j.contains(key) && j[key] == value) return &j;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("serve: --audit-log records secret writes, gRPC issuances and refusals, no key material",
          "[serve][e2e][audit]") {
  TempDir d;
  WriteFile(d / "serviceaccounts/default/web", "");
  const std::string audit = d / "audit.log";
  const int grpc_port = FreePort();
  Serve s(d, {"--grpc-port", std::to_string(grpc_port), "--audit-log", audit});
  REQUIRE(s.WaitReady());
  REQUIRE(WaitFor([&] { return Published(d, "default", "web"); }));
  const std::string roots = ReadAll(SecretFile(d, "default", "web", "root-cert.pem"));
  const std::string web = "spiffe://cluster.local/ns/default/sa/web";
  auto mtls = DaemonChannel(grpc_port, roots, ReadAll(SecretFile(d, "default", "web", "key.pem")),
                            ReadAll(SecretFile(d, "default", "web", "cert-chain.pem")));

  // An issuance over the modern API, authenticated by the workload's own certificate.
  std::string issued_serial;
  {
    auto stub = pb::IstioCertificateService::NewStub(mtls);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    pb::IstioCertificateRequest req;
    req.set_csr(CsrFor(web));
    req.set_validity_duration(3600);
    pb::IstioCertificateResponse resp;
    grpc::Status st = stub->CreateCertificate(&ctx, req, &resp);
    REQUIRE(st.ok());
    issued_serial = Must(pki::Certificate::ParsePemChain(resp.cert_chain(0))).front().SerialHex();
  }
  // A legacy CSR for someone else's identity: PermissionDenied.
  {
    auto stub = pb::IstioCAService::NewStub(mtls);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    pb::CsrRequest req;
    req.set_csr_pem(CsrFor("spiffe://cluster.local/ns/prod/sa/db"));
    pb::CsrResponse resp;
    CHECK(stub->HandleCSR(&ctx, req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  // No client certificate at all (local mode has no tokens): Unauthenticated, with a bearer
  // token that must not reach the log.
  const std::string token = "secret-bearer-token-text-1234";
  {
    auto stub = pb::IstioCertificateService::NewStub(DaemonChannel(grpc_port, roots));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    ctx.AddMetadata("authorization", "Bearer " + token);
    pb::IstioCertificateRequest req;
    req.set_csr(CsrFor(web));
    pb::IstioCertificateResponse resp;
    CHECK(stub->CreateCertificate(&ctx, req, &resp).error_code() ==
          grpc::StatusCode::UNAUTHENTICATED);
  }
  // The daemon flushes the log when it stops.
  CHECK(s.Stop() == 0);

  struct stat st {};
  REQUIRE(stat(audit.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const auto lines = AuditLines(audit);
  for (const auto& j : lines) {
    CHECK(j.contains("time"));
    CHECK(Must(istioca::ParseRfc3339(j["time"].get<std::string>())) > TimePoint{});
  }

  const nlohmann::json* created = Find(lines, "secret_created", "name", "istio.web");
  REQUIRE(created != nullptr);
  CHECK((*created)["namespace"] == "default");
  CHECK((*created)["reason"] == "new");
  CHECK((*created)["serial"].get<std::string>().size() > 0);
  CHECK(Must(istioca::ParseRfc3339((*created)["not_after"].get<std::string>())) > TimePoint{});

  const nlohmann::json* issued = Find(lines, "issued", "serial", issued_serial);
  REQUIRE(issued != nullptr);
  CHECK((*issued)["spiffe_id"] == web);
  CHECK((*issued)["caller"] == web);
  CHECK((*issued)["authn"] == "mtls");
  CHECK((*issued)["api"] == "modern");
  CHECK((*issued)["ttl_seconds"] == "3600");
  CHECK((*issued)["peer"].get<std::string>().find("127.0.0.1") != std::string::npos);
  CHECK(Must(istioca::ParseRfc3339((*issued)["not_after"].get<std::string>())) > TimePoint{});

  const nlohmann::json* denied = Find(lines, "refused", "code", "PermissionDenied");
  REQUIRE(denied != nullptr);
  CHECK((*denied)["api"] == "legacy");
  CHECK((*denied)["caller"] == web);
  CHECK((*denied)["reason"].get<std::string>().find("spiffe://cluster.local/ns/prod/sa/db") !=
        std::string::npos);
  CHECK((*denied)["peer"].get<std::string>().find("127.0.0.1") != std::string::npos);

  const nlohmann::json* unauth = Find(lines, "refused", "code", "Unauthenticated");
  REQUIRE(unauth != nullptr);
  CHECK((*unauth)["api"] == "modern");
  CHECK_FALSE(unauth->contains("caller"));
  CHECK((*unauth)["peer"].get<std::string>().find("127.0.0.1") != std::string::npos);

  // The CA the daemon loaded at start.
  const nlohmann::json* loaded = Find(lines, "ca_changed", "reason", "loaded");
  REQUIRE(loaded != nullptr);
  CHECK((*loaded)["stage"] == "stable");
  CHECK((*loaded)["signer_serial"] ==
        Must(pki::Certificate::ParsePemChain(ReadAll(d / "ca/ca-cert.pem"))).front().SerialHex());

  // No key, CSR, or token anywhere in the log.
  const std::string all = ReadAll(audit);
  CHECK(all.find("PRIVATE KEY") == std::string::npos);
  CHECK(all.find("BEGIN CERTIFICATE REQUEST") == std::string::npos);
  CHECK(all.find("BEGIN") == std::string::npos);
  CHECK(all.find(token) == std::string::npos);
}
