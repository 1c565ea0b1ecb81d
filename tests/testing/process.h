// tests/testing/process.h — child processes for end-to-end tests: the real binary spawned with
// its stderr in a log file, stopped by a signal within a bound, and one-shot CLI runs whose
// output and exit code the test reads.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace istioca::testing {

// A port on 127.0.0.1 that was free a moment ago: bound to port 0, read back and released, for a
// child that cannot report a port it picked itself (0 means "off" for its monitoring port).
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// The exit code of a waited-for child: its own, or 128 + the signal that ended it (as a shell).
inline int ExitCode(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A child process running `args` (args[0] is the binary's path), stdout discarded, stderr
// appended to `log`. Destroying it kills the child.
class Process {
 public:
  Process(std::vector<std::string> args, const std::string& log) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
  }
  ~Process() { Stop(SIGKILL); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  // Sends `sig` and waits for the child to end: its exit code (ExitCode), or -1 when it was not
  // running or had to be killed after `timeout`.
  int Stop(int sig = SIGTERM,
           std::chrono::milliseconds timeout = std::chrono::milliseconds(20000)) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ExitCode(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

struct CliRun {
  int exit_code = -1;
  std::string out;  // stdout, and stderr too when asked for
};

// Runs `args` (args[0] is the binary's path) to its end, no shell in between: what it wrote to
// stdout (and to stderr, interleaved, when `with_stderr`; otherwise stderr is discarded). A
// binary that cannot be started gives exit code -1. No Catch assertion inside: callers may poll
// from any thread.
inline CliRun RunCli(std::vector<std::string> args, bool with_stderr) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  CliRun r;
  int fds[2];
  if (pipe(fds) != 0) return r;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  if (with_stderr) {
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  } else {
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc == 0) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) r.out.append(buf, static_cast<size_t>(n));
    int status = 0;
    waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  close(fds[0]);
  return r;
}

}  // namespace istioca::testing
