// The continuity proof on the fake API server (issue 10, item 6): two replicas of the real
// `istio-ca serve --kube-config`, workload TTLs of seconds, and a checker reading every workload
// secret and every istio-ca-root-cert ConfigMap every 100 ms, verifying every certificate against
// every bundle and handshaking between secrets, while `istio-ca rotate --kube-config --start`
// carries a new root through prepared, active and retired — with the leader killed in prepared
// and in active (the standby resumes the same stage with the same keys).
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/base64.h"
#include "tests/k8s/fixture.h"
#include "tests/testing/continuity.h"
#include "tests/testing/process.h"
#include "tests/testing/wait.h"

namespace istioca::k8s {
namespace {

using namespace std::chrono_literals;
using istioca::testing::ContinuityChecker;
using istioca::testing::CredentialSet;
using istioca::testing::Process;
using istioca::testing::WaitFor;
using testing::FakeCluster;

constexpr auto kStageWait = 120000ms;
const std::vector<std::pair<std::string, std::string>> kAccounts = {
    {"apps", "web"}, {"apps", "api"}, {"data", "db"}};

struct Mesh {
  FakeCluster f{200ms};
  std::filesystem::path dir;
  std::string kubeconfig;
  std::vector<std::unique_ptr<Process>> replicas;
  ContinuityChecker checker{[this] { return Sets(); }};

  Mesh() {
    dir = std::filesystem::temp_directory_path() / ("trust_kube_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    kubeconfig = (dir / "kubeconfig").string();
    std::ofstream(kubeconfig) << fakeapi::KubeconfigYaml(f.server->url(), testing::Tls().ca_pem,
                                                         testing::kAdminToken);
    for (const char* ns : {"istio-system", "apps", "data"}) f.server->AddNamespace(ns);
    for (const auto& [ns, sa] : kAccounts) f.AddServiceAccount(ns, sa);
    for (int i = 0; i < 2; ++i) AddReplica();
  }
  ~Mesh() {
    checker.Stop();
    replicas.clear();
    std::filesystem::remove_all(dir);
  }
  void AddReplica() {
    replicas.push_back(std::make_unique<Process>(
        std::vector<std::string>{ISTIOCA_BINARY, "serve", "--kube-config", kubeconfig,
                                 "--grpc-port", "0", "--monitoring-port", "0", "--kube-api-qps",
                                 "1000", "--kube-api-burst", "1000", "--resync-period", "1s",
                                 "--workload-cert-ttl", "20s", "--trust-propagation-delay", "2s"},
        (dir / "replicas.log").string()));
  }

  std::string Data(const fakeapi::OJson& o, const char* key, bool base64) {
    if (!o.contains("data") || !o["data"].contains(key)) return "";
    const std::string v = o["data"][key].get<std::string>();
    if (!base64) return v;
    auto d = Base64Decode(v);
    return d.ok() ? *d : "";
  }
  std::vector<CredentialSet> Sets() {
    std::vector<CredentialSet> out;
    for (const auto& [ns, sa] : kAccounts) {
      auto s = f.server->Find("secrets", ns, "istio." + sa);
      if (!s) continue;
      out.push_back({"secret " + ns + "/istio." + sa, Data(*s, "cert-chain.pem", true),
                     Data(*s, "key.pem", true), Data(*s, "root-cert.pem", true)});
    }
    for (const char* ns : {"apps", "data"}) {
      auto cm = f.server->Find("configmaps", ns, "istio-ca-root-cert");
      if (!cm) continue;
      out.push_back({std::string("configmap ") + ns + "/istio-ca-root-cert", "", "",
                     Data(*cm, "root-cert.pem", false)});
    }
    return out;
  }
  // Every secret and ConfigMap exists and carries `roots` roots.
  bool AllCarry(size_t roots) {
    auto sets = Sets();
    if (sets.size() != kAccounts.size() + 2) return false;
    for (const CredentialSet& s : sets) {
      auto r = pki::Certificate::ParsePemChain(s.roots_pem);
      if (!r.ok() || r->size() != roots) return false;
    }
    return true;
  }
  nlohmann::json Status() {
    const std::string cmd =
        std::string(ISTIOCA_BINARY) + " rotate --kube-config " + kubeconfig + " --json 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return nlohmann::json::parse(out, nullptr, false);
  }
  std::string Stage() {
    auto j = Status();
    return j.is_object() && j.contains("stage") ? j["stage"].get<std::string>() : "";
  }
  int Rotate(const std::string& flag) {
    const std::string cmd = std::string(ISTIOCA_BINARY) + " rotate --kube-config " + kubeconfig +
                            " " + flag + " >/dev/null 2>&1";
    const int status = system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // Stops the replica holding the Lease (it hands the Lease over); a new one joins so two stay.
  void StopLeader() {
    auto lease = f.server->Find("leases", "istio-system", "istio-ca-leader");
    REQUIRE(lease);
    const std::string holder = (*lease)["spec"]["holderIdentity"];
    for (auto it = replicas.begin(); it != replicas.end(); ++it) {
      if (holder.find("_" + std::to_string((*it)->pid()) + "_") != std::string::npos) {
        (*it)->Stop(SIGTERM);  // hands the Lease over at once
        replicas.erase(it);
        break;
      }
    }
    AddReplica();
  }
  std::string Log() {
    std::ifstream in(dir / "replicas.log");
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }
};

TEST_CASE("a root rotation on Kubernetes, the leader killed in each stage, breaks nothing",
          "[trust][continuity][kube]") {
  Mesh m;
  REQUIRE(WaitFor([&] { return m.AllCarry(1); }, kStageWait));
  REQUIRE(m.Stage() == "stable");
  m.checker.Start();

  REQUIRE(m.Rotate("--start") == 0);
  const std::string next_skid = m.Status()["next_signer"]["subject_key_id"];
  REQUIRE_FALSE(next_skid.empty());
  // Prepared: every secret and ConfigMap carries both roots; the leader dies; the standby
  // resumes the same stage with the same next signer.
  REQUIRE(WaitFor([&] { return m.AllCarry(2); }, kStageWait));
  m.StopLeader();
  auto resumed = m.Status();
  CHECK(resumed["stage"] == "prepared");
  CHECK(resumed["next_signer"]["subject_key_id"] == next_skid);

  const bool activated = WaitFor([&] { return m.Stage() == "active"; }, kStageWait);
  INFO(m.Log());
  REQUIRE(activated);
  CHECK(m.Status()["active_signer"]["subject_key_id"] == next_skid);
  m.StopLeader();
  CHECK(m.Stage() == "active");

  REQUIRE(WaitFor([&] { return m.Stage() == "stable"; }, kStageWait));
  REQUIRE(WaitFor([&] { return m.AllCarry(1); }, kStageWait));
  auto final_status = m.Status();
  REQUIRE(final_status["roots"].size() == 1);
  CHECK(final_status["roots"][0]["subject_key_id"] == next_skid);
  m.checker.CheckOnce();
  m.checker.Stop();
  INFO(m.checker.Report());
  std::cout << "kubernetes rotation: " << m.checker.Report() << "\n";
  CHECK(m.checker.rounds() >= 100);
  CHECK(m.checker.failures() == 0);
}

}  // namespace
}  // namespace istioca::k8s
