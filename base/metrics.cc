#include "base/metrics.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace istioca {
namespace {

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
  }
  return buf;
}

std::string EscapeLabel(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string LabelText(const Labels& labels, const std::string& extra_key = "",
                      const std::string& extra_value = "") {
  if (labels.empty() && extra_key.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ",";
    first = false;
    out += k + "=\"" + EscapeLabel(v) + "\"";
  }
  if (!extra_key.empty()) {
    if (!first) out += ",";
    out += extra_key + "=\"" + extra_value + "\"";
  }
  return out + "}";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Snap() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;  // consistent with the buckets even under concurrent observation
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

MetricsRegistry& MetricsRegistry::Default() {
  static MetricsRegistry* registry = new MetricsRegistry;
  return *registry;
}

MetricsRegistry::Family& MetricsRegistry::GetFamily(const std::string& name,
                                                    const std::string& help, Type type) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.type = type;
    it->second.help = help;
  } else if (it->second.type != type) {
    // A programming error: two components disagree about a metric's type.
    throw std::logic_error("metric " + name + " registered with two types");
  }
  return it->second;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help,
                                     const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = GetFamily(name, help, Type::kCounter).counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help,
                                 const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = GetFamily(name, help, Type::kGauge).gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const std::vector<double>& bounds, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = GetFamily(name, help, Type::kHistogram).histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(bounds);
  return *slot;
}

GaugeFunctionHandle MetricsRegistry::SetGaugeFunction(const std::string& name,
                                                      const std::string& help, const Labels& labels,
                                                      std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_gauge_fn_id_++;
  GetFamily(name, help, Type::kGauge).gauge_fns[labels] = Family::GaugeFn{id, std::move(fn)};
  return GaugeFunctionHandle(this, name, labels, id);
}

void MetricsRegistry::RemoveGaugeFunction(const std::string& name, const Labels& labels,
                                          uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto family = families_.find(name);
  if (family == families_.end()) return;
  auto it = family->second.gauge_fns.find(labels);
  if (it != family->second.gauge_fns.end() && it->second.id == id) {
    family->second.gauge_fns.erase(it);
  }
}

GaugeFunctionHandle& GaugeFunctionHandle::operator=(GaugeFunctionHandle&& other) noexcept {
  if (this != &other) {
    Reset();
    registry_ = std::exchange(other.registry_, nullptr);
    name_ = std::move(other.name_);
    labels_ = std::move(other.labels_);
    id_ = other.id_;
  }
  return *this;
}

void GaugeFunctionHandle::Reset() {
  if (registry_ == nullptr) return;
  std::exchange(registry_, nullptr)->RemoveGaugeFunction(name_, labels_, id_);
}

std::string MetricsRegistry::Render() const {
  // Gauge functions run under the registry lock: they must not touch the registry.
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, f] : families_) {
    const char* type = f.type == Type::kCounter ? "counter"
                       : f.type == Type::kGauge ? "gauge"
                                                : "histogram";
    out += "# HELP " + name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, c] : f.counters) {
      out += name + LabelText(labels) + " " + FormatValue(c->Value()) + "\n";
    }
    for (const auto& [labels, g] : f.gauges) {
      out += name + LabelText(labels) + " " + FormatValue(g->Value()) + "\n";
    }
    for (const auto& [labels, g] : f.gauge_fns) {
      out += name + LabelText(labels) + " " + FormatValue(g.fn()) + "\n";
    }
    for (const auto& [labels, h] : f.histograms) {
      const Histogram::Snapshot s = h->Snap();
      for (size_t i = 0; i < s.bounds.size(); ++i) {
        out += name + "_bucket" + LabelText(labels, "le", FormatValue(s.bounds[i])) + " " +
               std::to_string(s.cumulative[i]) + "\n";
      }
      out +=
          name + "_bucket" + LabelText(labels, "le", "+Inf") + " " + std::to_string(s.count) + "\n";
      out += name + "_sum" + LabelText(labels) + " " + FormatValue(s.sum) + "\n";
      out += name + "_count" + LabelText(labels) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

}  // namespace istioca
