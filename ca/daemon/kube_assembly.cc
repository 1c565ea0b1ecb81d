// ca/daemon/kube_assembly.cc — the Backends the daemon uses without --local-dir: the
// Kubernetes API from --kube-config or in-cluster, scoped by --listened-namespace (or env
// NAMESPACE), with the daemon's clock.
#include <unistd.h>

#include <cstdlib>
#include <random>

#include "ca/daemon/daemon.h"
#include "ca/grpc/kube_token_reviewer.h"
#include "ca/kube/ca_store.h"
#include "ca/kube/leader_elector.h"
#include "ca/kube/root_cert_publisher.h"
#include "ca/kube/secret_store.h"
#include "ca/kube/service_account_source.h"
#include "k8s/config.h"
#include "k8s/http_api.h"

namespace istioca::ca {

Result<Backends> MakeKubernetesBackends(const DaemonOptions& options, const Clock& clock,
                                        MetricsRegistry& metrics) {
  Result<k8s::RestConfig> config =
      options.kube_config.empty()
          ? k8s::InClusterConfig([](const char* k) { return std::getenv(k); })
          : k8s::LoadKubeconfig(options.kube_config);
  if (!config.ok()) return config.status();
  config->qps = options.kube_api_qps;
  config->burst = options.kube_api_burst;
  k8s::HttpApiOptions http_options;
  http_options.clock = &clock;
  ASSIGN_OR_RETURN(std::unique_ptr<k8s::HttpApi> http, k8s::HttpApi::Create(*config, http_options));
  std::shared_ptr<k8s::Api> api(std::move(http));

  std::vector<std::string> namespaces = options.listened_namespaces;
  if (namespaces.empty()) {
    // Istio 0.x–1.0: with no --listened-namespace, env NAMESPACE scopes the controller.
    if (const char* ns = std::getenv("NAMESPACE"); ns != nullptr && *ns != '\0') namespaces = {ns};
  }
  KubeInformerTuning tuning;
  tuning.clock = &clock;
  Backends b;
  auto gate = std::make_shared<SyncGate>(2);
  b.service_accounts = std::make_unique<KubeServiceAccountSource>(api, namespaces, tuning, gate);
  b.secrets = std::make_unique<KubeSecretStore>(api, namespaces, tuning, gate);
  b.ca_store = std::make_unique<KubeCaStore>(api, options.storage_namespace);
  // The istio-ca-root-cert ConfigMaps, in the same namespaces as the workload secrets (all
  // active ones when none is listed). The daemon starts it on the leader only.
  b.bundle_publisher = std::make_unique<KubeRootCertPublisher>(api, namespaces, clock);
  // No cache here: the gRPC server keeps the one TokenReviewCache in front of it. Its own client,
  // with its own rate limit: a stampede of TokenReviews must not wait behind --kube-api-qps (nor
  // starve the controller's writes of it).
  k8s::RestConfig review_config = *config;
  review_config.qps = options.token_review_qps;
  review_config.burst = options.token_review_burst;
  ASSIGN_OR_RETURN(std::unique_ptr<k8s::HttpApi> review_http,
                   k8s::HttpApi::Create(review_config, http_options));
  b.token_reviewer = std::make_shared<KubeTokenReviewer>(
      std::shared_ptr<k8s::Api>(std::move(review_http)), options.token_audiences);
  k8s::LeaseConfig lease;
  lease.ns = options.storage_namespace;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::random_device rd;
  // Pod name (unique per replica), then pid and a random part for replicas on one host.
  lease.identity =
      std::string(host) + "_" + std::to_string(getpid()) + "_" + std::to_string(rd() % 1000000);
  b.leader = std::make_unique<KubeLeaderElector>(api, lease, clock, metrics);
  return b;
}

}  // namespace istioca::ca
