#include "base/secret.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <new>
#include <string_view>

using namespace istioca;

TEST_CASE("a secret string holds its value and moves without copying", "[secret]") {
  SecretString a(std::string(64, 'k'));
  CHECK(a.size() == 64);
  CHECK(a.view() == std::string(64, 'k'));
  const char* buffer = a.str().data();
  SecretString b(std::move(a));
  CHECK(b.str().data() == buffer);  // the same heap buffer: no copy left behind
  CHECK(a.empty());                 // NOLINT(bugprone-use-after-move): moved-from is empty
  SecretString c;
  c = std::move(b);
  CHECK(c.view() == std::string(64, 'k'));
  CHECK(b.empty());  // NOLINT(bugprone-use-after-move)
}

TEST_CASE("a secret string wipes its bytes when destroyed", "[secret]") {
  // Destroy in place inside storage we own, then look at the bytes the string used. The heap
  // buffer itself is freed, so the check uses the inline (small-string) buffer.
  alignas(SecretString) unsigned char storage[sizeof(SecretString)];
  auto* s = new (storage) SecretString(std::string("short-key"));
  REQUIRE(s->str().data() >= reinterpret_cast<const char*>(storage));
  REQUIRE(s->str().data() < reinterpret_cast<const char*>(storage + sizeof storage));
  s->~SecretString();
  const std::string_view bytes(reinterpret_cast<const char*>(storage), sizeof storage);
  CHECK(bytes.find("short-key") == std::string_view::npos);
}

TEST_CASE("Cleanse zeroes memory", "[secret]") {
  char buf[16];
  std::memset(buf, 'x', sizeof buf);
  Cleanse(buf, sizeof buf);
  for (char c : buf) CHECK(c == 0);
}
