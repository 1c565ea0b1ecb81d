// base/status.h — errors as values.
//
// A Status carries a code, a message that is safe to show a client or an operator, and an
// optional detail for the log only (it may name files, OpenSSL error strings, ...; it never
// carries key material). Result<T> is a T or a non-OK Status. Nothing here throws.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace istioca {

enum class Code {
  kOk,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kUnauthenticated,
  kFailedPrecondition,
  kResourceExhausted,
  kUnavailable,
  kAborted,
  kDeadlineExceeded,
  kInternal,
};

const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message, std::string detail = {})
      : code_(code), message_(std::move(message)), detail_(std::move(detail)) {}

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::string& detail() const { return detail_; }
  // Lets RETURN_IF_ERROR treat a Status and a Result alike.
  const Status& status() const { return *this; }
  // "message (detail)" for logs and command-line tools run by the operator.
  std::string ToString() const;
  // Prefixes the message with context ("reading key.pem: ...").
  Status WithContext(const std::string& context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
  std::string detail_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgument(std::string m, std::string d = {}) {
  return Status(Code::kInvalidArgument, std::move(m), std::move(d));
}
inline Status NotFound(std::string m, std::string d = {}) {
  return Status(Code::kNotFound, std::move(m), std::move(d));
}
inline Status FailedPrecondition(std::string m, std::string d = {}) {
  return Status(Code::kFailedPrecondition, std::move(m), std::move(d));
}
inline Status Unavailable(std::string m, std::string d = {}) {
  return Status(Code::kUnavailable, std::move(m), std::move(d));
}
inline Status Internal(std::string m, std::string d = {}) {
  return Status(Code::kInternal, std::move(m), std::move(d));
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace istioca

#define ISTIOCA_CONCAT_INNER(a, b) a##b
#define ISTIOCA_CONCAT(a, b) ISTIOCA_CONCAT_INNER(a, b)

// RETURN_IF_ERROR(expr): returns the Status of a failed expr (a Status or a Result).
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    auto&& istioca_status_ = (expr);                            \
    if (!istioca_status_.ok()) return istioca_status_.status(); \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): lhs = value of a Result, or return its Status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(ISTIOCA_CONCAT(istioca_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
