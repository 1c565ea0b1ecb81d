// ca/files.h — file writing that never leaves a half-written file behind, shared by the local
// secret store, the CA store, the liveness file and the node agent.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace istioca {

// An errno as a Status: ENOENT → NotFound, EEXIST/ENOTEMPTY → AlreadyExists,
// EACCES/EPERM/EROFS → PermissionDenied, anything else Unavailable. `what` names the operation.
Status ErrnoStatus(const std::string& what, const std::string& path, int err);

// Entries of a directory, without "." and ".." (name, d_type). Empty on error.
std::vector<std::pair<std::string, unsigned char>> ReadDir(const std::string& path);
Result<std::string> ReadLink(const std::string& path);
// Reads a whole file, refusing one larger than `max_bytes`.
Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes = 1 << 20);

// Creates `path` (it must not exist) with `mode` from the start; `durable` fsyncs it.
Status WriteNewFile(const std::string& path, std::string_view data, int mode, bool durable = false);
// Writes via a temporary file in the same directory and rename(2); `mode` applies from creation.
Status WriteFileAtomic(const std::string& path, std::string_view data, int mode = 0644,
                       bool durable = false);
// Replaces (or creates) a symlink atomically: a temporary link renamed over the name.
Status ReplaceSymlink(const std::string& target, const std::string& link);
void RemoveAll(const std::string& path);

// Publishes files that live in one directory as one unit, with kubelet's atomic-writer scheme
// (what a Secret volume looks like):
//   DIR/..data -> ..g<unique>           swapped with one rename(2)
//   DIR/<name> -> ..data/<name>         created once (a regular file there is replaced)
//   DIR/..g<unique>/<name>              the new files, written in full before the swap
// A reader that resolves ..data once sees either every old file or every new one, and a crash
// leaves the previous set published. Missing or replaced per-file links are repaired, and every
// other ..* entry (older generations, orphans of an interrupted publication) is removed after
// the swap.
// `data` is borrowed (the caller keeps it alive for the call), so key material is not copied.
struct FileToPublish {
  std::string name;  // a plain file name, no '/'
  std::string_view data;
  int mode = 0644;
};
Status PublishTogether(const std::string& dir, const std::vector<FileToPublish>& files,
                       bool durable);

}  // namespace istioca
