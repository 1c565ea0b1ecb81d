// k8s/informer.h — keeps a consumer in step with one resource: list (paged), then watch from
// the list's resourceVersion with bookmarks; on a dropped watch, re-watch from the last seen
// RV after a jittered backoff; on 410 Gone (HTTP status or ERROR event) list again and report
// what disappeared meanwhile as deletions; every `resync` period, tell the consumer to
// re-check everything (level-triggered repair of anything an event missed).
//
// Memory: the informer keeps only key → resourceVersion; the consumer keeps what its decisions
// need (the CA keeps SA names, not whole objects). Events for an unchanged RV are not
// re-delivered after a relist.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <unordered_map>

#include "k8s/api.h"
#include "k8s/rate.h"

namespace istioca::k8s {

class InformerHandler {
 public:
  virtual ~InformerHandler() = default;
  // A new object, or a new version of one (ADDED, MODIFIED, or found by a list).
  virtual void OnUpsert(const Json& object) = 0;
  // Gone: a DELETED event, or missing from a relist (then `last` holds only the metadata).
  virtual void OnDelete(const std::string& ns, const std::string& name, const Json& last) = 0;
  // After each complete list: the consumer's view now matches the server's.
  virtual void OnSynced() {}
  // Every resync period.
  virtual void OnResync() {}
};

struct InformerOptions {
  Resource resource;
  std::string ns;              // "" = all namespaces
  std::string field_selector;  // e.g. type=istio.io/key-and-cert
  int64_t page_size = 500;
  SteadyDuration resync = std::chrono::minutes(1);
  SteadyDuration min_backoff = std::chrono::milliseconds(200);
  SteadyDuration max_backoff = std::chrono::seconds(30);
  int watch_timeout_seconds = 300;
  // When a resync is due. Null: the system clock.
  const Clock* clock = nullptr;
};

struct InformerStats {
  uint64_t lists = 0;  // complete lists (initial + relists)
  uint64_t relists_gone = 0;
  uint64_t watches = 0;  // watch requests made
  uint64_t watch_errors = 0;
  uint64_t events = 0;
};

class Informer {
 public:
  Informer(Api& api, InformerOptions options, InformerHandler& handler);
  // Runs until `cancel` fires. Call from one thread.
  void Run(Cancellation& cancel);
  bool synced() const { return synced_.load(); }
  size_t size() const;
  InformerStats stats() const;

 private:
  Status ListAndSync();
  // Watches until the stream ends; sets *gone on 410.
  Status WatchOnce(Cancellation& cancel, bool* gone);
  bool Sleep(Cancellation& cancel, SteadyDuration d);
  void MaybeResync();

  Api& api_;
  const InformerOptions options_;
  InformerHandler& handler_;
  std::atomic<bool> synced_{false};
  std::string rv_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, std::string> known_;  // "ns/name" → resourceVersion
  InformerStats stats_;
  const Clock& clock_;
  TimePoint next_resync_{};
};

}  // namespace istioca::k8s
