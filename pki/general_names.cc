#include "pki/general_names.h"

namespace istioca::pki {

UniquePtr<GENERAL_NAMES> MakeGeneralNames(const std::vector<std::string>& uris,
                                          const std::vector<std::string>& dns_names) {
  UniquePtr<GENERAL_NAMES> names(GENERAL_NAMES_new());
  auto add = [&](int type, const std::string& value) {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, value.data(), static_cast<int>(value.size()));
    GENERAL_NAME_set0_value(gn, type, s);
    sk_GENERAL_NAME_push(names.get(), gn);
  };
  for (const auto& u : uris) add(GEN_URI, u);
  for (const auto& d : dns_names) add(GEN_DNS, d);
  return names;
}

}  // namespace istioca::pki
