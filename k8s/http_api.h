// k8s/http_api.h — the Api over HTTPS (cpp-httplib + OpenSSL), as a controller needs it:
// keep-alive connections pooled per thread of use, the bearer token re-read from its file
// every minute, a client-side QPS/burst limit, and retries with jittered backoff on 429, 5xx
// and lost connections. Tokens are never logged.
#pragma once

#include <memory>

#include "base/time.h"
#include "k8s/api.h"
#include "k8s/config.h"

namespace istioca::k8s {

struct HttpApiOptions {
  int max_attempts = 4;  // per request, for transient failures
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{3000};
  std::chrono::seconds request_timeout{30};
  // Paces requests (the QPS/burst limit). Null: the system clock.
  const Clock* clock = nullptr;
};

class HttpApi final : public Api {
 public:
  static Result<std::unique_ptr<HttpApi>> Create(const RestConfig& config,
                                                 const HttpApiOptions& options = {});
  ~HttpApi() override;

  Result<Json> Get(const Resource& r, const std::string& ns, const std::string& name) override;
  Result<Json> Create(const Resource& r, const std::string& ns, const Json& object) override;
  Result<Json> Update(const Resource& r, const std::string& ns, const Json& object) override;
  Status Delete(const Resource& r, const std::string& ns, const std::string& name,
                const std::string& precondition_rv = "") override;
  Result<ListPage> List(const Resource& r, const std::string& ns,
                        const ListOptions& options) override;
  Status Watch(const Resource& r, const std::string& ns, const WatchOptions& options,
               const std::function<bool(WatchEvent&&)>& on_event, Cancellation* cancel) override;

  // Requests sent (each attempt counts), for tests and benchmarks.
  uint64_t requests_sent() const;

  struct Impl;

 private:
  explicit HttpApi(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// For command-line tools (istio-ca inspect --secret NS/NAME, --all-namespaces): the kubeconfig
// at `kubeconfig`, or the in-cluster config when it is empty. Then e.g.
//   ListSecrets(*api, "", kIstioSecretSelector) or GetSecret(*api, ns, name) (k8s/objects.h).
Result<std::unique_ptr<Api>> Connect(const std::string& kubeconfig);

// "a=b&c=d" with values percent-encoded.
std::string EncodeQuery(const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace istioca::k8s
