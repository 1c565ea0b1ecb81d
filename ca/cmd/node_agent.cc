// `istio-ca node-agent`: keeps /etc/certs/{cert-chain,key,root-cert}.pem fresh from the CA's gRPC
// API (see ca/nodeagent/node_agent.h). Runs until SIGTERM/SIGINT; --once renews once and exits 0
// or 1.
#include "ca/nodeagent/node_agent.h"

#include <csignal>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

#include "base/log.h"
#include "ca/cmd/cli.h"

namespace istioca::ca {

namespace {
std::atomic<bool> g_stop{false};
extern "C" void OnSignal(int) { g_stop.store(true); }

int Fail(const std::string& flag, const std::string& message) {
  std::cerr << "istio-ca node-agent: " << flag << ": " << message << "\n";
  return 2;
}
}  // namespace

void RegisterNodeAgent(CLI::App& app, CommandContext& ctx) {
  struct Flags {
    NodeAgentOptions o;
    std::string api = "modern";
    std::string ttl = "24h";
    std::string key_type = "ec-p256";
    std::string max_backoff = "5m";
    bool once = false;
    std::string log_level = "info";
    bool log_json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd =
      app.add_subcommand("node-agent", "Keep a workload certificate fresh from the CA's gRPC API");
  cmd->add_option("--ca-address", f->o.ca_address, "CA gRPC address HOST:PORT")
      ->capture_default_str();
  cmd->add_option("--ca-server-name", f->o.ca_server_name,
                  "TLS name expected on the CA's certificate (default: the host of --ca-address)");
  cmd->add_option("--cert-chain", f->o.cert_chain, "Certificate chain file")->capture_default_str();
  cmd->add_option("--key", f->o.key, "Private key file (written 0600)")->capture_default_str();
  cmd->add_option("--root-cert", f->o.root_cert, "Root certificate(s) to verify the CA with")
      ->capture_default_str();
  cmd->add_option("--token-file", f->o.token_file,
                  "Bearer JWT (Kubernetes service-account token); otherwise the current "
                  "certificate authenticates (mTLS)");
  cmd->add_option("--api", f->api, "modern (IstioCertificateService) or legacy (IstioCAService)")
      ->capture_default_str();
  cmd->add_option("--workload-cert-ttl", f->ttl,
                  "Requested certificate TTL. With --api legacy it must be a whole number of "
                  "minutes, at least 1m (that API counts minutes); anything else is refused, "
                  "never rounded")
      ->capture_default_str();
  cmd->add_option("--key-type", f->key_type, "ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096")
      ->capture_default_str();
  cmd->add_option("--max-retry-interval", f->max_backoff, "Cap of the exponential retry backoff")
      ->capture_default_str();
  cmd->add_flag("--once", f->once, "Renew once and exit (0 on success, 1 on failure)");
  cmd->add_option("--log_output_level", f->log_level, "debug|info|warn|error|none")
      ->capture_default_str();
  cmd->add_flag("--log_as_json", f->log_json, "Log one JSON object per line");
  cmd->callback([f, &ctx] {
    NodeAgentOptions o = f->o;
    if (f->api != "modern" && f->api != "legacy") {
      ctx.exit_code = Fail("--api", "must be modern or legacy, got \"" + f->api + "\"");
      return;
    }
    o.legacy_api = f->api == "legacy";
    auto ttl = ParseDuration(f->ttl);
    if (!ttl.ok() || *ttl <= Duration::zero()) {
      ctx.exit_code =
          Fail("--workload-cert-ttl", ttl.ok() ? "must be positive" : ttl.status().message());
      return;
    }
    if (o.legacy_api) {
      if (auto minutes = LegacyTtlMinutes(*ttl); !minutes.ok()) {
        ctx.exit_code = Fail("--workload-cert-ttl", minutes.status().message());
        return;
      }
    }
    o.workload_cert_ttl = *ttl;
    auto key_type = pki::ParseKeyType(f->key_type);
    if (!key_type.ok()) {
      ctx.exit_code = Fail("--key-type", key_type.status().message());
      return;
    }
    o.key_type = *key_type;
    auto max_backoff = ParseDuration(f->max_backoff);
    if (!max_backoff.ok() || *max_backoff < o.initial_backoff) {
      ctx.exit_code =
          Fail("--max-retry-interval",
               max_backoff.ok() ? "must be at least 1s" : max_backoff.status().message());
      return;
    }
    o.max_backoff = *max_backoff;
    if (o.ca_address.find(':') == std::string::npos) {
      ctx.exit_code = Fail("--ca-address", "must be HOST:PORT");
      return;
    }
    if (Status s = ConfigureLogging(f->log_level, f->log_json); !s.ok()) {
      ctx.exit_code = Fail("--log_output_level", s.message());
      return;
    }

    std::mt19937_64 rng(std::random_device{}());
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    NodeAgent agent(o, SystemClock::Get(), [&] { return uniform(rng); });
    if (f->once) {
      Status s = agent.RenewNow();
      if (!s.ok()) std::cerr << "istio-ca node-agent: " << s.message() << "\n";
      ctx.exit_code = s.ok() ? 0 : 1;
      return;
    }
    std::signal(SIGTERM, OnSignal);
    std::signal(SIGINT, OnSignal);
    Logger("node-agent")->info("node agent started ca={} api={}", o.ca_address, f->api);
    while (!g_stop.load()) {
      const TimePoint next = agent.Step();
      // Wake at the decided time, or promptly on a signal.
      while (!g_stop.load() && SystemClock::Get().Now() < next) {
        std::this_thread::sleep_for(
            std::min<Duration>(next - SystemClock::Get().Now(), std::chrono::milliseconds(200)));
      }
    }
    Logger("node-agent")->info("node agent stopping");
    ctx.exit_code = 0;
  });
}

}  // namespace istioca::ca
