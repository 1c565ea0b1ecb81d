// pki/pem.h — strict PEM framing (RFC 7468), independent of OpenSSL's lenient reader.
//
// Parsing untrusted input with our own small framer gives precise error messages ("block
// CERTIFICATE at line 12 has no END line") and a narrow surface to fuzz. Text outside blocks
// (e.g. openssl's "subject=..." headers) is ignored, as RFC 7468 allows.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace istioca::pki {

struct PemBlock {
  std::string type;  // "CERTIFICATE", "PRIVATE KEY", ...
  std::string der;   // decoded contents
  int line = 0;      // 1-based line of the BEGIN line, for messages
};

// Splits `input` into PEM blocks. Fails if there is no block at all, if a block is not closed,
// if BEGIN/END labels differ, or if the base64 body is malformed. Encapsulated headers
// ("Proc-Type: 4,ENCRYPTED") are reported as unsupported.
Result<std::vector<PemBlock>> ParsePem(std::string_view input);

std::string EncodePem(std::string_view type, std::string_view der);

// True if `data` starts like DER (SEQUENCE tag with a plausible length), for a helpful message
// when someone passes a .der file where PEM is expected.
bool LooksLikeDer(std::string_view data);

}  // namespace istioca::pki
