// tests/ca/temp_dir.h — a scratch directory removed at the end of a test, and a way to make a
// directory read-only even for root (chmod alone does not stop root).
#pragma once

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace istioca::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "istioca-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Makes `dir` unwritable while alive: mode 0555, plus the immutable flag when running as root.
class ReadOnlyDir {
 public:
  explicit ReadOnlyDir(std::string dir) : dir_(std::move(dir)) {
    chmod(dir_.c_str(), 0555);
    if (geteuid() != 0) {
      effective_ = true;
      return;
    }
    effective_ = SetImmutable(true);
  }
  ~ReadOnlyDir() {
    if (geteuid() == 0) SetImmutable(false);
    chmod(dir_.c_str(), 0755);
  }
  bool effective() const { return effective_; }

 private:
  bool SetImmutable(bool on) {
    const int fd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return false;
    int flags = 0;
    bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    if (ok) {
      flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
      ok = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    }
    close(fd);
    return ok;
  }
  std::string dir_;
  bool effective_ = false;
};

}  // namespace istioca::testing
