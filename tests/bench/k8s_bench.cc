// k8s_bench — istio-ca serve against the fake API server at fleet size (scripts/bench-k8s).
//
// Hosts the fake in-process (TLS), seeds N service accounts in M namespaces, spawns the real
// istio-ca binary with a plugged-in CA, and measures:
//   1. time until every SA has a secret that verifies against the root, writes per secret;
//   2. after the CA files are replaced by a new root and SIGHUP: time until every secret
//      carries the new root (expected ≈ N / QPS when the QPS limit binds);
//   3. istio-ca's peak RSS (VmHWM) and the number of API requests.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "base/base64.h"
#include "k8s/objects.h"
#include "pki/cert.h"
#include "pki/issue.h"
#include "pki/verify.h"
#include "tests/fakeapi/fake_apiserver.h"

extern char** environ;

using namespace istioca;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct CaFiles {
  std::string cert, key;
};

CaFiles NewRoot(const std::string& org) {
  auto key = pki::PrivateKey::Generate(pki::KeyType::kEcP256);
  auto root = pki::MakeSelfSignedRoot(*key, {org, std::chrono::hours(24 * 365)},
                                      istioca::SystemClock::Get().Now());
  return {root->ToPem(), key->ToPem()->str()};
}

void WriteAtomic(const fs::path& p, const std::string& content) {
  fs::path tmp = p;
  tmp += ".tmp";
  std::ofstream(tmp) << content;
  fs::rename(tmp, p);
}

long PeakRssKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

