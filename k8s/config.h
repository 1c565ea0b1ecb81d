// k8s/config.h — where the API server is and how to authenticate to it.
//
// Two sources, as client-go has them: a kubeconfig file (--kube-config) and the in-cluster
// service-account mount. A bearer token read from a file is re-read by the client (bound
// service-account tokens rotate about hourly), so the config keeps the path, not the value.
// Nothing here opens a connection.
#pragma once

#include <functional>
#include <string>

#include "base/status.h"

namespace istioca::k8s {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct RestConfig {
  std::string server;  // "https://10.96.0.1:443"
  std::string ca_pem;  // trusted roots for the server; empty: the system store
  bool insecure_skip_verify = false;
  std::string client_cert_pem;  // client certificate authentication (both or neither)
  std::string client_key_pem;
  std::string token;       // a static bearer token, or
  std::string token_file;  // a file re-read periodically
  double qps = 0;          // client-side rate limit; 0 = none
  int burst = 0;
  std::string user_agent = "istio-ca";
};

// The parts of RestConfig::server.
struct ServerUrl {
  bool tls = true;
  std::string host;  // without brackets for IPv6
  int port = 443;
};
Result<ServerUrl> ParseServerUrl(const std::string& server);

// Reads a kubeconfig: its current-context's cluster (server, certificate-authority[-data],
// insecure-skip-tls-verify) and user (client-certificate[-data], client-key[-data], token,
// tokenFile). Relative file paths are relative to the kubeconfig's directory.
Result<RestConfig> LoadKubeconfig(const std::string& path);

// In-cluster: KUBERNETES_SERVICE_HOST/PORT, <dir>/ca.crt and <dir>/token. `getenv` is a
// parameter for tests.
Result<RestConfig> InClusterConfig(const std::function<const char*(const char*)>& getenv,
                                   const std::string& dir = kServiceAccountDir);

}  // namespace istioca::k8s
