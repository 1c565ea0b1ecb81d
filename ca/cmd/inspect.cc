// `istio-ca inspect`: flags, inputs and exit codes. The conclusions are ca/inspect.h's.
//
// Exit codes: 0 every set healthy; 1 a problem found (expired, not yet valid, broken chain, key
// mismatch, X509-SVID violation, expiring within --expiring-within); 2 usage error or input
// that cannot be read or parsed.
#include "ca/inspect/inspect.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <optional>

#include "ca/cmd/cli.h"
#include "ca/inspect/input.h"
#include "ca/local/ca_store.h"
#include "ca/trust/state.h"
#include "k8s/errors.h"
#include "k8s/http_api.h"
#include "k8s/objects.h"
#include "pki/tls_probe.h"

namespace istioca::ca {
namespace {

struct InspectFlags {
  std::vector<std::string> inputs;
  std::string roots;
  std::string connect;
  std::string servername;
  std::string timeout = "5s";
  std::string at;
  std::string expiring_within;
  std::string grace_ratio = "0.5";
  std::string min_grace = "10m";
  bool json = false;
  bool brief = false;
  bool no_color = false;
  // From the cluster.
  std::string secret;  // NS/NAME
  bool all_namespaces = false;
  std::string kube_config;
  std::string storage_namespace = "istio-system";
  std::string local_dir;  // --local-dir: the CA of `serve --local-dir DIR`
};

int Fail(const std::string& message) {
  std::cerr << "istio-ca inspect: " << message << "\n";
  return 2;
}

// "+19h", "-1h" (relative to now) or an RFC 3339 time.
Result<TimePoint> ParseAt(const std::string& text, TimePoint now) {
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    auto d = ParseDuration(text);
    if (!d.ok()) return InvalidArgument("--at: " + d.status().message());
    return now + std::chrono::duration_cast<TimePoint::duration>(*d);
  }
  auto t = ParseRfc3339(text);
  if (!t.ok()) return InvalidArgument("--at: " + t.status().message() + " or a relative +DURATION");
  return *t;
}

// --kube-config, else $KUBECONFIG (its first path), else ~/.kube/config, else in-cluster.
Result<std::unique_ptr<k8s::Api>> Connect(const std::string& flag) {
  std::string path = flag;
  if (path.empty()) {
    if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
      path = std::string(env).substr(0, std::string(env).find(':'));
    } else if (const char* home = std::getenv("HOME");
               home != nullptr &&
               access((std::string(home) + "/.kube/config").c_str(), R_OK) == 0) {
      path = std::string(home) + "/.kube/config";
    }
  }
  auto api = k8s::Connect(path);
  if (!api.ok()) return api.status().WithContext(path.empty() ? "in-cluster config" : path);
  return api;
}

// The CA's trust bundle from its record (istio-ca-secret, or DIR/ca/record.json): root-cert.pem
// (else ca-cert.pem), and the bundle generation when the record has a trust-state.json.
bool CaBundleFromRecord(const std::map<std::string, std::string>& data, const std::string& where,
                        InspectOptions* options) {
  for (const char* key : {"root-cert.pem", "ca-cert.pem"}) {
    auto it = data.find(key);
    if (it == data.end() || it->second.empty()) continue;
    auto roots = pki::Certificate::ParsePemChain(it->second);
    if (!roots.ok()) continue;
    options->roots = std::move(roots).value();
    options->roots_name = "the CA's roots (" + where + " " + key + ")";
    auto state = trust::ParseTrustState(data);
    if (state.ok()) options->bundle_generation = state->bundle_generation;
    return true;
  }
  return false;
}

void CaRoots(k8s::Api& api, const std::string& ns, InspectOptions* options) {
  auto secret = k8s::GetSecret(api, ns, "istio-ca-secret");
  if (!secret.ok()) {
    std::cerr << "istio-ca inspect: warning: cannot read " << ns << "/istio-ca-secret ("
              << secret.status().message() << "); each secret is checked against its own roots\n";
    return;
  }
  CaBundleFromRecord(secret->data, ns + "/istio-ca-secret", options);
}

