// The continuity proof in local mode (issue 10, item 6): the real `istio-ca serve` and
// `istio-ca node-agent` processes, workload TTLs of seconds, a propagation delay of seconds, and
// a checker that verifies every set against every other set every 100 ms, while a rotation runs
// from start to end — with a daemon restart in the middle of each stage. A negative control
// shows the checker catches an unstaged switch.
#include "tests/testing/continuity.h"

#include <signal.h>

#include <catch2/catch.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pki/issue.h"
#include "tests/ca/temp_dir.h"
#include "tests/testing/process.h"
#include "tests/testing/test_ca.h"
#include "tests/testing/wait.h"

namespace istioca::ca {
namespace {

using namespace std::chrono_literals;
using istioca::testing::CliRun;
using istioca::testing::ContinuityChecker;
using istioca::testing::CredentialSet;
using istioca::testing::FreePort;
using istioca::testing::Must;
using istioca::testing::Process;
using istioca::testing::ReadAll;
using istioca::testing::TempDir;
using istioca::testing::WaitFor;
using istioca::testing::WriteFile;

const std::vector<std::string> kAccounts = {"web", "api", "db"};
constexpr auto kStageWait = 120000ms;

// `istio-ca` with `args` (split at spaces): its exit code and stdout.
CliRun RunCli(const std::string& args) {
  std::vector<std::string> argv = {ISTIOCA_BINARY};
  std::istringstream words(args);
  for (std::string w; words >> w;) argv.push_back(w);
  return istioca::testing::RunCli(std::move(argv), /*with_stderr=*/false);
}

// A local-mode mesh: the daemon, three service accounts, a node agent, the checker.
class Mesh {
 public:
  explicit Mesh(std::vector<std::string> ca_flags = {}) : ca_flags_(std::move(ca_flags)) {
    for (const std::string& sa : kAccounts) WriteFile(dir_ / ("serviceaccounts/default/" + sa), "");
    WriteFile(dir_ / "serviceaccounts/default/agent", "");
    StartDaemon();
    REQUIRE(WaitFor([&] { return AllPublished(); }, kStageWait));
    // The node agent starts from the agent's secret and renews over mTLS on its own.
    std::filesystem::create_directories(dir_ / "agent");
    for (const char* f : {"cert-chain.pem", "key.pem", "root-cert.pem"}) {
      WriteFile(dir_ / (std::string("agent/") + f), ReadAll(SecretDir("agent") + "/" + f));
    }
    chmod((dir_ / "agent/key.pem").c_str(), 0600);
    agent_ = std::make_unique<Process>(
        std::vector<std::string>{
            ISTIOCA_BINARY, "node-agent", "--ca-address", "127.0.0.1:" + std::to_string(grpc_port_),
            "--cert-chain", dir_ / "agent/cert-chain.pem", "--key", dir_ / "agent/key.pem",
            "--root-cert", dir_ / "agent/root-cert.pem", "--ca-server-name", "istio-ca",
            "--workload-cert-ttl", "20s", "--max-retry-interval", "1s"},
        dir_ / "agent.log");
    // The agent's first renewal (at half of its bootstrap certificate's life) proves it works.
    const std::string bootstrap = ReadAll(dir_ / "agent/cert-chain.pem");
    REQUIRE(WaitFor([&] { return AgentChain() != bootstrap; }, kStageWait));
  }
  ~Mesh() {
    checker_.Stop();
    agent_.reset();
    daemon_.reset();
  }

  void StartDaemon() {
    std::vector<std::string> args = {ISTIOCA_BINARY,
                                     "serve",
                                     "--local-dir",
                                     dir_.path(),
                                     "--grpc-port",
                                     std::to_string(grpc_port_),
                                     "--monitoring-port",
                                     "0",
                                     "--resync-period",
                                     "1s",
                                     "--workload-cert-ttl",
                                     "20s",
                                     "--trust-propagation-delay",
                                     "2s"};
    args.insert(args.end(), ca_flags_.begin(), ca_flags_.end());
    daemon_ = std::make_unique<Process>(args, dir_ / "daemon.log");
  }
  // SIGKILL: the daemon gets no chance to tidy up; what it persisted before acting must do.
  void RestartDaemon(int sig = SIGKILL) {
    daemon_->Stop(sig);
    StartDaemon();
  }

