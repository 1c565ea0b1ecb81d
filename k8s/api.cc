#include "k8s/api.h"

#include "k8s/errors.h"

namespace istioca::k8s {

const Resource kSecrets{"/api/v1", "secrets", "Secret", "v1", true};
const Resource kConfigMaps{"/api/v1", "configmaps", "ConfigMap", "v1", true};
const Resource kNamespaces{"/api/v1", "namespaces", "Namespace", "v1", false};
const Resource kServiceAccounts{"/api/v1", "serviceaccounts", "ServiceAccount", "v1", true};
const Resource kLeases{"/apis/coordination.k8s.io/v1", "leases", "Lease", "coordination.k8s.io/v1",
                       true};
const Resource kTokenReviews{"/apis/authentication.k8s.io/v1", "tokenreviews", "TokenReview",
                             "authentication.k8s.io/v1", false};

std::string Resource::Path(const std::string& ns, const std::string& name) const {
  std::string p = prefix;
  if (namespaced && !ns.empty()) p += "/namespaces/" + ns;
  p += "/" + plural;
  if (!name.empty()) p += "/" + name;
  return p;
}

void Cancellation::Cancel() {
  // Callbacks run under the lock so that Remove() returning means its callback is not running
  // and never will (the owner may then destroy what the callback touches).
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  for (auto& [id, fn] : callbacks_) fn();
  callbacks_.clear();
}

int Cancellation::OnCancel(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mu_);
  if (cancelled_) {
    lock.unlock();
    fn();
    return -1;
  }
  callbacks_.emplace_back(++next_id_, std::move(fn));
  return next_id_;
}

void Cancellation::Remove(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(callbacks_, [id](const auto& p) { return p.first == id; });
}

Result<ListPage> ListAll(Api& api, const Resource& r, const std::string& ns, ListOptions options,
                         int max_restarts) {
  const ListOptions first = options;
  ListPage all;
  for (int restarts = 0;;) {
    auto page = api.List(r, ns, options);
    if (!page.ok()) {
      // The snapshot behind a continue token was compacted away: start over rather than
      // stitch an inconsistent list together (client-go's pager does the same).
      if (IsGone(page.status()) && !options.continue_token.empty() && restarts < max_restarts) {
        ++restarts;
        options = first;
        all = ListPage();
        continue;
      }
      return page.status();
    }
    if (all.resource_version.empty()) all.resource_version = page->resource_version;
    for (auto& item : page->items) all.items.push_back(std::move(item));
    if (page->continue_token.empty()) break;
    options.continue_token = page->continue_token;
  }
  return all;
}

Result<Json> UpdateWithRetry(Api& api, const Resource& r, const std::string& ns,
                             const std::string& name,
                             const std::function<Result<bool>(Json&)>& mutate, int attempts) {
  Status last;
  for (int i = 0; i < attempts; ++i) {
    ASSIGN_OR_RETURN(Json object, api.Get(r, ns, name));
    ASSIGN_OR_RETURN(bool changed, mutate(object));
    if (!changed) return object;
    auto updated = api.Update(r, ns, object);
    if (updated.ok() || !IsConflict(updated.status())) return updated;
    last = updated.status();
  }
  return last;
}

}  // namespace istioca::k8s
