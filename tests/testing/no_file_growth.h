// tests/testing/no_file_growth.h — make every file write of this process fail, even as root.
//
// A read-only directory does not stop root (CAP_DAC_OVERRIDE), and tests here usually run as
// root, so a test that relied on one would silently check nothing. Lowering the soft
// RLIMIT_FSIZE to 0 makes every write(2) that would grow a file fail with EFBIG for any user;
// restoring the soft limit needs no privilege because the hard limit is left alone. SIGXFSZ is
// ignored meanwhile so the write reports the error instead of killing the process. Process-wide:
// use it only while no other thread of the test writes files.
#pragma once

#include <signal.h>
#include <sys/resource.h>

namespace istioca::testing {

class NoFileGrowth {
 public:
  NoFileGrowth() {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit zero = saved_;
    zero.rlim_cur = 0;
    active_ = setrlimit(RLIMIT_FSIZE, &zero) == 0;
  }
  ~NoFileGrowth() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, old_handler_);
  }
  NoFileGrowth(const NoFileGrowth&) = delete;
  NoFileGrowth& operator=(const NoFileGrowth&) = delete;
  // Whether the limit was applied (a test REQUIREs it rather than skipping its check).
  bool active() const { return active_; }

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = SIG_DFL;
  bool active_ = false;
};

}  // namespace istioca::testing
