#include "base/time.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>

namespace istioca {

const SystemClock& SystemClock::Get() {
  static const SystemClock clock;
  return clock;
}

namespace {

struct Unit {
  std::string_view name;
  int64_t nanos;
};

constexpr Unit kUnits[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xC2\xB5s", 1000},  // U+00B5 micro sign
    {"\xCE\xBCs", 1000},  // U+03BC greek mu
    {"ms", 1000 * 1000},
    {"s", 1000LL * 1000 * 1000},
    {"m", 60LL * 1000 * 1000 * 1000},
    {"h", 3600LL * 1000 * 1000 * 1000},
    {"d", 86400LL * 1000 * 1000 * 1000},
};

}  // namespace

Result<Duration> ParseDuration(std::string_view text) {
  const std::string original(text);
  auto bad = [&](const std::string& why) {
    return InvalidArgument("invalid duration \"" + original + "\": " + why +
                           " (use Go syntax such as 90s, 10m, 24h, 1h30m or 30d)");
  };
  if (text.empty()) return bad("empty");
  bool negative = false;
  if (text[0] == '-' || text[0] == '+') {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  if (text == "0") return Duration(0);
  if (text.empty()) return bad("no number");
  long double total = 0;  // nanoseconds; long double keeps 64 bits of mantissa
  while (!text.empty()) {
    size_t i = 0;
    bool digits = false;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
      digits = true;
    }
    if (i < text.size() && text[i] == '.') {
      ++i;
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
        ++i;
        digits = true;
      }
    }
    if (!digits) return bad("expected a number");
    const std::string number(text.substr(0, i));
    text.remove_prefix(i);
    size_t u = 0;
    while (u < text.size() && !std::isdigit(static_cast<unsigned char>(text[u])) &&
           text[u] != '.') {
      ++u;
    }
    const std::string_view unit_name = text.substr(0, u);
    text.remove_prefix(u);
    if (unit_name.empty()) return bad("missing unit after " + number);
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (candidate.name == unit_name) unit = &candidate;
    }
    if (unit == nullptr) return bad("unknown unit \"" + std::string(unit_name) + "\"");
    total += std::strtold(number.c_str(), nullptr) * static_cast<long double>(unit->nanos);
    if (total > static_cast<long double>(std::numeric_limits<int64_t>::max())) {
      return bad("too large (at most about 106751d)");
    }
  }
  const auto nanos = static_cast<int64_t>(std::llround(total));
  const auto d = std::chrono::round<Duration>(std::chrono::nanoseconds(nanos));
  return negative ? -d : d;
}

std::string FormatDuration(Duration d) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  int64_t s = duration_cast<seconds>(d).count();
  std::string out;
  if (s < 0) {
    out = "-";
    s = -s;
  }
  const int64_t days = s / 86400, hours = s / 3600 % 24, minutes = s / 60 % 60, secs = s % 60;
  // Show the two or three most significant units; more is noise for an operator.
  if (days > 0) {
    out += std::to_string(days) + "d";
    if (hours > 0) out += std::to_string(hours) + "h";
    if (days < 10 && minutes > 0) out += std::to_string(minutes) + "m";
    return out;
  }
  if (hours > 0) {
    out += std::to_string(hours) + "h" + std::to_string(minutes) + "m";
    if (secs > 0) out += std::to_string(secs) + "s";
    return out;
  }
  if (minutes > 0) return out + std::to_string(minutes) + "m" + std::to_string(secs) + "s";
  return out + std::to_string(secs) + "s";
}

std::string FormatRfc3339(TimePoint t) {
  // Whole seconds, rounded toward the past (floor, not truncation toward zero, before 1970).
  const std::time_t tt = static_cast<std::time_t>(
      std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count());
  std::tm tm{};
  if (gmtime_r(&tt, &tm) == nullptr) return "(time out of range)";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

Result<TimePoint> ParseRfc3339(std::string_view text) {
  const std::string s(text);
  auto bad = [&] {
    return InvalidArgument("invalid time \"" + s +
                           "\": expected RFC 3339, e.g. 2026-12-01T08:00:00Z");
  };
  int y, mo, d, h, mi, sec, consumed = 0;
  char sep;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%c%2d:%2d:%2d%n", &y, &mo, &d, &sep, &h, &mi, &sec,
                  &consumed) != 7 ||
      (sep != 'T' && sep != 't' && sep != ' ')) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return bad();
  std::string_view rest = std::string_view(s).substr(static_cast<size_t>(consumed));
  if (!rest.empty() && rest[0] == '.') {
    size_t i = 1;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) ++i;
    if (i == 1) return bad();
    rest.remove_prefix(i);  // sub-second precision is not needed by any caller
  }
  long offset = 0;
  if (rest == "Z" || rest == "z") {
    offset = 0;
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int oh, om;
    if (std::sscanf(std::string(rest.substr(1)).c_str(), "%2d:%2d", &oh, &om) != 2) return bad();
    offset = (oh * 3600L + om * 60L) * (rest[0] == '-' ? -1 : 1);
  } else {
    return bad();
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const std::time_t t = timegm(&tm);
  return FromUnixSeconds(static_cast<int64_t>(t) - offset);
}

}  // namespace istioca
