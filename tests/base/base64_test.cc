#include "base/base64.h"

#include <catch2/catch.hpp>

using namespace istioca;

TEST_CASE("base64 round-trips every length", "[base64]") {
  std::string data;
  for (int i = 0; i < 70; ++i) {
    auto decoded = Base64Decode(Base64Encode(data));
    REQUIRE(decoded.ok());
    CHECK(*decoded == data);
    data.push_back(static_cast<char>(i * 37));
  }
  CHECK(Base64Encode("-----BEGIN CERTIFICATE-----\n") ==
        "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==");
  CHECK(Base64Encode(std::string("\0\xff\x10", 3)) == "AP8Q");
}

TEST_CASE("strict base64 refuses what the API server refuses", "[base64]") {
  const char* bad = GENERATE("abc", "ab=c", "a===", "a*==", "@@@@",
                             "YQ==YQ==", "====", "QQ=\n=QQ==", "QQ==\n", "QQ", "QR==", "QUI=QQ==");
  CAPTURE(bad);
  auto d = Base64Decode(bad);
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == Code::kInvalidArgument);
  CHECK_THAT(d.status().message(), Catch::Contains("malformed base64"));
}

TEST_CASE("PEM bodies may be split into lines, kubeconfig fields may lack padding", "[base64]") {
  CHECK(*Base64Decode("QUJD\nREVG\r\n", {.ignore_whitespace = true}) == "ABCDEF");
  CHECK_FALSE(Base64Decode("QUJD\nREVG").ok());
  CHECK(*Base64Decode("QQ", {.padding_optional = true}) == "A");
  CHECK(*Base64Decode("QUI", {.padding_optional = true}) == "AB");
  CHECK(*Base64Decode("QQ==", {.padding_optional = true}) == "A");
  // Even then, a lone symbol cannot hold a byte and stray bits are refused.
  CHECK_FALSE(Base64Decode("QUJDR", {.padding_optional = true}).ok());
  CHECK_FALSE(Base64Decode("QR", {.padding_optional = true}).ok());
  CHECK_FALSE(Base64Decode("QQ=", {.padding_optional = true}).ok());
}
