#include "ca/local/local_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/files.h"
#include "base/log.h"

namespace istioca::ca {
namespace {

namespace fs = std::filesystem;

bool IsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-') return false;
  }
  return true;
}

const char* const kFiles[] = {kCertChainKey, kPrivateKeyKey, kRootCertKey};
constexpr const char* kDataLink = "..data";

std::vector<FileToPublish> SecretFiles(const WorkloadSecret& secret) {
  return {{kCertChainKey, secret.cert_chain_pem, 0644},
          {kPrivateKeyKey, secret.key_pem.view(), 0600},
          {kRootCertKey, secret.root_cert_pem, 0644}};
}

}  // namespace

bool ValidNamespaceName(std::string_view name) { return IsLabel(name); }

bool ValidServiceAccountName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    if (!IsLabel(name.substr(start, dot == std::string_view::npos ? dot : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// ---- ListingCache ---------------------------------------------------------------------------

void ListingCache::BeginPass() { full_ = pass_++ % full_every_ == 0; }

const ListingCache::Entries& ListingCache::Read(const std::string& path) {
  Cached& c = dirs_[path];
  struct stat st;
  const int64_t mtime = stat(path.c_str(), &st) == 0
                            ? int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec
                            : -2;
  if (full_ || mtime != c.mtime_ns) {
    c.entries = mtime == -2 ? Entries{} : ReadDir(path);
    c.mtime_ns = mtime;
  }
  return c.entries;
}

// ---- DirectoryPoller ------------------------------------------------------------------------

void DirectoryPoller::Start() {
  if (thread_.running()) return;
  PollOnce();
  thread_.Every(interval_, [this] { PollOnce(); });
}

void DirectoryPoller::Stop() { thread_.Stop(); }

void DirectoryPoller::PollOnce() {
  std::set<ServiceAccountKey> now = scan_();
  std::vector<ServiceAccountKey> changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::set_symmetric_difference(now.begin(), now.end(), keys_.begin(), keys_.end(),
                                  std::back_inserter(changed));
    keys_ = std::move(now);
  }
  // The first listing is the initial sync, which the controller's full pass covers; only
  // later differences are events.
  const bool initial = !synced_.exchange(true);
  if (handler_ && !initial) {
    for (const ServiceAccountKey& k : changed) handler_(k);
  }
}

std::set<ServiceAccountKey> DirectoryPoller::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_;
}

// ---- LocalServiceAccounts -------------------------------------------------------------------

LocalServiceAccounts::LocalServiceAccounts(std::string dir, std::chrono::milliseconds poll)
    : root_(std::move(dir) + "/serviceaccounts"), poller_([this] { return Scan(); }, poll) {}

void LocalServiceAccounts::SetHandler(std::function<void(const ServiceAccountKey&)> on_change) {
  poller_.SetHandler(std::move(on_change));
}

Status LocalServiceAccounts::Start() {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return Unavailable("cannot create " + root_, ec.message());
  poller_.Start();
  return OkStatus();
}

std::set<ServiceAccountKey> LocalServiceAccounts::Scan() {
  std::set<ServiceAccountKey> out;
  auto invalid = [this](const std::string& path, const char* what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (logged_invalid_.insert(path).second) {
      Logger("local")->warn("ignoring {} that is not a valid Kubernetes name path={}", what, path);
    }
  };
  listings_.BeginPass();
  for (const auto& [ns, ns_type] : listings_.Read(root_)) {
    if (ns[0] == '.' || ns_type != DT_DIR) continue;
    if (!ValidNamespaceName(ns)) {
      invalid(root_ + "/" + ns, "namespace");
      continue;
    }
    for (const auto& [sa, sa_type] : listings_.Read(root_ + "/" + ns)) {
      if (sa[0] == '.' || sa_type == DT_DIR) continue;
      if (!ValidServiceAccountName(sa)) {
        invalid(root_ + "/" + ns + "/" + sa, "service account");
        continue;
      }
      out.insert({ns, sa});
    }
  }
  return out;
}

Result<std::vector<ServiceAccountKey>> LocalServiceAccounts::List() const {
  const auto keys = poller_.Snapshot();
  return std::vector<ServiceAccountKey>(keys.begin(), keys.end());
}

Result<bool> LocalServiceAccounts::Exists(const ServiceAccountKey& key) const {
  // Reads the file system rather than the snapshot so that a notification's key is current.
  if (!ValidNamespaceName(key.ns) || !ValidServiceAccountName(key.name)) return false;
  struct stat st;
  const std::string path = root_ + "/" + key.ns + "/" + key.name;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return false;
    return ErrnoStatus("stat", path, errno);
  }
  return !S_ISDIR(st.st_mode);
}

