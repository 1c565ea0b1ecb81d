// pki/general_names.h — internal to pki/: building subjectAltName values.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "pki/ossl.h"

namespace istioca::pki {

// URIs as uniformResourceIdentifier [6], DNS names as dNSName [2], in that order.
Result<UniquePtr<GENERAL_NAMES>> MakeGeneralNames(const std::vector<std::string>& uris,
                                                  const std::vector<std::string>& dns_names);

}  // namespace istioca::pki
