// The node agent: renewal timing (pure, fake clock), bootstrap by token and by mTLS, both APIs,
// atomic 0600 key, and a CA outage that it rides out and recovers from.
#include "ca/nodeagent/node_agent.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "base/log.h"
#include "ca/cmd/cli.h"
#include "grpc_fixture.h"
#include "pki/verify.h"

namespace istioca::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("renewal is at 50% of the lifetime, up to 5% earlier with jitter", "[node-agent]") {
  const TimePoint nb = T0();
  const TimePoint na = T0() + 24h;
  CHECK(ca::RenewalTime(nb, na, 0.0) == T0() + 12h);
  CHECK(ca::RenewalTime(nb, na, 1.0) == T0() + 12h - 72min);
  const TimePoint mid = ca::RenewalTime(nb, na, 0.5);
  CHECK((mid > T0() + 12h - 72min && mid < T0() + 12h));
}

TEST_CASE("retry backoff doubles from the initial interval up to the cap", "[node-agent]") {
  CHECK(ca::RetryBackoff(1, 1s, 5min, 0) == 1s);
  CHECK(ca::RetryBackoff(2, 1s, 5min, 0) == 2s);
  CHECK(ca::RetryBackoff(5, 1s, 5min, 0) == 16s);
  CHECK(ca::RetryBackoff(9, 1s, 5min, 0) == 256s);
  CHECK(ca::RetryBackoff(10, 1s, 5min, 0) == 5min);
  CHECK(ca::RetryBackoff(1000, 1s, 5min, 0) == 5min);
  CHECK(ca::RetryBackoff(1, 10s, 5min, 1.0) == 8s);
}

TEST_CASE("the legacy API's TTL is whole minutes from 1m, never rounded", "[node-agent]") {
  CHECK(Must(ca::LegacyTtlMinutes(1min)) == 1);
  CHECK(Must(ca::LegacyTtlMinutes(90min)) == 90);
  CHECK(Must(ca::LegacyTtlMinutes(24h)) == 1440);
  for (Duration bad : {Duration(20s), Duration(0s), Duration(90s), Duration(-1min),
                       Duration(std::chrono::minutes(int64_t{INT32_MAX} + 1))}) {
    INFO(FormatDuration(bad));
    auto m = ca::LegacyTtlMinutes(bad);
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == Code::kInvalidArgument);
  }
}

