// ca/monitoring.h — the monitoring port: /metrics, /healthz, /readyz, /version, and the pages
// the daemon adds with Handle() (the status page, /status.json).
//
// /metrics serves a MetricsRegistry in Prometheus text format. Istio's counters are named
// `*_count` without `_total` (client_golang of their era); Prometheus' linter (promtool check
// metrics) rejects a counter with that name, so those families are exposed with TYPE untyped —
// what a Prometheus server treats them as anyway, so rate() and Istio's dashboards keep working
// under the exact Istio names.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/metrics.h"
#include "base/status.h"

namespace httplib {
class Server;
}

namespace istioca::ca {

// Render() with Istio's `_count` counters re-typed as untyped (see above).
std::string RenderPrometheus(const MetricsRegistry& registry);

struct Readiness {
  bool ready = false;
  std::string detail;  // "ca=loaded controller=synced" or what is missing
};

class MonitoringServer {
 public:
  MonitoringServer(MetricsRegistry& metrics, std::function<Readiness()> readiness);
  ~MonitoringServer();
  // Serves GET `path` with what `body` returns (call before Start).
  void Handle(const std::string& path, const std::string& content_type,
              std::function<std::string()> body);
  // Binds host:port (port 0: any free port, for tests) and serves on a thread.
  Status Start(const std::string& host, int port);
  int port() const { return port_; }
  void Stop();

 private:
  MetricsRegistry& metrics_;
  std::function<Readiness()> readiness_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace istioca::ca
