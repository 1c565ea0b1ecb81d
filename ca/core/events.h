// ca/core/events.h — what the CA did or refused, as the audit log and the status page show it.
//
// Promises: every part that issues, refuses, writes a workload secret or changes the CA's trust
// reports one CaEvent to an EventSink. An event never carries a private key or a token (callers
// put identities, serials, reasons and times in it, nothing else). RecentEvents keeps the latest
// events of each type in bounded memory for the status page; FanOut sends one event to several
// sinks (the audit log file and RecentEvents).
//
// Does not promise: delivery to a sink that is slow (sinks must return quickly; the audit log
// writes from its own buffer), or ordering across threads beyond each event's own time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/time.h"

namespace istioca::ca {

struct CaEvent {
  TimePoint time{};
  // "issued", "refused", "secret_created", "secret_refreshed", "secret_deleted", "ca_changed",
  // "trust_transition".
  std::string type;
  // Flat string fields, e.g. {"serial", ...}, {"spiffe_id", ...}, {"caller", ...},
  // {"authn", "mtls"|"token"|"controller"}, {"api", "modern"|"legacy"|"controller"},
  // {"ttl_seconds", ...}, {"not_after", RFC 3339}, {"code", ...}, {"reason", ...}.
  std::map<std::string, std::string> fields;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Thread-safe and quick.
  virtual void Record(const CaEvent& event) = 0;
};

// The latest `per_type` events of each type, newest last.
class RecentEvents final : public EventSink {
 public:
  explicit RecentEvents(size_t per_type = 200) : per_type_(per_type) {}
  void Record(const CaEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::deque<CaEvent>& q = by_type_[event.type];
    q.push_back(event);
    while (q.size() > per_type_) q.pop_front();
  }
  // Every kept event of `types` (all types when empty), oldest first.
  std::vector<CaEvent> Snapshot(const std::vector<std::string>& types = {}) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<CaEvent> out;
    for (const auto& [type, q] : by_type_) {
      bool wanted = types.empty();
      for (const std::string& t : types) wanted = wanted || t == type;
      if (wanted) out.insert(out.end(), q.begin(), q.end());
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const CaEvent& a, const CaEvent& b) { return a.time < b.time; });
    return out;
  }

 private:
  const size_t per_type_;
  mutable std::mutex mu_;
  std::map<std::string, std::deque<CaEvent>> by_type_;
};

class FanOut final : public EventSink {
 public:
  void Add(std::shared_ptr<EventSink> sink) {
    std::lock_guard<std::mutex> lock(mu_);
    sinks_.push_back(std::move(sink));
  }
  void Record(const CaEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& s : sinks_) s->Record(event);
  }

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<EventSink>> sinks_;
};

}  // namespace istioca::ca
