// ca/local_backend.h — local-directory mode: service accounts and secrets as files.
//
//   DIR/serviceaccounts/<ns>/<sa>         a file here means the service account exists
//   DIR/secrets/<ns>/istio.<sa>/          what a sidecar would mount at /etc/certs:
//       cert-chain.pem -> ..data/cert-chain.pem
//       key.pem        -> ..data/key.pem          (0600)
//       root-cert.pem  -> ..data/root-cert.pem
//       ..data         -> ..<generation>          (swapped atomically with rename(2))
//       ..<generation>/{cert-chain.pem,key.pem,root-cert.pem}
//
// Publication is kubelet's atomic-writer scheme: a new generation directory is written in full,
// then the `..data` symlink is replaced by rename, so a reader that resolves `..data` once never
// sees a half-written file or a key from one issuance with a certificate from another; a crash
// before the rename leaves the previous generation published (the orphan is removed later). A
// new secret directory is built under a temporary name and renamed into place. Files are not
// fsynced: the guarantee is against process crashes and concurrent readers, not power loss.
//
// Changes are found by a bounded poll (every 200 ms) of both trees — names only, no file
// contents — so additions and deletions take effect well within a second. Changed file contents
// inside a secret (corruption) are found by the controller's periodic resync. Names that are not
// valid Kubernetes names are skipped with one log line each.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/files.h"
#include "base/periodic.h"
#include "base/status.h"
#include "ca/controller/controller.h"

namespace istioca::ca {

// Kubernetes names: a namespace is an RFC 1123 label (≤ 63), a service account an RFC 1123
// subdomain (≤ 253).
bool ValidNamespaceName(std::string_view name);
bool ValidServiceAccountName(std::string_view name);

// Directory listings re-read only when the directory's mtime changed, and in full every
// `full_every` passes (two changes within one timestamp tick leave the mtime unchanged). Keeps
// an idle poll of 10,000 service accounts to a few stat calls.
class ListingCache {
 public:
  using Entries = std::vector<std::pair<std::string, unsigned char>>;  // name, d_type
  explicit ListingCache(int full_every = 25) : full_every_(full_every) {}
  // Starts a pass; every full_every-th pass ignores the cache.
  void BeginPass();
  const Entries& Read(const std::string& path);

 private:
  struct Cached {
    int64_t mtime_ns = -1;
    Entries entries;
  };
  const int full_every_;
  int pass_ = 0;
  bool full_ = true;
  std::map<std::string, Cached> dirs_;
};

// Polls a tree on a thread and reports keys that appeared or disappeared.
class DirectoryPoller {
 public:
  using Scan = std::function<std::set<ServiceAccountKey>()>;
  DirectoryPoller(Scan scan, std::chrono::milliseconds interval)
      : scan_(std::move(scan)), interval_(interval) {}
  ~DirectoryPoller() { Stop(); }
  void SetHandler(std::function<void(const ServiceAccountKey&)> h) { handler_ = std::move(h); }
  // Scans once synchronously, then polls until Stop().
  void Start();
  void Stop();
  // One pass: rescan and notify differences. Tests call it instead of waiting.
  void PollOnce();
  std::set<ServiceAccountKey> Snapshot() const;
  bool Synced() const { return synced_; }

 private:
  Scan scan_;
  const std::chrono::milliseconds interval_;
  std::function<void(const ServiceAccountKey&)> handler_;
  mutable std::mutex mu_;
  std::set<ServiceAccountKey> keys_;
  std::atomic<bool> synced_{false};
  PeriodicThread thread_;
};

// DIR/serviceaccounts/<ns>/<sa>.
class LocalServiceAccounts final : public ServiceAccountSource {
 public:
  explicit LocalServiceAccounts(std::string dir,
                                std::chrono::milliseconds poll = std::chrono::milliseconds(200));
  void SetHandler(std::function<void(const ServiceAccountKey&)> on_change) override;
  Status Start() override;
  void Stop() override { poller_.Stop(); }
  bool HasSynced() const override { return poller_.Synced(); }
  Result<std::vector<ServiceAccountKey>> List() const override;
  Result<bool> Exists(const ServiceAccountKey& key) const override;
  void PollOnce() { poller_.PollOnce(); }

 private:
  std::set<ServiceAccountKey> Scan();
  const std::string root_;
  mutable std::mutex mu_;
  std::set<std::string> logged_invalid_;
  ListingCache listings_;  // used by the poller thread only
  DirectoryPoller poller_;
};

// DIR/secrets/<ns>/istio.<sa>/.
class LocalSecretStore final : public SecretStore {
 public:
  explicit LocalSecretStore(std::string dir,
                            std::chrono::milliseconds poll = std::chrono::milliseconds(200));
  std::string SecretDir(const ServiceAccountKey& key) const;

  void SetHandler(std::function<void(const ServiceAccountKey&)> on_change) override;
  // Creates the tree if missing and removes leftovers of an interrupted publication.
  Status Start() override;
  void Stop() override { poller_.Stop(); }
  bool HasSynced() const override { return poller_.Synced(); }
  Result<std::vector<ServiceAccountKey>> List() const override;
  Result<WorkloadSecret> Get(const ServiceAccountKey& key) const override;
  Status Create(const ServiceAccountKey& key, const WorkloadSecret& secret) override;
  Status Update(const ServiceAccountKey& key, const WorkloadSecret& secret) override;
  Status Delete(const ServiceAccountKey& key) override;
  void PollOnce() { poller_.PollOnce(); }

 private:
  // cached: the poller's incremental view; List() scans afresh.
  std::set<ServiceAccountKey> Scan(ListingCache* cached) const;
  void NoteOwnChange(const ServiceAccountKey& key);
  const std::string root_;
  std::atomic<uint64_t> counter_{0};
  std::mutex own_mu_;
  std::set<ServiceAccountKey> own_changes_;
  ListingCache listings_;  // used by the poller thread only
  DirectoryPoller poller_;
};

}  // namespace istioca::ca
