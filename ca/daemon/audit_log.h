// ca/daemon/audit_log.h — the audit log: every CaEvent as one JSON line, in a file or on stdout.
//
// Promises: Record() only copies the event into a bounded in-memory queue and returns; a writer
// thread formats and writes. So a slow or full disk never holds up signing. When the queue is
// full the event is dropped and counted, and the writer later writes one "audit_dropped" line
// with how many were lost since the previous such line. Lines are
//   {"time":"2026-12-02T10:40:21.123456Z","event":"issued","serial":"...",...}
// with "time" and "event" first and every field of the event after them, as strings. A field
// value is cut at kMaxFieldBytes so that one line stays far below any allowed max_size.
// A file is created 0600 and rotated by size: when the next line would take PATH past
// max_size_bytes, PATH.(N-1) → PATH.N (the old PATH.N is removed), ..., PATH → PATH.1, and a new
// PATH is started; N = max_files. So the log never holds more than max_size × (max_files + 1)
// bytes, whatever the rate of events.
//
// Does not promise: that a line reached the disk (no fsync; a crash can lose the last lines),
// or order across threads beyond queue order. It never sees a key or a token because no
// producer puts one in an event (ca/core/events.h).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "base/status.h"
#include "ca/core/events.h"

namespace istioca::ca {

struct AuditLogOptions {
  std::string path;                                // "-": stdout (never rotated)
  uint64_t max_size_bytes = 100ull * 1000 * 1000;  // per file
  int max_files = 5;                               // rotated files kept besides PATH
  size_t queue_capacity = 10000;                   // events waiting for the writer
};

// Flag bounds: a line is at most a few KiB (fields are cut), so a file always holds many.
inline constexpr uint64_t kMinAuditLogSize = 16 * 1024;
inline constexpr int kMaxAuditLogFiles = 1000;
inline constexpr size_t kMaxFieldBytes = 1024;

// "100MB", "512KB", "10MiB", "4096" (bytes). KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024.
// Anything else (a sign, a fraction, spaces, an unknown unit, overflow) is InvalidArgument.
Result<uint64_t> ParseByteSize(std::string_view text);

// One event as its JSON line, without the newline. Pure: tests check the format with it.
std::string AuditLine(const CaEvent& event);

class AuditLog final : public EventSink {
 public:
  // Opens (creates 0600, or appends to) the file and starts the writer.
  static Result<std::shared_ptr<AuditLog>> Open(AuditLogOptions options);
  ~AuditLog() override;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Never blocks on I/O; drops (and counts) when the queue is full or the log is stopped.
  void Record(const CaEvent& event) override;
  // Returns once everything recorded before the call is written (or dropped and reported).
  void Flush();
  // Writes what is queued, then closes. Idempotent; later events are dropped.
  void Stop();

  uint64_t dropped() const;
  // The most events ever waiting at once (tests: memory stays bounded by the queue).
  size_t max_queued() const;

 private:
  explicit AuditLog(AuditLogOptions options) : options_(std::move(options)) {}
  Status OpenFile();
  void Rotate();
  void WriteLine(const std::string& line);
  void Run();

  const AuditLogOptions options_;
  int fd_ = -1;
  uint64_t size_ = 0;           // of the current file (writer thread only)
  bool write_failing_ = false;  // writer thread only: log a failure once per streak

  mutable std::mutex mu_;
  std::condition_variable cv_;       // the writer waits for work
  std::condition_variable done_cv_;  // Flush waits for the writer
  std::deque<CaEvent> queue_;
  uint64_t accepted_ = 0, handled_ = 0;  // events queued / written or lost by the writer
  uint64_t unreported_drops_ = 0;
  uint64_t dropped_total_ = 0;
  size_t max_queued_ = 0;
  bool stopping_ = false;
  bool writer_busy_ = false;
  bool writer_done_ = false;
  std::thread writer_;
};

}  // namespace istioca::ca