  std::string SecretDir(const std::string& sa) const {
    return dir_ / ("secrets/default/istio." + sa);
  }
  bool AllPublished() const {
    for (const std::string& sa : kAccounts) {
      if (!testing::ReadCredentialDir(sa, SecretDir(sa))) return false;
    }
    return testing::ReadCredentialDir("agent", SecretDir("agent")).has_value();
  }
  std::string AgentChain() const {
    auto s = testing::ReadCredentialDir("node-agent", dir_ / "agent");
    return s ? s->chain_pem : "";
  }
  std::vector<CredentialSet> Sets() const {
    std::vector<CredentialSet> out;
    for (const std::string& sa : kAccounts) {
      if (auto s = testing::ReadCredentialDir("secret istio." + sa, SecretDir(sa))) {
        out.push_back(std::move(*s));
      }
    }
    if (auto s = testing::ReadCredentialDir("node-agent", dir_ / "agent")) {
      out.push_back(std::move(*s));
    }
    return out;
  }

  nlohmann::json Status() const {
    CliRun r = RunCli("rotate --local-dir " + dir_.path() + " --json");
    if (r.exit_code != 0) return nlohmann::json::object();
    return nlohmann::json::parse(r.out, nullptr, false);
  }
  std::string Stage() const {
    auto j = Status();
    return j.is_object() && j.contains("stage") ? j["stage"].get<std::string>() : "";
  }
  std::string ActiveSkid() const { return Status()["active_signer"]["subject_key_id"]; }
  bool WaitStage(const std::string& stage) const {
    return WaitFor([&] { return Stage() == stage; }, kStageWait);
  }
  // Every set's leaf verifies against `root` alone (everyone moved to the new signer).
  bool AllUnder(const pki::Certificate& root) const {
    const auto sets = Sets();
    if (sets.size() != kAccounts.size() + 1) return false;
    for (const CredentialSet& s : sets) {
      auto chain = pki::Certificate::ParsePemChain(s.chain_pem);
      if (!chain.ok()) return false;
      std::vector<pki::Certificate> rest(chain->begin() + 1, chain->end());
      if (!pki::VerifyChain((*chain)[0], rest, {root}, SystemClock::Get().Now()).ok()) return false;
    }
    return true;
  }
  // Every secret carries `roots` roots in root-cert.pem.
  bool SecretsCarry(size_t roots) const {
    for (const std::string& sa : kAccounts) {
      auto s = testing::ReadCredentialDir(sa, SecretDir(sa));
      if (!s) return false;
      auto r = pki::Certificate::ParsePemChain(s->roots_pem);
      if (!r.ok() || r->size() != roots) return false;
    }
    return true;
  }
  std::string Logs() const {
    return "daemon log:\n" + ReadAll(dir_ / "daemon.log") + "\nagent log:\n" +
           ReadAll(dir_ / "agent.log");
  }

  TempDir dir_;
  ContinuityChecker checker_{[this] { return Sets(); }};

