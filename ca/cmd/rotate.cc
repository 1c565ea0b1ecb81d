// `istio-ca rotate`: the trust lifecycle's state and its operator actions, on the CA's storage
// (--local-dir DIR, or the Kubernetes API with --istio-ca-storage-namespace), with or without a
// running daemon (DESIGN "Trust lifecycle"). Exit 0 done, 1 refused, 2 bad input.
#include "ca/trust/rotate.h"

#include <cstdlib>
#include <iostream>
#include <memory>

#include "ca/cmd/cli.h"
#include "ca/kube/ca_store.h"
#include "ca/local/ca_store.h"
#include "k8s/config.h"
#include "k8s/http_api.h"

namespace istioca::ca {
namespace {

struct RotateFlags {
  std::string local_dir;
  std::string kube_config;
  bool in_cluster = false;
  std::string storage_namespace = "istio-system";
  bool status = false, json = false, start = false, force_activate = false, force_retire = false;
  std::string propagation_delay = "2m";
  std::string ca_key_type;
  std::string ttl;
};

Result<std::unique_ptr<CaStore>> OpenStore(const RotateFlags& f) {
  if (!f.local_dir.empty()) return std::unique_ptr<CaStore>(new LocalCaStore(f.local_dir + "/ca"));
  Result<k8s::RestConfig> config =
      f.kube_config.empty() ? k8s::InClusterConfig([](const char* k) { return std::getenv(k); })
                            : k8s::LoadKubeconfig(f.kube_config);
  if (!config.ok()) return config.status();
  ASSIGN_OR_RETURN(std::unique_ptr<k8s::HttpApi> http, k8s::HttpApi::Create(*config));
  std::shared_ptr<k8s::Api> api(std::move(http));
  return std::unique_ptr<CaStore>(new KubeCaStore(api, f.storage_namespace));
}

int Run(const RotateFlags& f) {
  const int actions = f.start + f.force_activate + f.force_retire;
  if (actions > 1) {
    std::cerr << "istio-ca rotate: give one of --start, --force-activate, --force-retire\n";
    return 2;
  }
  if (f.local_dir.empty() && f.kube_config.empty() && !f.in_cluster &&
      std::getenv("KUBERNETES_SERVICE_HOST") == nullptr) {
    std::cerr << "istio-ca rotate: say where the CA is stored: --local-dir DIR or --kube-config "
                 "FILE (in a pod, the in-cluster config is used)\n";
    return 2;
  }
  trust::TrustPolicy policy;
  auto delay = ParseDuration(f.propagation_delay);
  if (!delay.ok() || *delay < Duration::zero()) {
    std::cerr << "istio-ca rotate: --trust-propagation-delay: "
              << (delay.ok() ? "must not be negative" : delay.status().message()) << "\n";
    return 2;
  }
  policy.propagation_delay = *delay;
  trust::StartOptions start;
  if (!f.ca_key_type.empty()) {
    auto kt = pki::ParseKeyType(f.ca_key_type);
    if (!kt.ok()) {
      std::cerr << "istio-ca rotate: --ca-key-type: " << kt.status().message() << "\n";
      return 2;
    }
    start.key_type = *kt;
  }
  if (!f.ttl.empty()) {
    auto ttl = ParseDuration(f.ttl);
    if (!ttl.ok() || *ttl <= Duration::zero()) {
      std::cerr << "istio-ca rotate: --self-signed-ca-cert-ttl: "
                << (ttl.ok() ? "must be positive" : ttl.status().message()) << "\n";
      return 2;
    }
    start.ttl = *ttl;
  }
  auto store = OpenStore(f);
  if (!store.ok()) {
    std::cerr << "istio-ca rotate: " << store.status().message() << "\n";
    return 2;
  }
  const TimePoint now = SystemClock::Get().Now();
  std::string warning;
  Result<trust::RotateStatus> result =
      f.start            ? trust::StartRotation(**store, start, policy, now)
      : f.force_activate ? trust::ForceActivate(**store, policy, now, warning)
      : f.force_retire   ? trust::ForceRetire(**store, policy, now, warning)
                         : trust::ReadStatus(**store, policy, now);
  if (!result.ok()) {
    std::cerr << "istio-ca rotate: " << result.status().message() << "\n";
    const Code c = result.status().code();
    return c == Code::kFailedPrecondition || c == Code::kAborted ? 1 : 2;
  }
  if (!warning.empty()) std::cerr << "istio-ca rotate: WARNING: " << warning << "\n";
  if (f.start) std::cerr << "istio-ca rotate: prepared a new root; the daemon carries it on\n";
  std::cout << (f.json ? trust::StatusJson(*result) : trust::StatusText(*result));
  return 0;
}

}  // namespace

void RegisterRotate(CLI::App& app, CommandContext& ctx) {
  auto f = std::make_shared<RotateFlags>();
  CLI::App* cmd = app.add_subcommand(
      "rotate", "Show or drive the trust lifecycle (root and signer rotation) of a stored CA");
  cmd->add_option("--local-dir", f->local_dir, "The CA of `serve --local-dir DIR` (DIR/ca/)");
  cmd->add_option("--kube-config", f->kube_config,
                  "The CA in the cluster of this kubeconfig (istio-ca-secret)");
  cmd->add_option("--istio-ca-storage-namespace", f->storage_namespace,
                  "Namespace of istio-ca-secret");
  cmd->add_flag("--status", f->status, "Show the stage, roots, signers, next transition (default)");
  cmd->add_flag("--json", f->json, "Print the status as one JSON object");
  cmd->add_flag("--start", f->start,
                "Begin a rotation to a new self-signed root with a new key (only when stable)");
  cmd->add_flag("--force-activate", f->force_activate,
                "Emergency: activate the next signer now, before it is safe");
  cmd->add_flag("--force-retire", f->force_retire,
                "Emergency: drop the old root now, while its certificates may be valid");
  cmd->add_option("--trust-propagation-delay", f->propagation_delay,
                  "When no daemon recorded its own: the delay used to compute the next "
                  "transition");
  cmd->add_option("--ca-key-type", f->ca_key_type,
                  "--start: the new root's key type (default ec-p256)");
  cmd->add_option("--self-signed-ca-cert-ttl", f->ttl,
                  "--start: the new root's lifetime (default: the current root's)");
  cmd->callback([f, &ctx] { ctx.exit_code = Run(*f); });
}

}  // namespace istioca::ca