// --secret NS/NAME or --all-namespaces: material sets read from the API server.
Result<std::vector<MaterialSet>> LoadFromCluster(const InspectFlags& f, InspectOptions* options) {
  ASSIGN_OR_RETURN(std::unique_ptr<k8s::Api> api, Connect(f.kube_config));
  std::vector<MaterialSet> sets;
  if (!f.secret.empty()) {
    const size_t slash = f.secret.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == f.secret.size()) {
      return InvalidArgument("--secret wants NAMESPACE/NAME, got \"" + f.secret + "\"");
    }
    const std::string ns = f.secret.substr(0, slash), name = f.secret.substr(slash + 1);
    auto secret = k8s::GetSecret(*api, ns, name);
    if (!secret.ok()) return secret.status().WithContext("secret " + f.secret);
    ASSIGN_OR_RETURN(MaterialSet set, MaterialFromSecret(ns, name, secret->type, secret->data));
    sets.push_back(std::move(set));
  }
  if (f.all_namespaces) {
    auto secrets = k8s::ListSecrets(*api, "", k8s::kIstioSecretSelector);
    if (!secrets.ok()) return secrets.status().WithContext("listing istio.io/key-and-cert secrets");
    for (const k8s::Secret& secret : *secrets) {
      if (secret.meta.name.rfind("istio.", 0) != 0) continue;
      auto set = MaterialFromSecret(secret.meta.ns, secret.meta.name, secret.type, secret.data);
      if (set.ok()) {
        sets.push_back(std::move(set).value());
      } else {
        // An unreadable secret is a row with a problem, not the end of the fleet view.
        MaterialSet broken;
        broken.source = "secret " + secret.meta.ns + "/" + secret.meta.name;
        broken.kind = "secret";
        broken.load_error = set.status().message();
        sets.push_back(std::move(broken));
      }
    }
  }
  if (!options->roots.has_value()) CaRoots(*api, f.storage_namespace, options);
  return sets;
}

int Run(const InspectFlags& f) {
  const TimePoint now = SystemClock::Get().Now();
  InspectOptions options;
  options.at = now;
  if (!f.at.empty()) {
    auto at = ParseAt(f.at, now);
    if (!at.ok()) return Fail(at.status().message());
    options.at = *at;
  }
  if (!f.expiring_within.empty()) {
    auto d = ParseDuration(f.expiring_within);
    if (!d.ok() || *d < Duration::zero()) {
      return Fail("--expiring-within: " +
                  (d.ok() ? std::string("must not be negative") : d.status().message()));
    }
    options.expiring_within = *d;
  }
  char* end = nullptr;
  options.rotation.grace_ratio = std::strtod(f.grace_ratio.c_str(), &end);
  if (end == f.grace_ratio.c_str() || *end != '\0' ||
      !(options.rotation.grace_ratio >= 0 && options.rotation.grace_ratio <= 1)) {
    return Fail("--workload-cert-grace-period-ratio: must be a number between 0 and 1, got \"" +
                f.grace_ratio + "\"");
  }
  auto min_grace = ParseDuration(f.min_grace);
  if (!min_grace.ok() || *min_grace < Duration::zero()) {
    return Fail("--workload-cert-min-grace-period: " + (min_grace.ok()
                                                            ? std::string("must not be negative")
                                                            : min_grace.status().message()));
  }
  options.rotation.min_grace = *min_grace;
  auto timeout = ParseDuration(f.timeout);
  if (!timeout.ok() || *timeout <= Duration::zero()) {
    return Fail("--timeout: " +
                (timeout.ok() ? std::string("must be positive") : timeout.status().message()));
  }
  if (!f.roots.empty()) {
    auto roots = LoadRoots(f.roots);
    if (!roots.ok()) return Fail("--roots " + roots.status().message());
    options.roots = std::move(roots).value();
    options.roots_name = "--roots " + f.roots;
  } else if (!f.local_dir.empty()) {
    auto record = LocalCaStore(f.local_dir + "/ca").LoadRecord();
    if (!record.ok()) return Fail("--local-dir " + f.local_dir + ": " + record.status().message());
    if (!CaBundleFromRecord(record->data, f.local_dir + "/ca", &options)) {
      return Fail("--local-dir " + f.local_dir + ": the CA record has no parsable root-cert.pem");
    }
  }

  const bool from_cluster = !f.secret.empty() || f.all_namespaces;
  std::vector<std::string> inputs = f.inputs;
  if (inputs.empty() && f.connect.empty() && !from_cluster) {
    if (isatty(STDIN_FILENO)) {
      return Fail(
          "nothing to inspect: give FILE, DIR, - (stdin) or --connect HOST:PORT (see --help)");
    }
    inputs.push_back("-");
  }
  auto loaded = LoadInputs(inputs);
  if (!loaded.ok()) return Fail(loaded.status().message());
  std::vector<MaterialSet> sets = std::move(loaded).value();
  if (from_cluster) {
    auto cluster = LoadFromCluster(f, &options);
    if (!cluster.ok()) return Fail(cluster.status().ToString());
    for (auto& s : *cluster) sets.push_back(std::move(s));
  }
  if (!f.connect.empty()) {
    auto peer = pki::FetchPeerChain(f.connect, f.servername, *timeout);
    if (!peer.ok()) return Fail("--connect " + peer.status().ToString());
    MaterialSet set;
    set.source = f.connect;
    set.kind = "connect";
    set.chain = peer->certs;
    set.notes.push_back(peer->protocol + " " + peer->cipher);
    for (const auto& n : peer->notes) set.notes.push_back(n);
    sets.push_back(std::move(set));
  }

  std::vector<SetReport> reports;
  bool healthy = true;
  for (const MaterialSet& set : sets) {
    reports.push_back(Inspect(set, options));
    healthy &= reports.back().healthy();
  }
  if (f.all_namespaces) SortByExpiry(reports);
  RenderOptions render;
  render.color = !f.no_color && isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  render.verbose = !f.brief;
  if (f.json) {
    std::cout << RenderJson(reports, options.at).dump(2) << "\n";
  } else if (f.all_namespaces && !f.brief) {
    std::cout << RenderFleet(reports, render);
  } else {
    std::cout << RenderText(reports, render);
  }
  return healthy ? 0 : 1;
}

}  // namespace

