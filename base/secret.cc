#include "base/secret.h"

namespace istioca {

void Cleanse(void* p, size_t size) {
  // Writes through a volatile pointer are observable behaviour, so they survive dead-store
  // elimination even though the memory is freed right after.
  volatile unsigned char* bytes = static_cast<volatile unsigned char*>(p);
  for (size_t i = 0; i < size; ++i) bytes[i] = 0;
}

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    Wipe();
    value_.swap(other.value_);
  }
  return *this;
}

void SecretString::Wipe() {
  // Growing to the capacity (which never reallocates) makes the whole buffer, including bytes
  // past the current length, addressable for the wipe.
  value_.resize(value_.capacity());
  Cleanse(value_.data(), value_.size());
  value_.clear();
}

}  // namespace istioca