struct AgentFixture {
  explicit AgentFixture(bool legacy = false) : clock(SystemClock::Get().Now()) {
    dir = fs::temp_directory_path() /
          ("na-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir);
    std::ofstream(dir / "root-cert.pem") << ca.RootsPem();
    std::ofstream(dir / "token") << "token:ns1:vm\n";
    options.ca_address = ca.Address();
    options.ca_server_name = "istio-ca";
    options.cert_chain = (dir / "cert-chain.pem").string();
    options.key = (dir / "key.pem").string();
    options.root_cert = (dir / "root-cert.pem").string();
    options.token_file = (dir / "token").string();
    options.legacy_api = legacy;
    options.rpc_timeout = 5s;
  }
  ~AgentFixture() { fs::remove_all(dir); }

  ca::NodeAgent Agent() {
    return ca::NodeAgent(options, clock, [] { return 0.0; });
  }
  pki::Certificate Leaf() {
    return Must(pki::Certificate::ParsePemChain(Slurp(dir / "cert-chain.pem"))).front();
  }

  static inline int counter = 0;
  GrpcFixture ca;
  FakeClock clock;  // the agent's own clock
  fs::path dir;
  ca::NodeAgentOptions options;
};

const std::string kVm = "spiffe://cluster.local/ns/ns1/sa/vm";

TEST_CASE("node agent bootstraps with a token, writes a 0600 key and a verified chain",
          "[node-agent]") {
  AgentFixture f;
  ca::NodeAgent agent = f.Agent();
  const TimePoint next = agent.Step();
  INFO(agent.last_error().ToString());
  REQUIRE(agent.consecutive_failures() == 0);
  pki::Certificate leaf = f.Leaf();
  CHECK(leaf.UriSans() == std::vector<std::string>{kVm});
  CHECK(next == ca::RenewalTime(leaf.NotBefore(), leaf.NotAfter(), 0.0));
  CHECK((fs::status(f.dir / "key.pem").permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));
  auto key = Must(pki::PrivateKey::FromPem(Slurp(f.dir / "key.pem")));
  CHECK(pki::SamePublicKey(key.get(), leaf.PublicKey()));
  CHECK(pki::VerifyChain(leaf, {}, f.ca.authority.Bundle()->roots, f.clock.Now()).ok());
  // Not due yet: nothing is sent, nothing rewritten.
  const double issued =
      f.ca.metrics.GetCounter("citadel_server_success_cert_issuance_count", "").Value();
  f.clock.Advance(6h);
  CHECK(agent.Step() == next);
  CHECK(f.Leaf() == leaf);
  CHECK(f.ca.metrics.GetCounter("citadel_server_success_cert_issuance_count", "").Value() ==
        issued);
}

TEST_CASE("node agent renews at half life with a fresh key, over mTLS once it has a certificate",
          "[node-agent]") {
  auto api = GENERATE(false, true);
  AgentFixture f(api);
  if (api) {
    // The legacy API needs an identity: bootstrap as Istio's did, with a provisioned cert.
    ClientCreds c = f.ca.ClientCert(kVm);
    std::ofstream(f.dir / "cert-chain.pem") << c.chain_pem;
    std::ofstream(f.dir / "key.pem") << c.key_pem;
  } else {
    ca::NodeAgent boot = f.Agent();
    boot.Step();
  }
  f.options.token_file.clear();  // from here on only the certificate authenticates
  ca::NodeAgent agent = f.Agent();
  const std::string old_key = Slurp(f.dir / "key.pem");
  const pki::Certificate old_leaf = f.Leaf();
  f.clock.Set(ca::RenewalTime(old_leaf.NotBefore(), old_leaf.NotAfter(), 0.0) + 1s);
  agent.Step();
  INFO(agent.last_error().ToString());
  REQUIRE(agent.consecutive_failures() == 0);
  CHECK_FALSE(f.Leaf() == old_leaf);
  CHECK(f.Leaf().UriSans() == std::vector<std::string>{kVm});
  CHECK(Slurp(f.dir / "key.pem") != old_key);
}

TEST_CASE("node agent keeps its files through a CA outage, backs off, and recovers",
          "[node-agent]") {
  AgentFixture f;
  ca::NodeAgent agent = f.Agent();
  agent.Step();
  REQUIRE(agent.consecutive_failures() == 0);
  const pki::Certificate first = f.Leaf();
  const std::string first_key = Slurp(f.dir / "key.pem");

  f.ca.StopServer();
  f.clock.Set(ca::RenewalTime(first.NotBefore(), first.NotAfter(), 0.0));
  TimePoint next = agent.Step();
  CHECK(agent.consecutive_failures() == 1);
  CHECK(next == f.clock.Now() + 1s);
  for (int i = 2; i <= 4; ++i) {
    f.clock.Set(next);
    next = agent.Step();
    CHECK(agent.consecutive_failures() == i);
    CHECK(next - f.clock.Now() == Duration(1s) * (1 << (i - 1)));
  }
  // The old files are untouched while the CA is down.
  CHECK(f.Leaf() == first);
  CHECK(Slurp(f.dir / "key.pem") == first_key);

  f.ca.StartServer();
  f.clock.Set(next);
  next = agent.Step();
  INFO(agent.last_error().ToString());
  CHECK(agent.consecutive_failures() == 0);
  CHECK_FALSE(f.Leaf() == first);
  // The agent's clock is ahead of the CA's here (the CA's must stay real for TLS), so the new
  // certificate is already past half life for the agent: it waits the minimum, not a loop.
  CHECK(next == f.clock.Now() + 1min);
}

TEST_CASE("node agent without any credential fails without touching files, and retries",
          "[node-agent]") {
  AgentFixture f(/*legacy=*/true);
  f.options.token_file.clear();
  ca::NodeAgent agent = f.Agent();
  TimePoint next = agent.Step();
  CHECK(agent.consecutive_failures() == 1);
  CHECK(agent.last_error().code() == Code::kFailedPrecondition);
  CHECK(next == f.clock.Now() + 1s);
  CHECK_FALSE(fs::exists(f.dir / "key.pem"));
}

TEST_CASE("node agent publishes key, chain and roots as one unit through ..data", "[node-agent]") {
  AgentFixture f;
  ca::NodeAgent agent = f.Agent();
  agent.Step();
  REQUIRE(agent.consecutive_failures() == 0);
  const fs::path data = f.dir / "..data";
  for (const char* name : {"key.pem", "cert-chain.pem", "root-cert.pem"}) {
    INFO(name);
    REQUIRE(fs::is_symlink(f.dir / name));  // root-cert.pem was a regular file: replaced by a link
    CHECK(fs::read_symlink(f.dir / name) == fs::path("..data") / name);
  }
  const fs::path first_gen = fs::read_symlink(data);
  CHECK((fs::status(f.dir / "key.pem").permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));

  f.options.token_file.clear();
  const pki::Certificate leaf = f.Leaf();
  f.clock.Set(ca::RenewalTime(leaf.NotBefore(), leaf.NotAfter(), 0.0) + 1s);
  ca::NodeAgent renew = f.Agent();
  renew.Step();
  REQUIRE(renew.consecutive_failures() == 0);
  // One swap: a new generation holding a matching pair, and the old one gone.
  const fs::path gen = fs::read_symlink(data);
  CHECK(gen != first_gen);
  CHECK_FALSE(fs::exists(f.dir / first_gen));
  int generations = 0;
  for (const auto& e : fs::directory_iterator(f.dir)) {
    generations +=
        e.is_directory() && !e.is_symlink() && e.path().filename().string().rfind("..g", 0) == 0;
  }
  CHECK(generations == 1);
  auto key = Must(pki::PrivateKey::FromPem(Slurp(f.dir / gen / "key.pem")));
  auto chain = Must(pki::Certificate::ParsePemChain(Slurp(f.dir / gen / "cert-chain.pem")));
  CHECK(pki::SamePublicKey(key.get(), chain.front().PublicKey()));
  CHECK_FALSE(chain.front() == leaf);
}

TEST_CASE("node agent with key and chain in different directories replaces each file",
          "[node-agent]") {
  AgentFixture f;
  fs::create_directories(f.dir / "private");
  f.options.key = (f.dir / "private" / "key.pem").string();
  ca::NodeAgent agent = f.Agent();
  agent.Step();
  INFO(agent.last_error().ToString());
  REQUIRE(agent.consecutive_failures() == 0);
  CHECK(fs::is_regular_file(fs::symlink_status(f.dir / "private" / "key.pem")));
  CHECK(fs::is_regular_file(fs::symlink_status(f.dir / "cert-chain.pem")));
  CHECK_FALSE(fs::exists(f.dir / "..data"));
  auto key = Must(pki::PrivateKey::FromPem(Slurp(f.dir / "private" / "key.pem")));
  CHECK(pki::SamePublicKey(key.get(), f.Leaf().PublicKey()));
}

}  // namespace
}  // namespace istioca::testing

