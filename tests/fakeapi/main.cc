// fake-apiserver: the in-memory Kubernetes API server of tests/fakeapi as a process, for
// integration runs and benchmarks. Writes a kubeconfig for its admin token, seeds service
// accounts, serves until SIGINT/SIGTERM, then prints write counts per secret as JSON on stdout
// when --stats-out is given.
#include <CLI/CLI.hpp>
#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>

#include "tests/fakeapi/fake_apiserver.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  using namespace istioca::fakeapi;
  CLI::App app{"In-memory Kubernetes API server for istio-ca tests"};
  int port = 0;
  std::string kubeconfig_out, stats_out, token = "fake-admin-token";
  int namespaces = 0, sas_per_ns = 0;
  double error_rate = 0;
  int latency_ms = 0, bookmark_ms = 5000;
  bool plain = false;
  std::vector<std::string> reviewable;
  std::string tokens_file;
  app.add_option("--port", port, "port to listen on (0: any)");
  app.add_option("--kubeconfig-out", kubeconfig_out, "write a kubeconfig for the admin token here")
      ->required();
  app.add_option("--stats-out", stats_out, "on exit, write {\"ns/name\": writes} for secrets here");
  app.add_option("--token", token, "the admin bearer token");
  app.add_option("--namespaces", namespaces, "seed this many namespaces ns-0..");
  app.add_option("--service-accounts-per-namespace", sas_per_ns,
                 "seed service accounts sa-0.. in each");
  app.add_option("--error-rate", error_rate, "fraction of requests answered 500");
  app.add_option("--latency-ms", latency_ms, "added latency per request");
  app.add_option("--bookmark-interval-ms", bookmark_ms, "bookmark period on watches");
  app.add_flag("--plain-http", plain, "serve HTTP instead of HTTPS");
  app.add_option("--reviewable-token", reviewable,
                 "TOKEN=NS/SA: TokenReview accepts TOKEN as that service account (audience "
                 "istio-ca); repeatable");
  app.add_option(
      "--tokens-file", tokens_file,
      "TokenReview accepts many tokens: one per line, \"TOKEN NS/SA [POD-NAME POD-UID]\" "
      "(with a pod: a pod-bound token, user.extra pod-name and pod-uid)");
  CLI11_PARSE(app, argc, argv);

  FakeApiOptions options;
  options.port = port;
  options.bookmark_interval = std::chrono::milliseconds(bookmark_ms);
  std::string ca_pem;
  if (!plain) {
    auto tls = MakeTestTls();
    if (!tls.ok()) {
      std::cerr << "fake-apiserver: " << tls.status().ToString() << "\n";
      return 1;
    }
    options.cert_pem = tls->cert_pem;
    options.key_pem = tls->key_pem;
    ca_pem = tls->ca_pem;
  }
  auto server = FakeApiServer::Start(options);
  if (!server.ok()) {
    std::cerr << "fake-apiserver: " << server.status().ToString() << "\n";
    return 1;
  }
  FakeApiServer& s = **server;
  s.AddUser(token, "admin", true);
  for (int n = 0; n < namespaces; ++n) {
    for (int a = 0; a < sas_per_ns; ++a) {
      OJson sa;
      sa["metadata"]["name"] = "sa-" + std::to_string(a);
      s.Put("serviceaccounts", "ns-" + std::to_string(n), sa);
    }
  }
  for (const std::string& r : reviewable) {
    const size_t eq = r.find('='), slash = r.find('/', eq == std::string::npos ? 0 : eq);
    if (eq == std::string::npos || eq == 0 || slash == std::string::npos) {
      std::cerr << "fake-apiserver: --reviewable-token wants TOKEN=NS/SA, got \"" << r << "\"\n";
      return 2;
    }
    const std::string ns = r.substr(eq + 1, slash - eq - 1), sa = r.substr(slash + 1);
    s.AddReviewableToken(r.substr(0, eq),
                         TokenIdentity{"system:serviceaccount:" + ns + ":" + sa,
                                       "uid-" + ns + "-" + sa,
                                       {"system:serviceaccounts", "system:serviceaccounts:" + ns},
                                       {"istio-ca"}});
  }
  if (!tokens_file.empty()) {
    std::ifstream in(tokens_file);
    if (!in) {
      std::cerr << "fake-apiserver: cannot read " << tokens_file << "\n";
      return 2;
    }
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string tok, nssa, pod_name, pod_uid;
      if (!(fields >> tok) || tok[0] == '#') continue;
      const size_t slash = (fields >> nssa) ? nssa.find('/') : std::string::npos;
      if (slash == std::string::npos || slash == 0 || slash + 1 == nssa.size() ||
          (fields >> pod_name && !(fields >> pod_uid))) {
        std::cerr << "fake-apiserver: --tokens-file wants TOKEN NS/SA [POD-NAME POD-UID], got \""
                  << line << "\"\n";
        return 2;
      }
      const std::string ns = nssa.substr(0, slash), sa = nssa.substr(slash + 1);
      TokenIdentity id{"system:serviceaccount:" + ns + ":" + sa,
                       "uid-" + ns + "-" + sa,
                       {"system:serviceaccounts", "system:serviceaccounts:" + ns},
                       {"istio-ca"},
                       {}};
      if (!pod_name.empty()) {
        id.extra["authentication.kubernetes.io/pod-name"] = {pod_name};
        id.extra["authentication.kubernetes.io/pod-uid"] = {pod_uid};
      }
      s.AddReviewableToken(tok, id);
    }
  }
  s.SetErrorRate(error_rate);
  s.SetLatency(std::chrono::milliseconds(latency_ms));
  {
    std::ofstream out(kubeconfig_out);
    out << KubeconfigYaml(s.url(), ca_pem, token);
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::cout << "fake-apiserver listening on " << s.url() << std::endl;
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (!stats_out.empty()) {
    nlohmann::json j = s.AllWrites("secrets");
    std::ofstream out(stats_out);
    out << j.dump() << "\n";
  }
  s.Stop();
  return 0;
}