 private:
  std::vector<std::string> ca_flags_;
  int grpc_port_ = FreePort();
  std::unique_ptr<Process> daemon_;
  std::unique_ptr<Process> agent_;
};

pki::Certificate CertFromPem(const std::string& pem) {
  return Must(pki::Certificate::ParsePemChain(pem)).front();
}

TEST_CASE("a new-key rotation of the self-signed root, restarted in each stage, breaks nothing",
          "[trust][continuity]") {
  Mesh m;
  REQUIRE(m.Stage() == "stable");
  m.checker_.Start();

  CliRun start = RunCli("rotate --local-dir " + m.dir_.path() + " --start --json");
  REQUIRE(start.exit_code == 0);
  const auto started = nlohmann::json::parse(start.out);
  REQUIRE(started["stage"] == "prepared");
  const std::string next_skid = started["next_signer"]["subject_key_id"];
  // A second start is refused while a rotation runs.
  CHECK(RunCli("rotate --local-dir " + m.dir_.path() + " --start").exit_code == 1);

  // Prepared: the bundle reaches every secret; a restart here resumes the same stage and keys.
  REQUIRE(WaitFor([&] { return m.SecretsCarry(2); }, kStageWait));
  m.RestartDaemon();
  auto after = m.Status();
  CHECK(after["stage"] == "prepared");
  CHECK(after["next_signer"]["subject_key_id"] == next_skid);

  // Active: the next signer signs; restart again, same stage, same signer.
  INFO(m.Logs());
  REQUIRE(m.WaitStage("active"));
  CHECK(m.ActiveSkid() == next_skid);
  REQUIRE(WaitFor([&] { return m.Stage() == "active" && m.SecretsCarry(2); }, kStageWait));
  m.RestartDaemon();
  CHECK(m.Stage() == "active");
  CHECK(m.ActiveSkid() == next_skid);

  // Retired: one root again, the new one, and every set moved under it.
  REQUIRE(m.WaitStage("stable"));
  auto final_status = m.Status();
  REQUIRE(final_status["roots"].size() == 1);
  CHECK(final_status["roots"][0]["subject_key_id"] == next_skid);
  const pki::Certificate new_root = CertFromPem(ReadAll(m.dir_ / "ca/root-cert.pem"));
  const bool moved = WaitFor([&] { return m.AllUnder(new_root) && m.SecretsCarry(1); }, kStageWait);
  INFO(m.Status().dump(2) << "\n" << m.checker_.Report() << "\n" << m.Logs());
  REQUIRE(moved);
  m.checker_.CheckOnce();
  m.checker_.Stop();
  INFO(m.checker_.Report());
  std::cout << "self-signed new-key rotation: " << m.checker_.Report() << "\n";
  CHECK(m.checker_.rounds() >= 100);
  CHECK(m.checker_.handshakes() >= 300);
  CHECK(m.checker_.failures() == 0);
}

// Root → intermediate, as an operator's offline CA would hand over.
struct PluggedCa {
  pki::Certificate root, intermediate;
  std::string key_pem;
};
PluggedCa MakePluggedCa(const std::string& name) {
  const TimePoint now = SystemClock::Get().Now();
  pki::PrivateKey root_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate root = Must(pki::MakeSelfSignedRoot(root_key, {"Root " + name, 87600h}, now));
  pki::PrivateKey int_key = Must(pki::PrivateKey::Generate(pki::KeyType::kEcP256));
  pki::Certificate inter = Must(pki::IssueIntermediate({root, std::move(root_key)}, int_key.get(),
                                                       {"Intermediate " + name, 8760h}, now));
  return {root, inter, Must(int_key.ToPem()).str()};
}
void WritePlugged(const TempDir& dir, const PluggedCa& ca) {
  // The key last: until it matches, the files are rejected as a whole (and the old CA serves).
  WriteFile(dir / "plugged/ca-cert.pem", ca.intermediate.ToPem());
  WriteFile(dir / "plugged/cert-chain.pem", ca.intermediate.ToPem() + ca.root.ToPem());
  WriteFile(dir / "plugged/root-cert.pem", ca.root.ToPem());
  WriteFile(dir / "plugged/ca-key.pem", ca.key_pem);
}

TEST_CASE("a plugged-in CA moved to a new root is staged, restarted in each stage, breaks nothing",
          "[trust][continuity]") {
  const PluggedCa ca1 = MakePluggedCa("one"), ca2 = MakePluggedCa("two");
  TempDir files;
  std::filesystem::create_directories(files / "plugged");
  WritePlugged(files, ca1);
  Mesh m({"--signing-cert", files / "plugged/ca-cert.pem", "--signing-key",
          files / "plugged/ca-key.pem", "--root-cert", files / "plugged/root-cert.pem",
          "--cert-chain", files / "plugged/cert-chain.pem"});
  REQUIRE(m.Stage() == "stable");
  m.checker_.Start();

  WritePlugged(files, ca2);
  INFO(m.Logs());
  REQUIRE(m.WaitStage("prepared"));
  REQUIRE(WaitFor([&] { return m.SecretsCarry(2); }, kStageWait));
  m.RestartDaemon(SIGTERM);
  CHECK(m.Stage() == "prepared");

  REQUIRE(m.WaitStage("active"));
  m.RestartDaemon(SIGTERM);
  CHECK(m.Stage() == "active");

  REQUIRE(m.WaitStage("stable"));
  const bool moved = WaitFor([&] { return m.AllUnder(ca2.root) && m.SecretsCarry(1); }, kStageWait);
  INFO(m.Status().dump(2) << "\n" << m.Logs());
  REQUIRE(moved);
  m.checker_.CheckOnce();
  m.checker_.Stop();
  INFO(m.checker_.Report());
  std::cout << "plugged-in new root: " << m.checker_.Report() << "\n";
  CHECK(m.checker_.rounds() >= 100);
  CHECK(m.checker_.failures() == 0);
}

TEST_CASE("negative control: an unstaged switch (forced activation) is caught by the checker",
          "[trust][continuity]") {
  Mesh m;
  m.checker_.Start();
  REQUIRE(RunCli("rotate --local-dir " + m.dir_.path() + " --start").exit_code == 0);
  CliRun forced = RunCli("rotate --local-dir " + m.dir_.path() + " --force-activate");
  REQUIRE(forced.exit_code == 0);
  // The node agent still holds the old bundle while the secrets move to the new signer.
  INFO(m.Logs());
  CHECK(WaitFor([&] { return m.checker_.failures() > 0; }, kStageWait));
  m.checker_.Stop();
  INFO(m.checker_.Report());
  std::cout << "negative control (forced activation): " << m.checker_.Report() << "\n";
  CHECK(m.checker_.failures() > 0);
}

}  // namespace
}  // namespace istioca::ca