// ---- LocalSecretStore -----------------------------------------------------------------------

LocalSecretStore::LocalSecretStore(std::string dir, std::chrono::milliseconds poll)
    : root_(std::move(dir) + "/secrets"), poller_([this] { return Scan(&listings_); }, poll) {}

std::string LocalSecretStore::SecretDir(const ServiceAccountKey& key) const {
  return root_ + "/" + key.ns + "/" + key.SecretName();
}

void LocalSecretStore::SetHandler(std::function<void(const ServiceAccountKey&)> on_change) {
  // Appearances and disappearances we caused ourselves are not news to the controller.
  poller_.SetHandler([this, h = std::move(on_change)](const ServiceAccountKey& k) {
    {
      std::lock_guard<std::mutex> lock(own_mu_);
      if (own_changes_.erase(k) > 0) return;
    }
    h(k);
  });
}

void LocalSecretStore::NoteOwnChange(const ServiceAccountKey& key) {
  std::lock_guard<std::mutex> lock(own_mu_);
  // A create undone before the next poll leaves an entry behind; bound them (an event
  // suppressed by mistake is repaired by the next resync).
  if (own_changes_.size() > 100000) own_changes_.clear();
  own_changes_.insert(key);
}

Status LocalSecretStore::Start() {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return Unavailable("cannot create " + root_, ec.message());
  // Leftovers of a publication or deletion interrupted by a crash.
  for (const auto& [ns, type] : ReadDir(root_)) {
    if (type != DT_DIR) continue;
    for (const auto& [name, t] : ReadDir(root_ + "/" + ns)) {
      if (name.rfind(".tmp.", 0) == 0 || name.rfind(".deleted.", 0) == 0) {
        RemoveAll(root_ + "/" + ns + "/" + name);
      }
    }
  }
  poller_.Start();
  return OkStatus();
}

std::set<ServiceAccountKey> LocalSecretStore::Scan(ListingCache* cached) const {
  std::set<ServiceAccountKey> out;
  const std::string prefix = kSecretNamePrefix;
  if (cached) cached->BeginPass();
  auto list = [cached](const std::string& path) {
    return cached ? cached->Read(path) : ReadDir(path);
  };
  for (const auto& [ns, ns_type] : list(root_)) {
    if (ns[0] == '.' || ns_type != DT_DIR || !ValidNamespaceName(ns)) continue;
    for (const auto& [name, type] : list(root_ + "/" + ns)) {
      if (name.rfind(prefix, 0) != 0) continue;
      const std::string sa = name.substr(prefix.size());
      if (ValidServiceAccountName(sa)) out.insert({ns, sa});
    }
  }
  return out;
}

Result<std::vector<ServiceAccountKey>> LocalSecretStore::List() const {
  // Scans afresh: List is used by the full resync and must see the current state.
  const auto keys = Scan(nullptr);
  return std::vector<ServiceAccountKey>(keys.begin(), keys.end());
}

