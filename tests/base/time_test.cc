#include "base/time.h"

#include <catch2/catch.hpp>

using namespace istioca;
using namespace std::chrono_literals;

TEST_CASE("Go durations parse, with days", "[time]") {
  struct Row {
    const char* text;
    Duration want;
  };
  auto row = GENERATE(Row{"90s", 90s}, Row{"10m", 10min}, Row{"24h", 24h}, Row{"1h30m", 90min},
                      Row{"1.5h", 90min}, Row{"300ms", 300ms}, Row{"30d", 720h}, Row{"0", 0s},
                      Row{"-2m", -2min}, Row{"87600h", 87600h}, Row{"1d12h", 36h});
  auto d = ParseDuration(row.text);
  INFO(row.text);
  REQUIRE(d.ok());
  CHECK(*d == row.want);
}

TEST_CASE("bad durations are errors, including overflow", "[time]") {
  const char* text = GENERATE("", "10", "h", "10x", "1h30", "abc", "-", "1..5h", "999999999999h");
  auto d = ParseDuration(text);
  INFO(text);
  REQUIRE_FALSE(d.ok());
  CHECK_THAT(d.status().message(), Catch::Contains("invalid duration"));
}

TEST_CASE("durations format for people", "[time]") {
  CHECK(FormatDuration(0s) == "0s");
  CHECK(FormatDuration(59s) == "59s");
  CHECK(FormatDuration(61min) == "1h1m");
  CHECK(FormatDuration(23h + 59min + 59s) == "23h59m59s");
  CHECK(FormatDuration(89 * 24h + 23h) == "89d23h");
  CHECK(FormatDuration(-90min) == "-1h30m");
}

TEST_CASE("RFC 3339 round-trips and honours offsets", "[time]") {
  auto t = ParseRfc3339("2026-11-29T15:40:56Z");
  REQUIRE(t.ok());
  CHECK(FormatRfc3339(*t) == "2026-11-29T15:40:56Z");
  auto offset = ParseRfc3339("2026-11-29T17:40:56.123+02:00");
  REQUIRE(offset.ok());
  CHECK(*offset == *t);
  CHECK_FALSE(ParseRfc3339("yesterday").ok());
  CHECK_FALSE(ParseRfc3339("2026-13-01T00:00:00Z").ok());
  CHECK_FALSE(ParseRfc3339("2026-11-29T15:40:56").ok());
}

TEST_CASE("RFC 3339 covers every certificate time, up to 9999-12-31", "[time]") {
  // RFC 5280 §4.1.2.5: 99991231235959Z means "no well-defined expiration". Nanosecond time
  // points end in 2262; this must not wrap.
  for (const char* text : {"9999-12-31T23:59:59Z", "2262-04-12T00:00:00Z", "1950-01-01T00:00:00Z",
                           "0001-01-01T00:00:00Z"}) {
    auto t = ParseRfc3339(text);
    REQUIRE(t.ok());
    CHECK(FormatRfc3339(*t) == text);
  }
  const TimePoint end = *ParseRfc3339("9999-12-31T23:59:59Z");
  const TimePoint now = *ParseRfc3339("2026-11-29T15:40:56Z");
  CHECK(end > now);
  CHECK(std::chrono::duration_cast<std::chrono::hours>(end - now).count() / 24 / 365 == 7978);
  CHECK(UnixSeconds(end) == 253402300799);
  CHECK(FromUnixSeconds(253402300799) == end);
}
