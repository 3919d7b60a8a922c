// Child processes for tests: short commands run to completion (run_command), and long-running
// ones such as gate46d or a real peer (process) whose output goes to a log file.
//
// Children are started with fork/exec, never through a shell, with default signal dispositions,
// an empty signal mask, stdin from /dev/null, no inherited descriptors beyond 0-2, and
// PR_SET_PDEATHSIG=SIGKILL so that a crashed test binary leaves no daemon behind. They stay in
// the test's process group, so interrupting ctest reaches them too. They are signalled and
// reaped by PID only, never by name.
//
// To run inside a network namespace, prefix argv with netns::command(): `ip netns exec` execs
// in place, so the PID is the command's own.
//
// Thread-safety: a process object belongs to one thread (the test's).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gate46/testing/temp_dir.hpp"
#include "gate46/testing/wait.hpp"

namespace gate46::testing {

struct command_result {
  // Exit status, or 128 + signal number when killed by a signal (shell convention).
  int status = -1;
  // The command outlived its timeout and was killed with SIGKILL (status is then 128 + 9).
  bool timed_out = false;
  std::string out;  // stdout
  std::string err;  // stderr
  [[nodiscard]] bool ok() const noexcept { return !timed_out && status == 0; }
};

// Runs argv[0] (looked up in PATH when it has no '/') with the arguments, waits at most
// `timeout`, and captures stdout and stderr separately. Throws std::system_error if the program
// cannot be started (not found, not executable).
command_result run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 10s);

// run_command, then throws std::runtime_error naming the command, its status and its output
// unless it exited 0. Returns stdout.
std::string run_checked(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 10s);

// "ip netns exec gw /path/gate46d --config ..." for messages.
std::string join_argv(const std::vector<std::string>& argv);

class process {
 public:
  // Starts argv (PATH lookup as run_command) with stdout and stderr appended to log_path() in a
  // temp_dir of its own. Throws std::system_error if it cannot be started.
  explicit process(std::vector<std::string> argv);
  process(const process&) = delete;
  process& operator=(const process&) = delete;
  process(process&& other) noexcept;
  process& operator=(process&&) = delete;
  // If still running: SIGTERM, up to stop_timeout() for it to exit, then SIGKILL and reap.
  // If the current test has failed, the log is copied to stderr (its last 64 KiB) first.
  ~process();

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] const std::vector<std::string>& argv() const noexcept { return argv_; }

  // Sends a signal. Returns false, sending nothing, once the process has been reaped (its PID
  // may belong to someone else by then).
  bool signal(int signo);

  // Waits at most `timeout` for the process to exit and reaps it. Returns its exit status
  // (128 + signal when killed by one), or nullopt if it is still running. Once reaped, returns
  // the same status at once.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // True until the process has exited (reaps it if it just did).
  [[nodiscard]] bool running() { return !wait_exit(0ms).has_value(); }

  [[nodiscard]] const std::filesystem::path& log_path() const noexcept { return log_path_; }
  // The log from byte offset `from` on ("" if there is nothing yet).
  [[nodiscard]] std::string log_text(std::size_t from = 0) const;
  // The current log size: pass it as `from` to look only at what comes after this point (for
  // instance the reaction to a signal sent next).
  [[nodiscard]] std::size_t log_mark() const;
  // Polls the log (from offset `from`) until it contains `needle`. Returns false at the
  // deadline, or as soon as the process has exited without having written it.
  bool wait_for_log(std::string_view needle, std::chrono::milliseconds timeout, std::size_t from = 0);

  // The destructor's grace period between SIGTERM and SIGKILL (default 5 s).
  void set_stop_timeout(std::chrono::milliseconds timeout) noexcept { stop_timeout_ = timeout; }

 private:
  std::vector<std::string> argv_;
  temp_dir log_dir_;
  std::filesystem::path log_path_;
  pid_t pid_ = -1;
  int pidfd_ = -1;                  // -1 where pidfd_open is unavailable (then waits poll)
  std::optional<int> exit_status_;  // set once reaped
  std::chrono::milliseconds stop_timeout_ = 5s;
};

}  // namespace gate46::testing