void RegisterInspect(CLI::App& app, CommandContext& ctx) {
  auto flags = std::make_shared<InspectFlags>();
  CLI::App* cmd = app.add_subcommand(
      "inspect",
      "Inspect certificate material: who it says it is (SPIFFE ID), whether it chains to the "
      "trusted roots, whether the key matches, and when it expires or rotates.\n"
      "Exit 0 healthy, 1 a problem found, 2 usage or unreadable input.");
  cmd->add_option(
      "inputs", flags->inputs,
      "PEM files (combined into one set; a file named root-cert.pem supplies the roots), "
      "directories in /etc/certs layout (cert-chain.pem, key.pem, root-cert.pem), "
      "Secrets saved as kubectl JSON/YAML, or - for standard input");
  cmd->add_option("--local-dir", flags->local_dir,
                  "Check against the trust bundle of the CA of `serve --local-dir DIR`, and say "
                  "which bundle generation each set carries");
  cmd->add_option("--roots", flags->roots,
                  "Trust the roots in FILE instead of the set's own root-cert.pem");
  cmd->add_option("--connect", flags->connect,
                  "Inspect the chain a TLS server presents (HOST:PORT)");
  cmd->add_option("--servername", flags->servername, "SNI name for --connect (default: the host)");
  cmd->add_option("--timeout", flags->timeout, "Timeout for --connect (Go duration)")
      ->capture_default_str();
  cmd->add_option("--at", flags->at,
                  "Evaluate at TIME (RFC 3339, or +DURATION / -DURATION from now)");
  cmd->add_option("--expiring-within", flags->expiring_within,
                  "Report a problem (exit 1) if anything expires within this duration, e.g. 72h");
  cmd->add_option("--workload-cert-grace-period-ratio", flags->grace_ratio,
                  "Grace period as a fraction of the lifetime, for 'rotation due'")
      ->capture_default_str();
  cmd->add_option("--workload-cert-min-grace-period", flags->min_grace,
                  "Minimum grace period, for 'rotation due'")
      ->capture_default_str();
  cmd->add_option("--secret", flags->secret,
                  "Inspect a Secret read from the cluster (NAMESPACE/NAME)");
  cmd->add_flag(
      "-A,--all-namespaces", flags->all_namespaces,
      "Fleet view: every istio.* secret in the cluster, one row each, soonest expiry first, "
      "checked against the CA's roots (istio-ca-secret)");
  cmd->add_option("--kube-config", flags->kube_config,
                  "kubeconfig for --secret/--all-namespaces (default: $KUBECONFIG, ~/.kube/config, "
                  "in-cluster)");
  cmd->add_option("--istio-ca-storage-namespace", flags->storage_namespace,
                  "Where istio-ca-secret holds the CA's roots")
      ->capture_default_str();
  cmd->add_flag("--json", flags->json,
                "Machine-readable output (schema istio-ca.inspect/v1, see README)");
  cmd->add_flag("--brief", flags->brief, "Only the summary of each set, not every certificate");
  cmd->add_flag("--no-color", flags->no_color, "Never colour the output (also: NO_COLOR=1)");
  cmd->callback([flags, &ctx] { ctx.exit_code = Run(*flags); });
}

}  // namespace istioca::ca
