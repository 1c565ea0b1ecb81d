// Arbitrary strings as Go-style durations, and arbitrary nanosecond counts through the
// formatter: nothing may crash or overflow, and what FormatDuration prints must parse.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "base/time.h"
#include "tests/fuzz/fuzz_check.h"

using namespace istioca;

namespace {

void CheckFormat(Duration d) {
  const std::string text = FormatDuration(d);
  FUZZ_CHECK(!text.empty());
  FUZZ_CHECK(ParseDuration(text).ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto d = ParseDuration(input); d.ok()) CheckFormat(*d);

  if (size >= sizeof(int64_t)) {
    int64_t ns;
    std::memcpy(&ns, data, sizeof ns);
    // Durations count microseconds; the nanosecond count keeps the value within what Go-style
    // durations (and ParseDuration) can express, which is what flags and FormatDuration handle.
    CheckFormat(std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(ns)));
  }
  return 0;
}
