#pragma once
#include <string>
namespace istioca {
std::string VersionShort();
std::string VersionLong();
}  // namespace istioca
