#include "ca/daemon/monitoring.h"

#include <httplib.h>

#include <sstream>

#include "base/log.h"
#include "base/version.h"

namespace istioca::ca {

std::string RenderPrometheus(const MetricsRegistry& registry) {
  std::istringstream in(registry.Render());
  std::string out, line;
  const std::string type_prefix = "# TYPE ";
  while (std::getline(in, line)) {
    if (line.rfind(type_prefix, 0) == 0) {
      const size_t sp = line.find(' ', type_prefix.size());
      const std::string name = line.substr(type_prefix.size(), sp - type_prefix.size());
      const std::string type = sp == std::string::npos ? "" : line.substr(sp + 1);
      if (type == "counter" && name.size() > 6 && name.compare(name.size() - 6, 6, "_count") == 0) {
        line = type_prefix + name + " untyped";
      }
    }
    out += line;
    out += '\n';
  }
  return out;
}

MonitoringServer::MonitoringServer(MetricsRegistry& metrics, std::function<Readiness()> readiness)
    : metrics_(metrics),
      readiness_(std::move(readiness)),
      server_(std::make_unique<httplib::Server>()) {
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderPrometheus(metrics_), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    const Readiness r = readiness_();
    res.status = r.ready ? 200 : 503;
    res.set_content((r.ready ? "ready " : "not ready ") + r.detail + "\n", "text/plain");
  });
  server_->Get("/version", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(VersionLong() + "\n", "text/plain");
  });
}

void MonitoringServer::Handle(const std::string& path, const std::string& content_type,
                              std::function<std::string()> body) {
  server_->Get(path, [content_type, body = std::move(body)](const httplib::Request&,
                                                            httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(body(), content_type);
  });
}

MonitoringServer::~MonitoringServer() { Stop(); }

Status MonitoringServer::Start(const std::string& host, int port) {
  // One request per connection: httplib lets an idle keep-alive connection hold Stop() for its
  // whole keep-alive timeout (5 s), so a scraper's open connection delayed SIGTERM by 5 s.
  server_->set_keep_alive_max_count(1);
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
    if (port_ <= 0) return Unavailable("cannot bind the monitoring port on " + host);
  } else {
    if (!server_->bind_to_port(host, port)) {
      return Unavailable("cannot bind the monitoring port " + host + ":" + std::to_string(port) +
                         " (in use?)");
    }
    port_ = port;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  Logger("monitoring")->info("monitoring server listening address={}:{}", host, port_);
  return OkStatus();
}

void MonitoringServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace istioca::ca
