#include "base/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace istioca {

namespace {
constexpr const char* kDataLink = "..data";
std::atomic<uint64_t> counter{0};
}  // namespace

Status ErrnoStatus(const std::string& what, const std::string& path, int err) {
  const std::string detail = path + ": " + std::strerror(err);
  switch (err) {
    case ENOENT: return NotFound(what + " failed: not found", detail);
    case EEXIST:
    case ENOTEMPTY: return Status(Code::kAlreadyExists, what + " failed: already exists", detail);
    case EACCES:
    case EPERM:
    case EROFS:
      return Status(Code::kPermissionDenied, what + " failed: " + std::strerror(err), detail);
    default: return Unavailable(what + " failed: " + std::strerror(err), detail);
  }
}

std::vector<std::pair<std::string, unsigned char>> ReadDir(const std::string& path) {
  std::vector<std::pair<std::string, unsigned char>> out;
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (lstat((path + "/" + e->d_name).c_str(), &st) == 0) {
        type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISLNK(st.st_mode) ? DT_LNK : DT_REG;
      }
    }
    out.emplace_back(std::string(name), type);
  }
  closedir(d);
  return out;
}

Result<std::string> ReadLink(const std::string& path) {
  char buf[4096];
  const ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  if (n < 0) return ErrnoStatus("readlink", path, errno);
  return std::string(buf, static_cast<size_t>(n));
}

Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("reading " + path, path, errno);
  std::string out;
  char buf[16384];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return ErrnoStatus("reading " + path, path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      close(fd);
      return InvalidArgument("file " + path + " is larger than " + std::to_string(max_bytes) +
                             " bytes");
    }
  }
  close(fd);
  return out;
}

Status WriteNewFile(const std::string& path, std::string_view data, int mode, bool durable) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus("creating file", path, errno);
  auto fail = [&](const char* what) {
    const int err = errno;
    close(fd);
    unlink(path.c_str());
    return ErrnoStatus(what, path, err);
  };
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("writing file");
    }
    off += static_cast<size_t>(n);
  }
  if (durable && fsync(fd) != 0) return fail("syncing file");
  if (close(fd) != 0) {
    const int err = errno;
    unlink(path.c_str());
    return ErrnoStatus("closing file", path, err);
  }
  return OkStatus();
}

Status WriteFileAtomic(const std::string& path, std::string_view data, int mode, bool durable) {
  const std::string tmp =
      path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
  RETURN_IF_ERROR(WriteNewFile(tmp, data, mode, durable));
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus("renaming into place", path, err);
  }
  return OkStatus();
}

Status ReplaceSymlink(const std::string& target, const std::string& link) {
  const std::string tmp = link + ".tmp";
  unlink(tmp.c_str());
  if (symlink(target.c_str(), tmp.c_str()) != 0) return ErrnoStatus("symlink", tmp, errno);
  if (rename(tmp.c_str(), link.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus("rename", link, err);
  }
  return OkStatus();
}

void RemoveAll(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

Status PublishTogether(const std::string& dir, const std::vector<FileToPublish>& files,
                       bool durable) {
  const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  const std::string gen = "..g" + std::to_string(getpid()) + "." + std::to_string(usec) + "." +
                          std::to_string(counter++);
  const std::string gen_path = dir + "/" + gen;
  if (mkdir(gen_path.c_str(), 0755) != 0) return ErrnoStatus("mkdir", gen_path, errno);
  for (const FileToPublish& f : files) {
    if (f.name.empty() || f.name.find('/') != std::string::npos || f.name.rfind("..", 0) == 0) {
      RemoveAll(gen_path);
      return InvalidArgument("cannot publish a file named \"" + f.name + "\"");
    }
    if (Status s = WriteNewFile(gen_path + "/" + f.name, f.data, f.mode, durable); !s.ok()) {
      RemoveAll(gen_path);
      return s;
    }
  }
  if (Status s = ReplaceSymlink(gen, dir + "/" + kDataLink); !s.ok()) {
    RemoveAll(gen_path);
    return s;
  }
  // Repair the per-file links (created on first publication, or removed or replaced since).
  for (const FileToPublish& f : files) {
    const std::string want = std::string(kDataLink) + "/" + f.name;
    const std::string path = dir + "/" + f.name;
    auto link = ReadLink(path);
    if (link.ok() && *link == want) continue;
    struct stat st;
    if (lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      RemoveAll(path);  // rename cannot replace it
    RETURN_IF_ERROR(ReplaceSymlink(want, path));
  }
  // Old generations (and orphans of an interrupted publication) go only after the swap.
  for (const auto& [name, type] : ReadDir(dir)) {
    if (name.rfind("..", 0) != 0 || name == kDataLink || name == gen) continue;
    const std::string path = dir + "/" + name;
    if (type != DT_DIR) {
      unlink(path.c_str());
      continue;
    }
    for (const FileToPublish& f : files) unlink((path + "/" + f.name).c_str());
    if (rmdir(path.c_str()) != 0 && errno != ENOENT) RemoveAll(path);
  }
  return OkStatus();
}

}  // namespace istioca
