// pki/digest.h — SHA-256 of bytes and of files, for change detection without keeping content.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace istioca::pki {

// The SHA-256 of `data`, as 64 lowercase hex digits.
Result<std::string> Sha256Hex(std::string_view data);
// The SHA-256 of the file at `path`, read in chunks; the read buffer is cleansed, so a key file
// can be digested without its bytes staying in memory.
Result<std::string> Sha256HexOfFile(const std::string& path);

}  // namespace istioca::pki
