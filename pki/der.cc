#include "pki/der.h"

#include <openssl/objects.h>

#include <cstdio>
#include <ctime>

namespace istioca::pki::der {

void AppendLength(std::string* out, size_t len) {
  if (len < 0x80) {
    out->push_back(static_cast<char>(len));
    return;
  }
  int bytes = 0;
  for (size_t l = len; l > 0; l >>= 8) ++bytes;
  out->push_back(static_cast<char>(0x80 | bytes));
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
}

void AppendHeader(std::string* out, uint8_t tag, size_t len) {
  out->push_back(static_cast<char>(tag));
  AppendLength(out, len);
}

void AppendTlv(std::string* out, uint8_t tag, std::string_view body) {
  AppendHeader(out, tag, body.size());
  out->append(body);
}

std::string Tlv(uint8_t tag, std::string_view body) {
  std::string out;
  out.reserve(body.size() + 6);
  AppendTlv(&out, tag, body);
  return out;
}

void AppendUnsignedInteger(std::string* out, std::string_view big_endian) {
  while (!big_endian.empty() && big_endian.front() == '\0') big_endian.remove_prefix(1);
  const bool pad = big_endian.empty() || (static_cast<uint8_t>(big_endian.front()) & 0x80) != 0;
  AppendHeader(out, kInteger, big_endian.size() + (pad ? 1 : 0));
  if (pad) out->push_back('\0');
  out->append(big_endian);
}

bool AppendOid(std::string* out, int nid) {
  const ASN1_OBJECT* obj = OBJ_nid2obj(nid);
  const size_t len = obj == nullptr ? 0 : OBJ_length(obj);
  if (len == 0) return false;
  AppendTlv(out, kOid, std::string_view(reinterpret_cast<const char*>(OBJ_get0_data(obj)), len));
  return true;
}

bool AppendTime(std::string* out, int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return false;
  const int year = tm.tm_year + 1900;
  if (year < 0 || year > 9999) return false;
  char buf[64];
  if (year >= 1950 && year < 2050) {
    std::snprintf(buf, sizeof buf, "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    AppendTlv(out, kUtcTime, std::string_view(buf, 13));
  } else {
    std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec);
    AppendTlv(out, kGeneralizedTime, std::string_view(buf, 15));
  }
  return true;
}

}  // namespace istioca::pki::der
