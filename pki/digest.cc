#include "pki/digest.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

namespace istioca::pki {
namespace {

using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

Result<std::string> Hex(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, md, &len) != 1) return Internal("SHA-256 failed");
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kDigits[md[i] >> 4];
    out += kDigits[md[i] & 0xf];
  }
  return out;
}

Result<MdCtx> NewSha256() {
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), FetchedDigest(NID_sha256), nullptr) != 1) {
    return Internal("SHA-256 failed");
  }
  return ctx;
}

}  // namespace

const EVP_MD* FetchedDigest(int nid) {
  // Never freed (like OpenSSL's own tables): no thread can find one gone at exit.
  static const std::array<std::pair<int, EVP_MD*>, 5> fetched = [] {
    std::array<std::pair<int, EVP_MD*>, 5> t = {{{NID_sha1, nullptr},
                                                 {NID_sha224, nullptr},
                                                 {NID_sha256, nullptr},
                                                 {NID_sha384, nullptr},
                                                 {NID_sha512, nullptr}}};
    for (auto& [n, md] : t) md = EVP_MD_fetch(nullptr, OBJ_nid2sn(n), nullptr);
    return t;
  }();
  for (const auto& [n, md] : fetched) {
    if (n == nid) return md;
  }
  return nullptr;
}

Result<std::string> Sha256Hex(std::string_view data) {
  ASSIGN_OR_RETURN(MdCtx ctx, NewSha256());
  if (EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1) return Internal("SHA-256 failed");
  return Hex(ctx.get());
}

Result<std::string> Sha256HexOfFile(const std::string& path) {
  ASSIGN_OR_RETURN(MdCtx ctx, NewSha256());
  // read(2), not stdio: no library buffer keeps a copy of the bytes.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound(path + ": " + std::strerror(errno));
  unsigned char buf[4096];
  bool ok = true;
  bool read_error = false;
  while (ok) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      read_error = n < 0;
      break;
    }
    ok = EVP_DigestUpdate(ctx.get(), buf, static_cast<size_t>(n)) == 1;
  }
  close(fd);
  OPENSSL_cleanse(buf, sizeof buf);
  if (!ok) return Internal("SHA-256 failed");
  if (read_error) return Internal(path + ": read error");
  return Hex(ctx.get());
}

}  // namespace istioca::pki
