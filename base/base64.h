// base/base64.h — base64 with the standard alphabet (RFC 4648 §4), the one copy in the tree.
//
// Encoding always pads with '='. Decoding is strict by default, as the Kubernetes API server
// and PEM want: length a multiple of 4, '=' only at the end, no bits set in the padding, no
// whitespace. Callers that read looser input (PEM bodies split into lines, kubeconfig fields
// without padding) say so with Base64Options.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace istioca {

struct Base64Options {
  bool ignore_whitespace = false;  // skip ' ', '\t', '\r', '\n' anywhere
  bool padding_optional = false;   // accept input whose '=' padding is left off
};

std::string Base64Encode(std::string_view data);
// InvalidArgument names the problem ("unexpected character", "truncated", ...) but never
// echoes the input, which may be key material.
Result<std::string> Base64Decode(std::string_view text, Base64Options options = {});

}  // namespace istioca
