#include "k8s/informer.h"

#include "base/log.h"
#include "k8s/errors.h"

namespace istioca::k8s {
namespace {

std::string KeyOf(const Json& object, std::string* rv) {
  const Json& md = object["metadata"];
  *rv = md.value("resourceVersion", "");
  return md.value("namespace", "") + "/" + md.value("name", "");
}

}  // namespace

Informer::Informer(Api& api, InformerOptions options, InformerHandler& handler)
    : api_(api),
      options_(std::move(options)),
      handler_(handler),
      clock_(options_.clock != nullptr ? *options_.clock : SystemClock::Get()) {}

size_t Informer::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return known_.size();
}

InformerStats Informer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

bool Informer::Sleep(Cancellation& cancel, SteadyDuration d) {
  // Cancel() wakes the wait; the callback is removed before returning, so it never outlives us.
  int id = cancel.OnCancel([this] {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, d, [&] { return cancel.cancelled(); });
  }
  cancel.Remove(id);
  return !cancel.cancelled();
}

void Informer::MaybeResync() {
  const TimePoint now = clock_.Now();
  if (options_.resync <= SteadyDuration::zero() || now < next_resync_) return;
  next_resync_ = now + std::chrono::duration_cast<Duration>(options_.resync);
  handler_.OnResync();
}

Status Informer::ListAndSync() {
  ListOptions o;
  o.field_selector = options_.field_selector;
  o.limit = options_.page_size;
  ASSIGN_OR_RETURN(ListPage page, ListAll(api_, options_.resource, options_.ns, o));
  std::unordered_map<std::string, std::string> seen;
  seen.reserve(page.items.size());
  std::vector<const Json*> changed;
  std::vector<std::string> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& item : page.items) {
      std::string rv;
      std::string key = KeyOf(item, &rv);
      auto it = known_.find(key);
      if (it == known_.end() || it->second != rv) changed.push_back(&item);
      seen.emplace(std::move(key), std::move(rv));
    }
    for (const auto& [key, rv] : known_) {
      if (!seen.contains(key)) gone.push_back(key);
    }
    known_ = std::move(seen);
    ++stats_.lists;
  }
  for (const std::string& key : gone) {
    auto slash = key.find('/');
    std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
    handler_.OnDelete(ns, name, Json{{"metadata", {{"namespace", ns}, {"name", name}}}});
  }
  for (const Json* item : changed) handler_.OnUpsert(*item);
  rv_ = page.resource_version;
  return OkStatus();
}

Status Informer::WatchOnce(Cancellation& cancel, bool* gone) {
  WatchOptions w;
  w.resource_version = rv_;
  w.field_selector = options_.field_selector;
  w.bookmarks = true;
  // A watch ends by itself at least once per resync period, so a quiet stream cannot delay it.
  w.timeout_seconds = options_.watch_timeout_seconds;
  if (options_.resync > SteadyDuration::zero()) {
    auto resync_s = std::chrono::ceil<std::chrono::seconds>(options_.resync).count();
    w.timeout_seconds =
        static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(w.timeout_seconds, resync_s)));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.watches;
  }
  Status event_error;
  Status st = api_.Watch(
      options_.resource, options_.ns, w,
      [&](WatchEvent&& ev) {
        const Json& md = ev.object.is_object() ? ev.object["metadata"] : Json();
        if (ev.type == "ERROR") {
          int code = ev.object.value("code", 0);
          if (code == 410) {
            *gone = true;
          } else {
            event_error = StatusFromHttp(code, ev.object.dump());
          }
          return false;
        }
        std::string rv = md.is_object() ? md.value("resourceVersion", "") : "";
        if (ev.type == "BOOKMARK") {
          if (!rv.empty()) rv_ = rv;
          MaybeResync();
          return !cancel.cancelled();
        }
        std::string ignored;
        std::string key = KeyOf(ev.object, &ignored);
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++stats_.events;
          if (ev.type == "DELETED") {
            known_.erase(key);
          } else {
            known_[key] = rv;
          }
        }
        if (ev.type == "DELETED") {
          handler_.OnDelete(md.value("namespace", ""), md.value("name", ""), ev.object);
        } else if (ev.type == "ADDED" || ev.type == "MODIFIED") {
          handler_.OnUpsert(ev.object);
        }
        if (!rv.empty()) rv_ = rv;
        MaybeResync();
        return !cancel.cancelled();
      },
      &cancel);
  if (!st.ok() && IsGone(st)) *gone = true;
  if (st.ok() && !event_error.ok()) return event_error;
  return st;
}

void Informer::Run(Cancellation& cancel) {
  auto log = Logger("k8s");
  Backoff backoff(options_.min_backoff, options_.max_backoff, kBackoffJitter);
  const std::string what =
      options_.resource.plural + (options_.ns.empty() ? "" : " ns=" + options_.ns);
  next_resync_ = clock_.Now() + std::chrono::duration_cast<Duration>(options_.resync);
  while (!cancel.cancelled()) {
    Status st = ListAndSync();
    if (!st.ok()) {
      log->warn("list failed resource={} error={}", what, st.message());
      if (!Sleep(cancel, backoff.Next())) return;
      continue;
    }
    synced_ = true;
    handler_.OnSynced();
    backoff.Reset();
    while (!cancel.cancelled()) {
      MaybeResync();
      bool gone = false;
      st = WatchOnce(cancel, &gone);
      if (cancel.cancelled()) return;
      if (gone) {
        log->info("watch expired, relisting resource={} rv={}", what, rv_);
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.relists_gone;
        break;
      }
      if (st.ok()) {
        backoff.Reset();
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.watch_errors;
      }
      log->debug("watch ended with error resource={} error={}", what, st.message());
      if (!Sleep(cancel, backoff.Next())) return;
    }
  }
}

}  // namespace istioca::k8s
