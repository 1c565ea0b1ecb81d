#include "pki/pem.h"

#include "base/base64.h"
#include "base/secret.h"

namespace istioca::pki {
namespace {

constexpr std::string_view kBegin = "-----BEGIN ";
constexpr std::string_view kEnd = "-----END ";
constexpr std::string_view kDashes = "-----";

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Reads "-----BEGIN X-----" / "-----END X-----" and returns X, or empty if the line is not one.
bool MatchBoundary(std::string_view line, std::string_view prefix, std::string* label) {
  line = TrimRight(line);
  if (line.substr(0, prefix.size()) != prefix) return false;
  line.remove_prefix(prefix.size());
  if (line.size() < kDashes.size() || line.substr(line.size() - kDashes.size()) != kDashes) {
    return false;
  }
  *label = std::string(line.substr(0, line.size() - kDashes.size()));
  return true;
}

}  // namespace

Result<std::vector<PemBlock>> ParsePem(std::string_view input) {
  std::vector<PemBlock> blocks;
  int line_no = 0;
  PemBlock* open = nullptr;
  std::string body;
  while (!input.empty()) {
    const size_t nl = input.find('\n');
    const std::string_view line = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
    ++line_no;
    std::string label;
    if (open == nullptr) {
      if (MatchBoundary(line, kBegin, &label)) {
        blocks.push_back(PemBlock{label, "", line_no});
        open = &blocks.back();
        body.clear();
      }
      continue;
    }
    if (MatchBoundary(line, kEnd, &label)) {
      if (label != open->type) {
        return InvalidArgument("PEM block " + open->type + " at line " +
                               std::to_string(open->line) + " ends with END " + label);
      }
      auto der = Base64Decode(body, {.ignore_whitespace = true});
      if (!der.ok()) {
        return InvalidArgument("PEM block " + open->type + " at line " +
                               std::to_string(open->line) + ": " + der.status().message());
      }
      if (der->empty()) {
        return InvalidArgument("PEM block " + open->type + " at line " +
                               std::to_string(open->line) + " is empty");
      }
      open->der = std::move(der).value();
      open = nullptr;
      continue;
    }
    if (MatchBoundary(line, kBegin, &label)) {
      return InvalidArgument("PEM block " + open->type + " at line " + std::to_string(open->line) +
                             " has no END line (truncated?)");
    }
    if (line.find(':') != std::string_view::npos) {
      return InvalidArgument("PEM block " + open->type + " at line " + std::to_string(open->line) +
                             " has headers (encrypted PEM is not supported)");
    }
    body.append(line.data(), line.size());
  }
  if (open != nullptr) {
    return InvalidArgument("PEM block " + open->type + " at line " + std::to_string(open->line) +
                           " has no END line (truncated?)");
  }
  if (blocks.empty()) return InvalidArgument("no PEM data found");
  return blocks;
}

std::string EncodePem(std::string_view type, std::string_view der) {
  // `der` may be a private key, and so is its base64 text: the intermediate buffer is wiped,
  // and `out` is sized once so that no reallocation leaves a partial copy behind.
  std::string b64 = Base64Encode(der);
  const std::string begin = "-----BEGIN " + std::string(type) + "-----\n";
  const std::string end = "-----END " + std::string(type) + "-----\n";
  std::string out;
  out.reserve(begin.size() + b64.size() + b64.size() / 64 + 1 + end.size());
  out += begin;
  for (size_t i = 0; i < b64.size(); i += 64) {
    out.append(b64, i, 64);
    out += '\n';
  }
  out += end;
  Cleanse(b64.data(), b64.size());
  return out;
}

bool LooksLikeDer(std::string_view data) {
  if (data.size() < 2 || static_cast<uint8_t>(data[0]) != 0x30) return false;
  const auto len0 = static_cast<uint8_t>(data[1]);
  if (len0 < 0x80) return static_cast<size_t>(len0) + 2 == data.size();
  const size_t n = len0 & 0x7F;
  if (n == 0 || n > 4 || data.size() < 2 + n) return false;
  size_t len = 0;
  for (size_t i = 0; i < n; ++i) len = (len << 8) | static_cast<uint8_t>(data[2 + i]);
  return len + 2 + n <= data.size();
}

}  // namespace istioca::pki
