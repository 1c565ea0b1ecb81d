// pki/digest.h — SHA-256 of bytes and of files, for change detection without keeping content.
#pragma once

#include <openssl/types.h>

#include <string>
#include <string_view>

#include "base/status.h"

namespace istioca::pki {

// The SHA-256 of `data`, as 64 lowercase hex digits.
Result<std::string> Sha256Hex(std::string_view data);
// The SHA-256 of the file at `path`, read in chunks; the read buffer is cleansed, so a key file
// can be digested without its bytes staying in memory.
Result<std::string> Sha256HexOfFile(const std::string& path);

// The implementation of the digest `nid` (NID_sha1, NID_sha224, NID_sha256, NID_sha384 or
// NID_sha512), fetched once per process and kept: EVP_sha256(), EVP_get_digestbynid() and the
// like make OpenSSL 3.0 fetch the implementation again on every use, a locked lookup that cost
// as much as hashing a certificate. Null for any other digest.
const EVP_MD* FetchedDigest(int nid);

}  // namespace istioca::pki
