// base/secret.h — a string that holds key material and wipes it when it goes away.
//
// Private-key PEM lives in ordinary heap memory between encoding and use; a SecretString
// overwrites its bytes on destruction (and on assignment over it) with writes the compiler may
// not drop, so freed pages do not keep keys around. It is move-only so that no silent copy
// escapes the wipe; `str()` hands out a reference, and a caller that copies it owns the copy.
// What it does not do: lock pages in memory, or wipe copies the caller makes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace istioca {

// Overwrites `size` bytes at `p` with zeros in a way the optimiser cannot remove.
void Cleanse(void* p, size_t size);

class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string&& value) : value_(std::move(value)) {}
  SecretString(SecretString&& other) noexcept { value_.swap(other.value_); }
  SecretString& operator=(SecretString&& other) noexcept;
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  ~SecretString() { Wipe(); }

  const std::string& str() const { return value_; }
  std::string_view view() const { return value_; }
  bool empty() const { return value_.empty(); }
  size_t size() const { return value_.size(); }

 private:
  void Wipe();
  std::string value_;
};

}  // namespace istioca
