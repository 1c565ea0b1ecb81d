#include "ca/daemon/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "base/time.h"

namespace istioca::ca {

Result<uint64_t> ParseByteSize(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument("invalid size \"" + std::string(text) +
                           "\": expected a whole number with an optional unit, e.g. 100MB, "
                           "512KB, 10MiB");
  };
  size_t i = 0;
  uint64_t n = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - digit) / 10) return bad();
    n = n * 10 + digit;
    ++i;
  }
  if (i == 0) return bad();
  const std::string_view unit = text.substr(i);
  uint64_t mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  if (unit == "KB") mult = 1000;
  if (unit == "MB") mult = 1000 * 1000;
  if (unit == "GB") mult = 1000ull * 1000 * 1000;
  if (unit == "KiB") mult = 1024;
  if (unit == "MiB") mult = 1024 * 1024;
  if (unit == "GiB") mult = 1024ull * 1024 * 1024;
  if (mult == 0) return bad();
  if (n > std::numeric_limits<uint64_t>::max() / mult) return bad();
  return n * mult;
}

namespace {

// RFC 3339 in UTC with microseconds: "2026-12-02T10:40:21.123456Z".
std::string TimeWithFraction(TimePoint t) {
  const auto secs = std::chrono::floor<std::chrono::seconds>(t);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(t - secs).count();
  std::string s = FormatRfc3339(TimePoint(secs));
  if (!s.empty() && s.back() == 'Z') s.pop_back();
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06lldZ", static_cast<long long>(micros));
  return s + frac;
}

std::string Cut(const std::string& v) {
  if (v.size() <= kMaxFieldBytes) return v;
  return v.substr(0, kMaxFieldBytes) + "...(cut)";
}

CaEvent DropEvent(uint64_t count) {
  return CaEvent{SystemClock::Get().Now(), "audit_dropped", {{"dropped", std::to_string(count)}}};
}

}  // namespace

std::string AuditLine(const CaEvent& event) {
  nlohmann::ordered_json j;
  j["time"] = TimeWithFraction(event.time);
  j["event"] = event.type;
  for (const auto& [k, v] : event.fields) {
    if (k == "time" || k == "event") continue;  // the fixed keys are never overwritten
    j[k] = Cut(v);
  }
  // A field from the wire (a CSR's SAN in a refusal reason) may be invalid UTF-8: replaced,
  // so that the line stays valid JSON and the writer never throws.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<std::shared_ptr<AuditLog>> AuditLog::Open(AuditLogOptions options) {
  if (options.path.empty()) return InvalidArgument("--audit-log: empty path");
  if (options.max_files < 0) return InvalidArgument("--audit-log-max-files must not be negative");
  if (options.queue_capacity == 0) options.queue_capacity = 1;
  std::shared_ptr<AuditLog> log(new AuditLog(std::move(options)));
  RETURN_IF_ERROR(log->OpenFile());
  log->writer_ = std::thread([raw = log.get()] { raw->Run(); });
  return log;
}

AuditLog::~AuditLog() {
  Stop();
  if (fd_ >= 0 && fd_ != STDOUT_FILENO) close(fd_);
}

Status AuditLog::OpenFile() {
  if (options_.path == "-") {
    fd_ = STDOUT_FILENO;
    return OkStatus();
  }
  const int fd = open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Unavailable("--audit-log " + options_.path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return Unavailable("--audit-log " + options_.path + ": not a regular file");
  }
  // An existing file made by someone else keeps no wider access than ours.
  if ((st.st_mode & 0777) != 0600) (void)fchmod(fd, 0600);
  if (fd_ >= 0 && fd_ != STDOUT_FILENO) close(fd_);
  fd_ = fd;
  size_ = static_cast<uint64_t>(st.st_size);
  return OkStatus();
}

void AuditLog::Rotate() {
  const std::string& p = options_.path;
  const int n = options_.max_files;
  if (n == 0) {
    (void)unlink(p.c_str());
  } else {
    (void)unlink((p + "." + std::to_string(n)).c_str());
    for (int i = n - 1; i >= 1; --i) {
      (void)rename((p + "." + std::to_string(i)).c_str(),
                   (p + "." + std::to_string(i + 1)).c_str());
    }
    (void)rename(p.c_str(), (p + ".1").c_str());
  }
  if (Status s = OpenFile(); !s.ok()) {
    Logger("audit")->error("audit log rotation failed error=\"{}\"", s.ToString());
  }
}

void AuditLog::WriteLine(const std::string& line) {
  if (fd_ != STDOUT_FILENO && size_ > 0 && size_ + line.size() > options_.max_size_bytes) {
    Rotate();
  }
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t w = write(fd_, line.data() + off, line.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (!write_failing_) {
        Logger("audit")->error("audit log write failed path={} error=\"{}\"", options_.path,
                               std::strerror(errno));
      }
      write_failing_ = true;
      std::lock_guard<std::mutex> lock(mu_);
      ++dropped_total_;
      return;
    }
    off += static_cast<size_t>(w);
  }
  write_failing_ = false;
  size_ += line.size();
}

void AuditLog::Record(const CaEvent& event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queue_.size() >= options_.queue_capacity) {
      ++unreported_drops_;
      ++dropped_total_;
      return;
    }
    queue_.push_back(event);
    ++accepted_;
    max_queued_ = std::max(max_queued_, queue_.size());
  }
  cv_.notify_one();
}

void AuditLog::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || unreported_drops_ > 0; });
    if (queue_.empty() && unreported_drops_ == 0 && stopping_) break;
    std::deque<CaEvent> batch;
    batch.swap(queue_);
    const uint64_t drops = unreported_drops_;
    unreported_drops_ = 0;
    writer_busy_ = true;
    lock.unlock();
    // The queued events came before the ones dropped for lack of room: they go first.
    for (const CaEvent& e : batch) WriteLine(AuditLine(e) + "\n");
    if (drops > 0) WriteLine(AuditLine(DropEvent(drops)) + "\n");
    lock.lock();
    handled_ += batch.size();
    writer_busy_ = false;
    done_cv_.notify_all();
  }
  writer_busy_ = false;
  writer_done_ = true;
  done_cv_.notify_all();
}

void AuditLog::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = accepted_;
  done_cv_.wait(lock, [&] {
    return writer_done_ || (handled_ >= target && unreported_drops_ == 0 && !writer_busy_);
  });
}

void AuditLog::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

uint64_t AuditLog::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_total_;
}

size_t AuditLog::max_queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_queued_;
}

}  // namespace istioca::ca
