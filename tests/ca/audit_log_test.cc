// The audit log sink (ca/daemon/audit_log.h): its line format, file mode, size rotation and the
// bounded queue that drops (and says so) instead of growing. The events it is fed by the real
// daemon are checked end to end in serve_test.cc.
#include "ca/daemon/audit_log.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/ca/temp_dir.h"
#include "tests/testing/test_ca.h"

using namespace istioca;
using namespace istioca::ca;
using istioca::testing::Must;
using istioca::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

CaEvent Issued(int i) {
  return CaEvent{SystemClock::Get().Now(),
                 "issued",
                 {{"serial", "0a1b" + std::to_string(i)},
                  {"spiffe_id", "spiffe://cluster.local/ns/default/sa/web"},
                  {"caller", "spiffe://cluster.local/ns/default/sa/web"},
                  {"authn", "mtls"},
                  {"api", "modern"},
                  {"ttl_seconds", "86400"},
                  {"not_after", "2026-12-03T10:00:00Z"},
                  {"peer", "ipv4:127.0.0.1:5000"}}};
}

}  // namespace

TEST_CASE("audit log: a line is one JSON object, time (with fraction) and event first", "[audit]") {
  const TimePoint t = Must(ParseRfc3339("2026-12-02T10:40:21Z")) + std::chrono::microseconds(1234);
  const std::string line = AuditLine(
      CaEvent{t, "refused", {{"code", "PermissionDenied"}, {"reason", "a \"quoted\"\nreason"}}});
  CHECK(line.rfind(R"({"time":"2026-12-02T10:40:21.001234Z","event":"refused",)", 0) == 0);
  CHECK(line.find('\n') == std::string::npos);
  const auto j = nlohmann::json::parse(line);
  CHECK(j["reason"] == "a \"quoted\"\nreason");
  CHECK(j["code"] == "PermissionDenied");
  // A field cannot take the place of the fixed keys; invalid UTF-8 and huge values stay safe.
  const auto odd = nlohmann::json::parse(AuditLine(
      CaEvent{t,
              "refused",
              {{"event", "forged"}, {"reason", "\xff\xfe"}, {"big", std::string(5000, 'x')}}}));
  CHECK(odd["event"] == "refused");
  CHECK(odd["big"].get<std::string>().size() < 1100);
}

TEST_CASE("audit log: every recorded event is a parseable line with its fields, file 0600",
          "[audit]") {
  TempDir d;
  const std::string path = d / "audit.log";
  auto log = Must(AuditLog::Open({path, 1 << 20, 2, 100}));
  for (int i = 0; i < 10; ++i) log->Record(Issued(i));
  log->Record(CaEvent{SystemClock::Get().Now(),
                      "secret_refreshed",
                      {{"namespace", "default"},
                       {"name", "istio.web"},
                       {"reason", "grace-period"},
                       {"serial", "ab"},
                       {"not_after", "2026-12-03T10:00:00Z"}}});
  log->Flush();
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const auto lines = Lines(path);
  REQUIRE(lines.size() == 11);
  for (int i = 0; i < 10; ++i) {
    const auto j = nlohmann::json::parse(lines[i]);
    CHECK(j["event"] == "issued");
    CHECK(j["serial"] == "0a1b" + std::to_string(i));  // queue order is kept
    for (const char* k :
         {"time", "spiffe_id", "caller", "authn", "api", "ttl_seconds", "not_after", "peer"}) {
      CHECK(j.contains(k));
    }
  }
  CHECK(nlohmann::json::parse(lines[10])["reason"] == "grace-period");
  // Stop writes what is left; later events are dropped, not written after the close.
  log->Stop();
  log->Record(Issued(99));
  CHECK(Lines(path).size() == 11);
}

TEST_CASE("audit log: rotation keeps at most N old files, each within the size bound", "[audit]") {
  TempDir d;
  const std::string path = d / "audit.log";
  const uint64_t max_size = 4096;
  const int max_files = 3;
  // An old file from someone else with a wider mode is appended to and narrowed.
  istioca::testing::WriteFile(path, "");
  chmod(path.c_str(), 0644);
  auto log = Must(AuditLog::Open({path, max_size, max_files, 100000}));
  for (int i = 0; i < 2000; ++i) log->Record(Issued(i));
  log->Flush();
  log->Stop();
  uint64_t total = 0;
  std::string last_serial;
  for (int i = 0; i <= max_files; ++i) {
    const std::string p = i == 0 ? path : path + "." + std::to_string(i);
    REQUIRE(fs::exists(p));
    CHECK(fs::file_size(p) <= max_size);
    total += fs::file_size(p);
    struct stat st {};
    REQUIRE(stat(p.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    for (const std::string& line : Lines(p))
      CHECK(nlohmann::json::parse(line)["event"] == "issued");
  }
  CHECK_FALSE(fs::exists(path + "." + std::to_string(max_files + 1)));
  CHECK(total <= max_size * (max_files + 1));
  // The newest event is in PATH; PATH.1 holds the ones just before it.
  const auto current = Lines(path);
  REQUIRE_FALSE(current.empty());
  CHECK(nlohmann::json::parse(current.back())["serial"] == "0a1b1999");
}

TEST_CASE("audit log: a flood past a tiny queue is dropped, counted and reported in the log",
          "[audit]") {
  TempDir d;
  const std::string path = d / "audit.log";
  const size_t capacity = 4;
  auto log = Must(AuditLog::Open({path, 1ull << 30, 1, capacity}));
  const int n = 100000;
  for (int i = 0; i < n; ++i) log->Record(Issued(i));
  log->Flush();
  log->Stop();
  // Memory: never more than the queue's capacity waiting, whatever the rate.
  CHECK(log->max_queued() <= capacity);
  const uint64_t dropped = log->dropped();
  CHECK(dropped > 0);
  uint64_t written = 0, reported = 0;
  for (const std::string& line : Lines(path)) {
    const auto j = nlohmann::json::parse(line);
    if (j["event"] == "audit_dropped") {
      reported += std::stoull(j["dropped"].get<std::string>());
    } else {
      ++written;
    }
  }
  // Every event is either written or counted in a "dropped" line: nothing vanishes silently.
  CHECK(reported == dropped);
  CHECK(written + dropped == static_cast<uint64_t>(n));
}

TEST_CASE("audit log: sizes are parsed strictly", "[audit]") {
  CHECK(Must(ParseByteSize("100MB")) == 100000000);
  CHECK(Must(ParseByteSize("512KB")) == 512000);
  CHECK(Must(ParseByteSize("10MiB")) == 10 * 1024 * 1024);
  CHECK(Must(ParseByteSize("4096")) == 4096);
  CHECK(Must(ParseByteSize("1GiB")) == 1024ull * 1024 * 1024);
  const std::string bad = GENERATE("", "MB", "-1MB", "1.5MB", " 1MB", "1MB ", "1 MB", "1mb", "1TB",
                                   "99999999999999999999", "20000000000GB", "0x10");
  INFO(bad);
  CHECK_FALSE(ParseByteSize(bad).ok());
}
