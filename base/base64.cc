#include "base/base64.h"

#include <array>
#include <cstdint>

namespace istioca {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

std::string Base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const uint32_t v = (static_cast<uint32_t>(static_cast<uint8_t>(data[i])) << 16) |
                       (static_cast<uint32_t>(static_cast<uint8_t>(data[i + 1])) << 8) |
                       static_cast<uint8_t>(data[i + 2]);
    out += {kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63],
            kAlphabet[v & 63]};
  }
  if (i + 1 == data.size()) {
    const uint32_t v = static_cast<uint32_t>(static_cast<uint8_t>(data[i])) << 16;
    out += {kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == data.size()) {
    const uint32_t v = (static_cast<uint32_t>(static_cast<uint8_t>(data[i])) << 16) |
                       (static_cast<uint32_t>(static_cast<uint8_t>(data[i + 1])) << 8);
    out += {kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], '='};
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view text, Base64Options options) {
  static const std::array<int8_t, 256> table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i)
      t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t symbols = 0, padding = 0;
  for (const char c : text) {
    if (IsSpace(c)) {
      if (options.ignore_whitespace) continue;
      return InvalidArgument("malformed base64: unexpected whitespace");
    }
    if (c == '=') {
      ++padding;
      ++symbols;
      continue;
    }
    if (padding > 0) return InvalidArgument("malformed base64: data after '=' padding");
    const int8_t v = table[static_cast<unsigned char>(c)];
    if (v < 0) return InvalidArgument("malformed base64: unexpected character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    ++symbols;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Without padding, a final group of one symbol cannot hold a byte; with it, the symbols
  // (data and '=') come in fours and at most two are '='.
  const bool complete =
      options.padding_optional && padding == 0 ? symbols % 4 != 1 : symbols % 4 == 0;
  if (!complete || padding > 2) {
    return InvalidArgument("malformed base64: truncated");
  }
  if (padding > 0 && padding != (4 - (symbols - padding) % 4) % 4) {
    return InvalidArgument("malformed base64: wrong '=' padding");
  }
  if ((acc & ((1u << bits) - 1)) != 0) {
    return InvalidArgument("malformed base64: non-zero padding bits");
  }
  return out;
}

}  // namespace istioca
