// pki/der.h — a minimal DER writer for what pki encodes by hand (a leaf's TBSCertificate).
//
// Only definite-length, low-tag-number encodings; callers pass bodies they built with these
// same functions or took from OpenSSL's own encoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace istioca::pki::der {

inline constexpr uint8_t kBoolean = 0x01;
inline constexpr uint8_t kInteger = 0x02;
inline constexpr uint8_t kBitString = 0x03;
inline constexpr uint8_t kOctetString = 0x04;
inline constexpr uint8_t kNull = 0x05;
inline constexpr uint8_t kOid = 0x06;
inline constexpr uint8_t kUtcTime = 0x17;
inline constexpr uint8_t kGeneralizedTime = 0x18;
inline constexpr uint8_t kSequence = 0x30;

void AppendLength(std::string* out, size_t len);
void AppendHeader(std::string* out, uint8_t tag, size_t len);
void AppendTlv(std::string* out, uint8_t tag, std::string_view body);
std::string Tlv(uint8_t tag, std::string_view body);
// A non-negative INTEGER from big-endian magnitude bytes: leading zero bytes dropped, one zero
// byte put back when the top bit is set (or the value is zero).
void AppendUnsignedInteger(std::string* out, std::string_view big_endian);
// The OBJECT IDENTIFIER of an OpenSSL NID; false if the NID has no OID.
bool AppendOid(std::string* out, int nid);
// A certificate validity time (RFC 5280 4.1.2.5): UTCTime for the years 1950 to 2049,
// GeneralizedTime otherwise, both in UTC to the second. False outside the years 0000 to 9999.
bool AppendTime(std::string* out, int64_t unix_seconds);

}  // namespace istioca::pki::der