namespace istioca::testing {
namespace {

// `istio-ca ARGS...` in this process: exit status and what went to stderr.
struct CliRun {
  int exit_code;
  std::string err;
};
CliRun RunIstioCa(std::vector<std::string> args) {
  args.insert(args.begin(), "istio-ca");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::ostringstream err;
  std::streambuf* saved = std::cerr.rdbuf(err.rdbuf());
  const int code = ca::RunCli(static_cast<int>(argv.size()), argv.data());
  std::cerr.rdbuf(saved);
  REQUIRE(ConfigureLogging("info", false).ok());  // the subcommand set the process's level
  return {code, err.str()};
}

TEST_CASE(
    "node-agent --api legacy refuses a TTL that is not whole minutes, and sends the one given",
    "[node-agent][cli]") {
  AgentFixture f(/*legacy=*/true);
  ClientCreds c = f.ca.ClientCert(kVm);
  std::ofstream(f.dir / "cert-chain.pem") << c.chain_pem;
  std::ofstream(f.dir / "key.pem") << c.key_pem;
  auto agent_args = [&](const std::string& ttl) {
    return std::vector<std::string>{"node-agent",
                                    "--api",
                                    "legacy",
                                    "--workload-cert-ttl",
                                    ttl,
                                    "--once",
                                    "--ca-address",
                                    f.ca.Address(),
                                    "--ca-server-name",
                                    "istio-ca",
                                    "--cert-chain",
                                    f.options.cert_chain,
                                    "--key",
                                    f.options.key,
                                    "--root-cert",
                                    f.options.root_cert,
                                    "--log_output_level",
                                    "error"};
  };
  const double issued_before =
      f.ca.metrics.GetCounter("citadel_server_success_cert_issuance_count", "").Value();
  for (const std::string ttl : {"20s", "90s"}) {
    INFO(ttl);
    CliRun r = RunIstioCa(agent_args(ttl));
    CHECK(r.exit_code == 2);
    CHECK(r.err.rfind("istio-ca node-agent: --workload-cert-ttl: ", 0) == 0);
    CHECK(r.err.find("whole minutes") != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  // Nothing was asked of the CA, and the files are untouched.
  CHECK(f.ca.metrics.GetCounter("citadel_server_success_cert_issuance_count", "").Value() ==
        issued_before);
  CHECK(Slurp(f.dir / "cert-chain.pem") == c.chain_pem);

  // A whole number of minutes reaches the CA as requested_ttl_minutes: the certificate has it.
  CliRun ok = RunIstioCa(agent_args("90m"));
  INFO(ok.err);
  REQUIRE(ok.exit_code == 0);
  const pki::Certificate leaf = f.Leaf();
  const Duration lifetime = leaf.NotAfter() - f.ca.clock.Now();
  CHECK(lifetime > 90min - 2s);
  CHECK(lifetime <= 90min);
}

}  // namespace
}  // namespace istioca::testing
