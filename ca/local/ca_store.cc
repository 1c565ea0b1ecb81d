#include "ca/local/ca_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/files.h"

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

}  // namespace istioca::ca
