// base/metrics.h — a small Prometheus registry (text exposition format 0.0.4).
//
// Families are registered by name once (type and help fixed at first registration); each
// label set is a child. Returned references stay valid for the registry's lifetime, so hot
// paths keep them and pay one atomic add per event. Gauge functions are evaluated at render.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace istioca {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Snap() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // non-cumulative, bounds + 1 (+Inf)
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Default latency buckets in seconds: 0.5 ms .. 10 s.
std::vector<double> LatencyBuckets();

class MetricsRegistry;

// Keeps a gauge function registered; destroying (or Reset()) removes it, so a function that
// captures an object's pointer is removed before the object dies. Once Reset() returns, the
// function is not running and will not run again. Move-only.
class [[nodiscard]] GaugeFunctionHandle {
 public:
  GaugeFunctionHandle() = default;
  GaugeFunctionHandle(MetricsRegistry* registry, std::string name, Labels labels, uint64_t id)
      : registry_(registry), name_(std::move(name)), labels_(std::move(labels)), id_(id) {}
  GaugeFunctionHandle(GaugeFunctionHandle&& other) noexcept { *this = std::move(other); }
  GaugeFunctionHandle& operator=(GaugeFunctionHandle&& other) noexcept;
  GaugeFunctionHandle(const GaugeFunctionHandle&) = delete;
  GaugeFunctionHandle& operator=(const GaugeFunctionHandle&) = delete;
  ~GaugeFunctionHandle() { Reset(); }
  void Reset();

 private:
  MetricsRegistry* registry_ = nullptr;
  std::string name_;
  Labels labels_;
  uint64_t id_ = 0;
};

class MetricsRegistry {
 public:
  Counter& GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& bounds, const Labels& labels = {});
  // A gauge whose value is computed when /metrics is scraped (e.g. an expiry timestamp).
  // Replaces any earlier function for the same name and labels. The function stays registered
  // while the returned handle lives (an earlier handle for a replaced function removes nothing).
  GaugeFunctionHandle SetGaugeFunction(const std::string& name, const std::string& help,
                                       const Labels& labels, std::function<double()> fn);

  std::string Render() const;

  // The process-wide registry that /metrics serves.
  static MetricsRegistry& Default();

 private:
  friend class GaugeFunctionHandle;
  void RemoveGaugeFunction(const std::string& name, const Labels& labels, uint64_t id);

  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
    struct GaugeFn {
      uint64_t id;
      std::function<double()> fn;
    };
    std::map<Labels, GaugeFn> gauge_fns;
    std::map<Labels, std::unique_ptr<Histogram>> histograms;
  };
  Family& GetFamily(const std::string& name, const std::string& help, Type type);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  uint64_t next_gauge_fn_id_ = 1;
};

}  // namespace istioca