Result<WorkloadSecret> LocalSecretStore::Get(const ServiceAccountKey& key) const {
  const std::string dir = SecretDir(key);
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return NotFound("secret not found", dir);
    return ErrnoStatus("stat", dir, errno);
  }
  WorkloadSecret out;
  if (!S_ISDIR(st.st_mode)) return out;  // present but corrupt: empty content, version ""
  auto gen = ReadLink(dir + "/" + kDataLink);
  if (!gen.ok()) {
    if (gen.status().code() == Code::kPermissionDenied) return gen.status();
    return out;  // no usable ..data: present but corrupt
  }
  out.version = *gen;
  std::string* fields[] = {&out.cert_chain_pem, nullptr, &out.root_cert_pem};  // [1]: the key
  for (int i = 0; i < 3; ++i) {
    // A reader opens DIR/<file>; if that name no longer points into ..data the set is broken
    // for readers even when the generation is intact, so report the file as empty.
    auto link = ReadLink(dir + "/" + kFiles[i]);
    if (!link.ok() || *link != std::string(kDataLink) + "/" + kFiles[i]) continue;
    auto data = ReadFileToString(dir + "/" + *gen + "/" + kFiles[i]);
    if (data.ok() && fields[i] == nullptr) {
      out.key_pem = SecretString(std::move(data).value());
    } else if (data.ok()) {
      *fields[i] = std::move(data).value();
    } else if (data.status().code() != Code::kNotFound) {
      return data.status();
    }
  }
  return out;
}

Status LocalSecretStore::Create(const ServiceAccountKey& key, const WorkloadSecret& secret) {
  const std::string ns_dir = root_ + "/" + key.ns;
  if (mkdir(ns_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus("mkdir", ns_dir, errno);
  }
  const std::string dir = SecretDir(key);
  const std::string tmp = ns_dir + "/.tmp." + key.SecretName() + "." + std::to_string(getpid()) +
                          "." + std::to_string(counter_++);
  if (mkdir(tmp.c_str(), 0755) != 0) return ErrnoStatus("mkdir", tmp, errno);
  auto fail = [&](Status s) {
    RemoveAll(tmp);
    return s;
  };
  if (Status s = PublishTogether(tmp, SecretFiles(secret), false); !s.ok()) return fail(s);
  // rename(2) of a directory onto an existing non-empty directory or a file fails: the
  // AlreadyExists that tells the controller to read again.
  if (rename(tmp.c_str(), dir.c_str()) != 0) {
    const int err = errno;
    if (err == ENOTDIR || err == EISDIR) return fail(ErrnoStatus("publish", dir, EEXIST));
    return fail(ErrnoStatus("publish", dir, err));
  }
  NoteOwnChange(key);
  return OkStatus();
}

Status LocalSecretStore::Update(const ServiceAccountKey& key, const WorkloadSecret& secret) {
  const std::string dir = SecretDir(key);
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("secret not found", dir);
    return ErrnoStatus("stat", dir, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    // A corrupt secret (a plain file where the directory should be): replace it whole.
    if (!secret.version.empty()) return Status(Code::kAborted, "secret changed", dir);
    if (unlink(dir.c_str()) != 0) return ErrnoStatus("removing corrupt secret", dir, errno);
    return Create(key, secret);
  }
  auto current = ReadLink(dir + "/" + kDataLink);
  const std::string current_gen = current.ok() ? *current : "";
  if (current_gen != secret.version) return Status(Code::kAborted, "secret changed", dir);
  return PublishTogether(dir, SecretFiles(secret), false);
}

Status LocalSecretStore::Delete(const ServiceAccountKey& key) {
  const std::string dir = SecretDir(key);
  const std::string gone = root_ + "/" + key.ns + "/.deleted." + key.SecretName() + "." +
                           std::to_string(getpid()) + "." + std::to_string(counter_++);
  // Rename first so the secret disappears for readers in one step.
  if (rename(dir.c_str(), gone.c_str()) != 0) return ErrnoStatus("delete", dir, errno);
  NoteOwnChange(key);
  RemoveAll(gone);
  return OkStatus();
}

}  // namespace istioca::ca