std::string Data(const fakeapi::OJson& s, const char* key) {
  auto d = Base64Decode(s["data"][key].get<std::string>());
  return d.ok() ? *d : "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"istio-ca serve against the fake Kubernetes API at fleet size"};
  std::string binary;
  int namespaces = 100, per_ns = 100;
  double qps = 1e6;
  int burst = 1000000;
  int timeout_s = 600;
  app.add_option("--istio-ca", binary, "path of the istio-ca binary")->required();
  app.add_option("--namespaces", namespaces);
  app.add_option("--service-accounts-per-namespace", per_ns);
  app.add_option("--qps", qps, "--kube-api-qps for istio-ca (default: effectively off)");
  app.add_option("--burst", burst, "--kube-api-burst");
  app.add_option("--timeout", timeout_s, "give up after this many seconds per phase");
  CLI11_PARSE(app, argc, argv);
  const int total = namespaces * per_ns;

  auto tls = fakeapi::MakeTestTls();
  fakeapi::FakeApiOptions fo;
  fo.cert_pem = tls->cert_pem;
  fo.key_pem = tls->key_pem;
  fo.max_events = 200000;
  auto server = fakeapi::FakeApiServer::Start(fo);
  if (!server.ok()) {
    std::cerr << server.status().ToString() << "\n";
    return 1;
  }
  fakeapi::FakeApiServer& fake = **server;
  fake.AddUser("bench-token", "admin", true);
  for (int n = 0; n < namespaces; ++n) {
    for (int a = 0; a < per_ns; ++a) {
      fakeapi::OJson sa;
      sa["metadata"]["name"] = "sa-" + std::to_string(a);
      fake.Put("serviceaccounts", "ns-" + std::to_string(n), sa);
    }
  }
  fs::path dir = fs::temp_directory_path() / ("k8s_bench_" + std::to_string(getpid()));
  fs::create_directories(dir);
  WriteAtomic(dir / "kubeconfig", fakeapi::KubeconfigYaml(fake.url(), tls->ca_pem, "bench-token"));
  CaFiles ca1 = NewRoot("bench-root-1");
  WriteAtomic(dir / "ca-cert.pem", ca1.cert);
  WriteAtomic(dir / "ca-key.pem", ca1.key);
  WriteAtomic(dir / "root-cert.pem", ca1.cert);

  std::vector<std::string> args{binary,
                                "serve",
                                "--kube-config",
                                (dir / "kubeconfig").string(),
                                "--signing-cert",
                                (dir / "ca-cert.pem").string(),
                                "--signing-key",
                                (dir / "ca-key.pem").string(),
                                "--root-cert",
                                (dir / "root-cert.pem").string(),
                                "--grpc-port",
                                "0",
                                "--monitoring-port",
                                "0",
                                "--kube-api-qps",
                                std::to_string(qps),
                                "--kube-api-burst",
                                std::to_string(burst),
                                "--log_output_level",
                                "warn"};
  std::vector<char*> argv_c;
  for (auto& a : args) argv_c.push_back(a.data());
  argv_c.push_back(nullptr);
  pid_t pid;
  auto t0 = std::chrono::steady_clock::now();
  if (posix_spawn(&pid, binary.c_str(), nullptr, nullptr, argv_c.data(), environ) != 0) {
    std::cerr << "cannot start " << binary << "\n";
    return 1;
  }
  auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };

  // Phase 1: every secret exists and carries root 1 (cheap check while polling, full verify after).
  auto count_with_root = [&](const std::string& root_pem) {
    const std::string want = Base64Encode(root_pem);  // compare encoded: polling stays cheap
    int n = 0;
    for (const auto& s : fake.All("secrets")) {
      if (s.value("type", "") == "istio.io/key-and-cert" &&
          s["data"].value("root-cert.pem", "") == want)
        ++n;
    }
    return n;
  };
  auto wait_for = [&](const std::string& root_pem) {
    auto start = std::chrono::steady_clock::now();
    while (count_with_root(root_pem) < total) {
      if (std::chrono::steady_clock::now() - start > std::chrono::seconds(timeout_s)) return false;
      std::this_thread::sleep_for(250ms);
    }
    return true;
  };
  bool ok1 = wait_for(ca1.cert);
  double t_create = seconds(std::chrono::steady_clock::now() - t0);
  auto root1 = pki::Certificate::ParsePemChain(ca1.cert);
  int verified = 0;
  for (const auto& s : fake.All("secrets")) {
    if (s.value("type", "") != "istio.io/key-and-cert") continue;
    auto chain = pki::Certificate::ParsePemChain(Data(s, "cert-chain.pem"));
    auto key = pki::PrivateKey::FromPem(Data(s, "key.pem"));
    if (chain.ok() && key.ok() && pki::SamePublicKey(key->get(), (*chain)[0].PublicKey()) &&
        pki::VerifyChain((*chain)[0], {}, *root1, istioca::SystemClock::Get().Now()).ok()) {
      ++verified;
    }
  }
  std::this_thread::sleep_for(2s);  // let stray writes (there should be none) land
  uint64_t max_writes = 0, sum_writes = 0, secrets = 0;
  for (const auto& [key, n] : fake.AllWrites("secrets")) {
    if (key.find("/istio.") == std::string::npos) continue;
    max_writes = std::max(max_writes, n);
    sum_writes += n;
    ++secrets;
  }
  uint64_t requests_after_create = fake.requests();
  std::cout << "service accounts:            " << total << " in " << namespaces << " namespaces\n"
            << "phase 1 (create) complete:   " << (ok1 ? "yes" : "NO (timeout)") << "\n"
            << "time to all secrets:         " << t_create << " s (qps " << qps << ")\n"
            << "secrets verifying:           " << verified << "/" << total << "\n"
            << "writes per secret:           max " << max_writes << ", mean "
            << (secrets ? double(sum_writes) / secrets : 0) << "\n"
            << "API requests so far:         " << requests_after_create << "\n";

  // Phase 2: a new root.
  CaFiles ca2 = NewRoot("bench-root-2");
  WriteAtomic(dir / "ca-key.pem", ca2.key);
  WriteAtomic(dir / "ca-cert.pem", ca2.cert);
  WriteAtomic(dir / "root-cert.pem", ca2.cert);
  auto t1 = std::chrono::steady_clock::now();
  kill(pid, SIGHUP);
  bool ok2 = wait_for(ca2.cert);
  double t_rotate = seconds(std::chrono::steady_clock::now() - t1);
  std::cout << "phase 2 (root change):       " << (ok2 ? "yes" : "NO (timeout)") << "\n"
            << "time to all re-issued:       " << t_rotate << " s";
  if (qps < 1e5) std::cout << " (N/QPS = " << total / qps << " s)";
  std::cout << "\nAPI requests for rotation:   " << fake.requests() - requests_after_create << "\n";
  std::cout << "istio-ca peak RSS (VmHWM):   " << PeakRssKiB(pid) / 1024.0 << " MiB\n";
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  fake.Stop();
  fs::remove_all(dir);
  return ok1 && ok2 && verified == total && max_writes == 1 ? 0 : 1;
}
