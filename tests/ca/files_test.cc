// base/files.h: atomic single-file writes and the ..data publication of a set of files.
#include "base/files.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/ca/temp_dir.h"
#include "tests/testing/no_file_growth.h"

using namespace istioca;
using istioca::testing::ReadAll;
using istioca::testing::TempDir;
using istioca::testing::WriteFile;
namespace fs = std::filesystem;

namespace {
constexpr auto kOwnerRw = fs::perms::owner_read | fs::perms::owner_write;

int Generations(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    n += e.is_directory() && !e.is_symlink() && e.path().filename().string().rfind("..g", 0) == 0;
  }
  return n;
}
}  // namespace

TEST_CASE("files: an atomic write replaces the file with the requested mode", "[files]") {
  TempDir d;
  const std::string p = d / "f";
  REQUIRE(istioca::WriteFileAtomic(p, "one", 0600, true).ok());
  REQUIRE(istioca::WriteFileAtomic(p, "two", 0600).ok());
  CHECK(ReadAll(p) == "two");
  CHECK((fs::status(p).permissions() & fs::perms::all) == kOwnerRw);
  CHECK(std::distance(fs::directory_iterator(d.path()), fs::directory_iterator()) ==
        1);  // no temp left
  Status s = istioca::WriteFileAtomic("/nonexistent-dir/x", "y", 0600);
  CHECK(s.code() == Code::kNotFound);
}

TEST_CASE("files: a set of files is published through one ..data swap", "[files]") {
  TempDir d;
  WriteFile(d / "key.pem", "old key");  // a regular file from before: replaced by a link
  REQUIRE(
      istioca::PublishTogether(d.path(), {{"key.pem", "k1", 0600}, {"cert.pem", "c1", 0644}}, false)
          .ok());
  const fs::path gen1 = fs::read_symlink(d / "..data");
  CHECK(fs::read_symlink(d / "key.pem") == "..data/key.pem");
  CHECK(ReadAll(d / "key.pem") == "k1");
  CHECK(ReadAll(d / "cert.pem") == "c1");
  CHECK((fs::status(d / "key.pem").permissions() & fs::perms::all) == kOwnerRw);

  REQUIRE(
      istioca::PublishTogether(d.path(), {{"key.pem", "k2", 0600}, {"cert.pem", "c2", 0644}}, true)
          .ok());
  CHECK(fs::read_symlink(d / "..data") != gen1);
  CHECK_FALSE(fs::exists(d / gen1.string()));
  CHECK(Generations(d.path()) == 1);
  CHECK(ReadAll(d / "key.pem") == "k2");
  CHECK(ReadAll(d / "cert.pem") == "c2");
}

TEST_CASE("files: a publication that fails leaves the previous set in place and no debris",
          "[files]") {
  TempDir d;
  REQUIRE(
      istioca::PublishTogether(d.path(), {{"key.pem", "k1", 0600}, {"cert.pem", "c1", 0644}}, false)
          .ok());
  const fs::path gen1 = fs::read_symlink(d / "..data");
  // A name that would escape the directory (or collide with the scheme's own names) is refused.
  for (const char* bad : {"../x", "", "..data", "a/b"}) {
    INFO(bad);
    Status s =
        istioca::PublishTogether(d.path(), {{"key.pem", "k2", 0600}, {bad, "x", 0644}}, false);
    CHECK(s.code() == Code::kInvalidArgument);
  }
  CHECK(fs::read_symlink(d / "..data") == gen1);
  CHECK(ReadAll(d / "key.pem") == "k1");
  CHECK(Generations(d.path()) == 1);
  // A write that fails half-way (here: every file write fails, which a read-only directory
  // would not achieve for root): nothing changes and no generation directory is left behind.
  {
    istioca::testing::NoFileGrowth no_writes;
    REQUIRE(no_writes.active());
    CHECK_FALSE(istioca::PublishTogether(d.path(), {{"key.pem", "k3", 0600}}, false).ok());
  }
  CHECK(ReadAll(d / "key.pem") == "k1");
  CHECK(Generations(d.path()) == 1);
}
