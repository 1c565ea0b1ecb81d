// k8s/api.h — the narrow interface to the Kubernetes API: get, create, update, delete, list,
// watch, on JSON objects of a known resource. Everything above it (typed objects, informers,
// the CA's backends) goes through this interface, so a test can put any implementation under
// them. A Conflict on update is not retried blindly anywhere in the CA: the secret store reports
// it to the controller, which re-reads and decides again, and the lease elector re-reads and
// decides again on its next round (UpdateWithRetry below is not used by either; see there).
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"

namespace istioca::k8s {

using Json = nlohmann::json;

// Where a resource lives in the API: "/api/v1" + "secrets", "/apis/coordination.k8s.io/v1" +
// "leases". `kind` and `api_version` fill objects sent without them.
struct Resource {
  std::string prefix;
  std::string plural;
  std::string kind;
  std::string api_version;
  bool namespaced = true;

  // "/api/v1/namespaces/<ns>/secrets[/<name>]"; ns empty = all namespaces.
  std::string Path(const std::string& ns, const std::string& name = "") const;
};

extern const Resource kSecrets;
extern const Resource kConfigMaps;
extern const Resource kNamespaces;  // cluster-scoped
extern const Resource kServiceAccounts;
extern const Resource kLeases;
extern const Resource kTokenReviews;

struct ListOptions {
  std::string field_selector;
  std::string label_selector;
  int64_t limit = 0;             // page size; 0 = everything at once
  std::string continue_token;    // from the previous page
  std::string resource_version;  // "" = most recent (consistent read)
};

struct ListPage {
  std::vector<Json> items;
  std::string resource_version;  // the snapshot the list was read at: watch from here
  std::string continue_token;    // empty on the last page
};

struct WatchOptions {
  std::string resource_version;
  std::string field_selector;
  std::string label_selector;
  bool bookmarks = true;
  int timeout_seconds = 300;  // the server ends the stream cleanly after this
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
  Json object;
};

// Lets another thread end a blocking call (a watch) early. Cancel() is sticky.
class Cancellation {
 public:
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }
  // `fn` runs on Cancel() (at once if already cancelled). Returns an id for Remove().
  int OnCancel(std::function<void()> fn);
  void Remove(int id);

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  int next_id_ = 0;
  std::vector<std::pair<int, std::function<void()>>> callbacks_;
};

class Api {
 public:
  virtual ~Api() = default;
  virtual Result<Json> Get(const Resource& r, const std::string& ns, const std::string& name) = 0;
  virtual Result<Json> Create(const Resource& r, const std::string& ns, const Json& object) = 0;
  // PUT; the object's metadata.resourceVersion makes it conditional (409 Conflict if stale).
  virtual Result<Json> Update(const Resource& r, const std::string& ns, const Json& object) = 0;
  // `precondition_rv` non-empty: delete only that version (409 Conflict otherwise).
  virtual Status Delete(const Resource& r, const std::string& ns, const std::string& name,
                        const std::string& precondition_rv = "") = 0;
  virtual Result<ListPage> List(const Resource& r, const std::string& ns,
                                const ListOptions& options) = 0;
  // Streams events to `on_event` until the server ends the stream (OK), `on_event` returns
  // false (OK), `cancel` fires (OK), or an error. An HTTP error status is returned as a Status;
  // an ERROR event is handed to on_event like any other.
  virtual Status Watch(const Resource& r, const std::string& ns, const WatchOptions& options,
                       const std::function<bool(WatchEvent&&)>& on_event, Cancellation* cancel) = 0;
  // POST to a non-stored resource (TokenReview): same as Create, named for what it does.
  virtual Result<Json> Post(const Resource& r, const std::string& ns, const Json& body) {
    return Create(r, ns, body);
  }
};

// Every page of a list, concatenated; the RV is the first page's (all pages share it). An
// expired continue token (410) restarts the list from the beginning, at most `max_restarts`.
Result<ListPage> ListAll(Api& api, const Resource& r, const std::string& ns, ListOptions options,
                         int max_restarts = 3);

// Read-modify-write: Get, let `mutate` change the object, Update with its resourceVersion; on
// Conflict read again and retry (up to `attempts` in all). `mutate` returns false when the
// object already says what we want: then nothing is written. Returns the stored object.
// A NotFound from Get is returned to the caller, who decides whether to create.
// Only for a change that is right whatever the object now says (e.g. setting a label): the
// workload secrets and the Lease are not updated through it, because after a Conflict what to
// write depends on what the other writer did (the controller or the elector decides again).
Result<Json> UpdateWithRetry(Api& api, const Resource& r, const std::string& ns,
                             const std::string& name,
                             const std::function<Result<bool>(Json&)>& mutate, int attempts = 5);

}  // namespace istioca::k8s
