// istio-ca: all behaviour lives in the libraries; this only hands over the command line.
#include <absl/synchronization/mutex.h>

#include "ca/cmd/cli.h"

int main(int argc, char** argv) {
  // Debian's abseil is built with mutex deadlock detection on: it keeps a graph of lock orders
  // on every gRPC mutex operation, about 3% of the daemon's CPU per certificate under perf. A
  // debugging aid; off, as in a release build of abseil.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return istioca::ca::RunCli(argc, argv);
}
