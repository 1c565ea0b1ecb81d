#include "pki/spiffe.h"

namespace istioca::pki {
namespace {

constexpr std::string_view kScheme = "spiffe://";
constexpr size_t kMaxIdLength = 2048;
constexpr size_t kMaxTrustDomainLength = 255;

bool IsTrustDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}
bool IsPathChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

}  // namespace

Status ValidateTrustDomain(std::string_view td) {
  if (td.empty()) return InvalidArgument("trust domain is empty");
  if (td.size() > kMaxTrustDomainLength)
    return InvalidArgument("trust domain is longer than 255 bytes");
  for (const char c : td) {
    if (c == ':') return InvalidArgument("trust domain must not contain a port");
    if (c == '@') return InvalidArgument("trust domain must not contain userinfo");
    if (c >= 'A' && c <= 'Z') return InvalidArgument("trust domain must be lowercase");
    if (!IsTrustDomainChar(c)) {
      return InvalidArgument("trust domain contains an invalid character (allowed: a-z 0-9 . - _)");
    }
  }
  return OkStatus();
}

Status ValidatePathSegment(std::string_view segment) {
  if (segment.empty()) return InvalidArgument("path has an empty segment");
  if (segment == "." || segment == "..") return InvalidArgument("path has a '.' or '..' segment");
  for (const char c : segment) {
    if (!IsPathChar(c)) {
      return InvalidArgument("path contains an invalid character (allowed: A-Z a-z 0-9 . - _)");
    }
  }
  return OkStatus();
}

Result<SpiffeId> ParseSpiffeId(std::string_view uri) {
  if (uri.empty()) return InvalidArgument("SPIFFE ID is empty");
  if (uri.size() > kMaxIdLength) return InvalidArgument("SPIFFE ID is longer than 2048 bytes");
  if (uri.substr(0, kScheme.size()) != kScheme) {
    return InvalidArgument("SPIFFE ID must start with spiffe://");
  }
  std::string_view rest = uri.substr(kScheme.size());
  if (rest.find('?') != std::string_view::npos)
    return InvalidArgument("SPIFFE ID must not have a query");
  if (rest.find('#') != std::string_view::npos)
    return InvalidArgument("SPIFFE ID must not have a fragment");
  const size_t slash = rest.find('/');
  const std::string_view td = rest.substr(0, slash);
  RETURN_IF_ERROR(ValidateTrustDomain(td));
  SpiffeId id{std::string(td), ""};
  if (slash == std::string_view::npos) return id;
  std::string_view path = rest.substr(slash);
  if (path == "/") return InvalidArgument("SPIFFE ID path must not end with '/'");
  id.path = std::string(path);
  while (!path.empty()) {
    path.remove_prefix(1);  // the '/'
    const size_t next = path.find('/');
    RETURN_IF_ERROR(ValidatePathSegment(path.substr(0, next)));
    path = next == std::string_view::npos ? std::string_view() : path.substr(next);
  }
  return id;
}

Result<SpiffeId> WorkloadId(std::string_view trust_domain, std::string_view ns,
                            std::string_view sa) {
  RETURN_IF_ERROR(ValidateTrustDomain(trust_domain));
  RETURN_IF_ERROR(ValidatePathSegment(ns).WithContext("namespace"));
  RETURN_IF_ERROR(ValidatePathSegment(sa).WithContext("service account"));
  return SpiffeId{std::string(trust_domain), "/ns/" + std::string(ns) + "/sa/" + std::string(sa)};
}

std::optional<ServiceAccountRef> IstioServiceAccount(const SpiffeId& id) {
  std::string_view p = id.path;
  if (p.substr(0, 4) != "/ns/") return std::nullopt;
  p.remove_prefix(4);
  const size_t sep = p.find("/sa/");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  const std::string_view ns = p.substr(0, sep);
  const std::string_view sa = p.substr(sep + 4);
  if (sa.empty() || sa.find('/') != std::string_view::npos ||
      ns.find('/') != std::string_view::npos) {
    return std::nullopt;
  }
  return ServiceAccountRef{std::string(ns), std::string(sa)};
}

}  // namespace istioca::pki
