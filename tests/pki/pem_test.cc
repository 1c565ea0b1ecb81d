#include "pki/pem.h"

#include <catch2/catch.hpp>

using namespace istioca;
using namespace istioca::pki;

TEST_CASE("PEM blocks are split with their types and lines, text around them ignored", "[pem]") {
  const std::string pem = "subject=O=x\n" + EncodePem("CERTIFICATE", "\x30\x01\x02") + "junk\n" +
                          EncodePem("PRIVATE KEY", std::string(100, 'k'));
  auto blocks = ParsePem(pem);
  REQUIRE(blocks.ok());
  REQUIRE(blocks->size() == 2);
  CHECK((*blocks)[0].type == "CERTIFICATE");
  CHECK((*blocks)[0].der == std::string("\x30\x01\x02"));
  CHECK((*blocks)[0].line == 2);
  CHECK((*blocks)[1].type == "PRIVATE KEY");
  CHECK((*blocks)[1].der == std::string(100, 'k'));
}

TEST_CASE("malformed PEM is refused with a message naming the problem", "[pem]") {
  const std::string good = EncodePem("CERTIFICATE", std::string(200, 'x'));
  struct Row {
    std::string input;
    std::string expect;
  };
  auto row = GENERATE_COPY(
      Row{"", "no PEM data"}, Row{"hello world\n", "no PEM data"},
      Row{good.substr(0, good.size() / 2), "no END line"},
      Row{"-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n", "ends with END"},
      Row{"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "malformed base64"},
      Row{"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "empty"},
      Row{"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE "
          "KEY-----\n",
          "encrypted"});
  auto r = ParsePem(row.input);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains(row.expect));
}

TEST_CASE("DER is recognised so that the user can be told to convert it", "[pem]") {
  CHECK(LooksLikeDer(std::string("\x30\x03\x01\x01\x00", 5)));
  CHECK_FALSE(LooksLikeDer("-----BEGIN"));
  CHECK_FALSE(LooksLikeDer(std::string("\x30\x7F", 2)));
}
