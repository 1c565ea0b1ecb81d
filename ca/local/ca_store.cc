#include "ca/local/ca_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/secret.h"

namespace istioca::ca {

Result<StoredCa> LocalCaStore::Load() const {
  StoredCa ca;
  auto cert = ReadFileToString(dir_ + "/" + kCaCertKey);
  if (!cert.ok()) {
    if (cert.status().code() == Code::kNotFound) return NotFound("no CA stored in " + dir_);
    return cert.status();
  }
  ca.ca_cert_pem = std::move(cert).value();
  ASSIGN_OR_RETURN(ca.ca_key_pem, ReadFileToString(dir_ + "/" + kCaKeyKey));
  ASSIGN_OR_RETURN(ca.root_cert_pem, ReadFileToString(dir_ + "/root-cert.pem"));
  auto chain = ReadFileToString(dir_ + "/cert-chain.pem");
  if (chain.ok()) ca.cert_chain_pem = std::move(chain).value();
  return ca;
}

Status LocalCaStore::Create(const StoredCa& ca) {
  namespace fs = std::filesystem;
  static std::atomic<uint64_t> counter{0};
  const fs::path target(dir_);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (fs::exists(target / kCaCertKey, ec))
    return Status(Code::kAlreadyExists, "a CA is already stored", dir_);
  const std::string tmp =
      dir_ + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
  if (mkdir(tmp.c_str(), 0700) != 0) {
    return Unavailable("cannot create the CA directory: " + std::string(std::strerror(errno)), tmp);
  }
  auto fail = [&](Status s) {
    fs::remove_all(tmp, ec);
    return s;
  };
  const std::pair<const char*, const std::string*> files[] = {
      {kCaCertKey, &ca.ca_cert_pem},
      {kCaKeyKey, &ca.ca_key_pem},
      {"root-cert.pem", &ca.root_cert_pem},
      {"cert-chain.pem", &ca.cert_chain_pem}};
  for (const auto& [name, data] : files) {
    Status s =
        WriteFileAtomic(tmp + "/" + name, *data, std::string_view(name) == kCaKeyKey ? 0600 : 0644);
    if (!s.ok()) return fail(s);
  }
  chmod(tmp.c_str(), 0755);
  // An empty leftover directory (e.g. created by hand) is replaced; a populated one wins.
  if (rename(tmp.c_str(), dir_.c_str()) != 0) {
    const int err = errno;
    if (err == EEXIST || err == ENOTEMPTY) {
      return fail(Status(Code::kAlreadyExists, "a CA is already stored", dir_));
    }
    return fail(Unavailable("cannot store the CA: " + std::string(std::strerror(err)), dir_));
  }
  return OkStatus();
}

namespace {

constexpr const char* kRecordFile = "record.json";

// Names the record may have written as files: removed when their key leaves the record.
bool IsRecordView(const std::string& name) {
  auto ends = [&](std::string_view suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends(".pem") || ends(".json");
}

bool IsKeyMaterial(const std::string& name) {
  return name.size() >= 7 && name.compare(name.size() - 7, 7, "key.pem") == 0;
}

Result<StoredRecord> ParseRecord(const std::string& text, const std::string& path) {
  using Json = nlohmann::json;
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("version") ||
      !j["version"].is_number_unsigned() || !j.contains("data") || !j["data"].is_object()) {
    return Internal("the CA record is malformed (not {version, data})", path);
  }
  StoredRecord r;
  r.version = std::to_string(j["version"].get<uint64_t>());
  for (const auto& [k, v] : j["data"].items()) {
    if (!v.is_string()) return Internal("the CA record's " + k + " is not a string", path);
    r.data[k] = v.get<std::string>();
  }
  return r;
}

// flock on DIR.lock (next to the directory, which Create renames into place).
class DirLock {
 public:
  explicit DirLock(const std::string& path)
      : fd_(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0) flock(fd_, LOCK_EX);
  }
  ~DirLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

}  // namespace

Result<StoredRecord> LocalCaStore::LoadRecord() const {
  const std::string path = dir_ + "/" + kRecordFile;
  auto text = ReadFileToString(path, 16 << 20);
  if (text.ok()) {
    auto r = ParseRecord(*text, path);
    Cleanse(text->data(), text->size());
    return r;
  }
  if (text.status().code() != Code::kNotFound) return text.status();
  ASSIGN_OR_RETURN(StoredCa ca, Load());
  StoredRecord r;
  r.data[kCaCertKey] = ca.ca_cert_pem;
  r.data[kCaKeyKey] = ca.ca_key_pem;
  r.data["root-cert.pem"] = ca.root_cert_pem;
  if (!ca.cert_chain_pem.empty()) r.data["cert-chain.pem"] = ca.cert_chain_pem;
  return r;
}

Status LocalCaStore::StoreRecord(const std::map<std::string, std::string>& data,
                                 const std::string& expected_version) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(dir_).parent_path(), ec);
  DirLock lock(dir_ + ".lock");
  if (!lock.ok()) return ErrnoStatus("cannot lock the CA directory", dir_ + ".lock", errno);
  std::string current;
  const std::string path = dir_ + "/" + kRecordFile;
  auto text = ReadFileToString(path, 16 << 20);
  if (text.ok()) {
    auto r = ParseRecord(*text, path);
    Cleanse(text->data(), text->size());
    if (!r.ok()) return r.status();
    current = r->version;
  } else if (text.status().code() != Code::kNotFound) {
    return text.status();
  }
  if (current != expected_version) {
    return Status(Code::kAborted,
                  "the CA record changed (version " + current + ", expected " +
                      (expected_version.empty() ? "none" : expected_version) + ")",
                  dir_);
  }
  if (mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus("cannot create the CA directory", dir_, errno);
  }
  nlohmann::json j = {{"version", current.empty() ? 1 : std::stoull(current) + 1},
                      {"data", nlohmann::json::object()}};
  for (const auto& [k, v] : data) j["data"][k] = v;
  std::string serialized = j.dump();
  Status written = WriteFileAtomic(path, serialized, 0600, /*durable=*/true);
  Cleanse(serialized.data(), serialized.size());
  j.clear();
  RETURN_IF_ERROR(written);
  // The per-key views: best effort after the record (the record is what is read back).
  for (const auto& [k, v] : data) {
    if (k.find('/') != std::string::npos || k.empty() || k[0] == '.') continue;
    RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/" + k, v, IsKeyMaterial(k) ? 0600 : 0644));
  }
  for (const auto& [name, type] : ReadDir(dir_)) {
    if (name == kRecordFile || !IsRecordView(name) || data.count(name)) continue;
    fs::remove(fs::path(dir_) / name, ec);
  }
  return OkStatus();
}

}  // namespace istioca::ca
