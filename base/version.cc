#include "base/version.h"

#include <openssl/opensslv.h>
namespace istioca {
std::string VersionShort() { return "0.1.0"; }
std::string VersionLong() { return "istio-ca 0.1.0 (" OPENSSL_VERSION_TEXT ")"; }
}  // namespace istioca
