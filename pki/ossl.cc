#include "pki/ossl.h"

#include <openssl/err.h>

namespace istioca::pki {

Status OsslError(Code code, const std::string& message) {
  std::string detail;
  unsigned long err;
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof buf);
    if (!detail.empty()) detail += "; ";
    detail += buf;
  }
  return Status(code, message, detail);
}

void ClearOsslErrors() { ERR_clear_error(); }

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

}  // namespace istioca::pki
