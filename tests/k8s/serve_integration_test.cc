// The real `istio-ca serve` binary against the fake API server over TLS: several replicas,
// one root, one leader, no write churn, hand-over on shutdown, recovery from a forced relist.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "base/base64.h"
#include "k8s/objects.h"
#include "pki/cert.h"
#include "pki/verify.h"
#include "tests/k8s/fixture.h"
#include "tests/testing/process.h"
#include "tests/testing/wait.h"

namespace istioca::k8s {
namespace {

using namespace std::chrono_literals;
using istioca::testing::Process;
using testing::FakeCluster;

// How long to wait for another thread's or process's progress (tests/testing/wait.h).
using istioca::testing::WaitFor;
constexpr std::chrono::milliseconds kWait = 20000ms;

// `istio-ca serve` against the cluster, stderr appended to `log`.
std::unique_ptr<Process> StartReplica(const std::string& kubeconfig, const std::string& log) {
  return std::make_unique<Process>(
      std::vector<std::string>{ISTIOCA_BINARY, "serve", "--kube-config", kubeconfig, "--grpc-port",
                               "0", "--monitoring-port", "0", "--kube-api-qps", "1000",
                               "--kube-api-burst", "1000", "--log_output_level", "warn"},
      log);
}

struct Cluster {
  FakeCluster f{200ms};
  std::filesystem::path dir;
  std::string kubeconfig;
  Cluster() {
    dir = std::filesystem::temp_directory_path() / ("kube_serve_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    kubeconfig = (dir / "kubeconfig").string();
    std::ofstream(kubeconfig) << fakeapi::KubeconfigYaml(f.server->url(), testing::Tls().ca_pem,
                                                         testing::kAdminToken);
  }
  ~Cluster() { std::filesystem::remove_all(dir); }
  std::string LogText() const {
    std::ifstream log(dir / "replicas.log");
    return std::string((std::istreambuf_iterator<char>(log)), {});
  }
  std::string Log() const { return (dir / "replicas.log").string(); }

  std::string Data(const fakeapi::OJson& secret, const char* key) {
    auto d = Base64Decode(secret["data"][key].get<std::string>());
    return d.ok() ? *d : "";
  }
  std::string StoredRoot() {
    auto ca = f.server->Find("secrets", "istio-system", "istio-ca-secret");
    return ca ? Data(*ca, "ca-cert.pem") : "";
  }
  // Writes per workload secret (the CA's own secret left out).
  auto WorkloadWrites() {
    auto all = f.server->AllWrites("secrets");
    std::erase_if(
        all, [](const auto& kv) { return kv.first.find("istio-ca-secret") != std::string::npos; });
    return all;
  }
  // Every SA has a secret that verifies against the CA secret's root; no orphans.
  bool Converged() {
    auto ca = f.server->Find("secrets", "istio-system", "istio-ca-secret");
    if (!ca) return false;
    auto roots = pki::Certificate::ParsePemChain(Data(*ca, "root-cert.pem"));
    if (!roots.ok()) return false;
    std::set<std::string> sas;
    for (const auto& sa : f.server->All("serviceaccounts")) {
      std::string ns = sa["metadata"]["namespace"], name = sa["metadata"]["name"];
      sas.insert(ns + "/istio." + name);
      auto s = f.server->Find("secrets", ns, "istio." + name);
      if (!s) return false;
      auto chain = pki::Certificate::ParsePemChain(Data(*s, "cert-chain.pem"));
      if (!chain.ok() || Data(*s, "root-cert.pem") != Data(*ca, "root-cert.pem")) return false;
      if (!pki::VerifyChain((*chain)[0], {}, *roots, istioca::SystemClock::Get().Now()).ok())
        return false;
    }
    for (const auto& s : f.server->All("secrets")) {
      if (s.value("type", "") != "istio.io/key-and-cert") continue;
      if (!sas.contains(s["metadata"]["namespace"].get<std::string>() + "/" +
                        s["metadata"]["name"].get<std::string>())) {
        return false;
      }
    }
    return true;
  }
  std::string Holder() {
    auto lease = f.server->Find("leases", "istio-system", "istio-ca-leader");
    return lease ? lease->at("spec").value("holderIdentity", "") : "";
  }
};

pid_t PidOf(const std::string& holder) {
  // identity = <host>_<pid>_<random>
  auto last = holder.rfind('_');
  auto prev = holder.rfind('_', last - 1);
  return static_cast<pid_t>(std::stol(holder.substr(prev + 1, last - prev - 1)));
}

TEST_CASE("three replicas of istio-ca serve: one root, one leader, one write per secret, hand-over",
          "[kube][integration]") {
  Cluster c;
  for (int i = 0; i < 30; ++i)
    c.f.AddServiceAccount("ns" + std::to_string(i % 3), "sa" + std::to_string(i));
  std::vector<std::unique_ptr<Process>> replicas;
  for (int i = 0; i < 3; ++i) replicas.push_back(StartReplica(c.kubeconfig, c.Log()));
  bool converged = WaitFor([&] { return c.Converged(); }, kWait);
  INFO("replica logs:\n" << c.LogText());
  REQUIRE(converged);
  // One root: the CA secret was created once and its signer never changes. The leader may
  // rewrite it to record how far ahead certificates were issued (the trust lifecycle's record).
  const std::string first_root = c.StoredRoot();
  REQUIRE_FALSE(first_root.empty());
  std::string holder = c.Holder();
  REQUIRE_FALSE(holder.empty());
  // Every secret was written exactly once to get here...
  auto writes = c.WorkloadWrites();
  CHECK(writes.size() == 30);
  for (const auto& [key, n] : writes) {
    INFO(key);
    CHECK(n == 1);
  }
  // ...and nothing writes them again: neither the watch echoes of those writes, nor a full pass
  // over the settled state (SIGHUP forces one on the leader). "No more writes" has no event to
  // wait for, so it is watched over a bounded window: 2 s is far longer than a watch round trip
  // on the fake server or a full pass over 30 unchanged secrets (milliseconds), and the first
  // extra write ends the window with a failure.
  pid_t leader = PidOf(holder);
  kill(leader, SIGHUP);
  const bool rewritten = WaitFor(
      [&] {
        for (const auto& [key, n] : c.WorkloadWrites()) {
          if (n != 1) return true;
        }
        return false;
      },
      2000ms);
  for (const auto& [key, n] : c.WorkloadWrites()) {
    INFO(key);
    CHECK(n == 1);
  }
  CHECK_FALSE(rewritten);

  // The leader shuts down: it releases the lease and a standby takes over at once.
  auto it =
      std::find_if(replicas.begin(), replicas.end(), [&](auto& r) { return r->pid() == leader; });
  REQUIRE(it != replicas.end());
  CHECK((*it)->Stop(SIGTERM) == 0);  // a clean exit
  REQUIRE(WaitFor([&] { return !c.Holder().empty() && c.Holder() != holder; }, 10000ms));
  c.f.AddServiceAccount("ns0", "after-handover");
  REQUIRE(WaitFor(
      [&] { return c.f.server->Find("secrets", "ns0", "istio.after-handover").has_value(); },
      kWait));

  // Dropped watches and a forced relist: the new leader still follows.
  c.f.server->DropWatches();
  c.f.server->ExpireHistory();
  c.f.server->Remove("serviceaccounts", "ns1", "sa1");
  c.f.AddServiceAccount("ns2", "after-relist");
  REQUIRE(WaitFor([&] { return c.Converged(); }, kWait));
  CHECK(c.StoredRoot() == first_root);
}

}  // namespace
}  // namespace istioca::k8s
