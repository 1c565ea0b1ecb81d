#include "pki/general_names.h"

namespace istioca::pki {

Result<UniquePtr<GENERAL_NAMES>> MakeGeneralNames(const std::vector<std::string>& uris,
                                                  const std::vector<std::string>& dns_names) {
  UniquePtr<GENERAL_NAMES> names(GENERAL_NAMES_new());
  if (names == nullptr) return OsslError(Code::kInternal, "allocating SANs failed");
  auto add = [&](int type, const std::string& value) -> Status {
    UniquePtr<GENERAL_NAME> gn(GENERAL_NAME_new());
    UniquePtr<ASN1_IA5STRING> s(ASN1_IA5STRING_new());
    if (gn == nullptr || s == nullptr ||
        ASN1_STRING_set(s.get(), value.data(), static_cast<int>(value.size())) != 1) {
      return OsslError(Code::kInternal, "encoding a SAN failed");
    }
    GENERAL_NAME_set0_value(gn.get(), type, s.release());  // cannot fail; gn owns s now
    if (sk_GENERAL_NAME_push(names.get(), gn.get()) <= 0) {
      return OsslError(Code::kInternal, "adding a SAN failed");
    }
    gn.release();  // the stack owns it now
    return OkStatus();
  };
  for (const auto& u : uris) RETURN_IF_ERROR(add(GEN_URI, u));
  for (const auto& d : dns_names) RETURN_IF_ERROR(add(GEN_DNS, d));
  return names;
}

}  // namespace istioca::pki
