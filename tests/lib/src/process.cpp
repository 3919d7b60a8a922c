#include "gate46/testing/process.hpp"

#include "gate46/testing/unique_fd.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

namespace gate46::testing {
namespace {

using clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error{errno, std::generic_category(), what};
}

// execvp's lookup, done before fork so that the child only has to call execve.
std::string resolve_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return name;
  }
  const char* env = std::getenv("PATH");  // NOLINT(concurrency-mt-unsafe): nothing here sets it
  const std::string search =
      env != nullptr && *env != '\0' ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::size_t start = 0;
  while (start <= search.size()) {
    const auto colon = std::min(search.find(':', start), search.size());
    const auto dir = search.substr(start, colon - start);
    auto candidate = (dir.empty() ? std::string{"."} : dir) + '/' + name;
    struct stat info {};
    if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = colon + 1;
  }
  throw std::system_error{ENOENT, std::generic_category(), "cannot find \"" + name + "\" in PATH"};
}

// A descriptor that polls readable when `pid` exits, or -1 (kernels before 5.3). Through
// syscall(): glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage for C++.
int open_pidfd(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U));
}

// 0..127 for an exit, 128 + N for death by signal N.
int decode_status(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return WEXITSTATUS(wait_status);
  }
  if (WIFSIGNALED(wait_status)) {
    return 128 + WTERMSIG(wait_status);
  }
  return -1;
}

// Starts argv with stdin from /dev/null and stdout/stderr on the given descriptors. Everything
// the child needs is prepared first: between fork and execve it makes only async-signal-safe
// calls. An execve failure comes back through a close-on-exec pipe and is thrown here.
pid_t spawn(const std::vector<std::string>& argv, int out_fd, int err_fd) {
  if (argv.empty()) {
    throw std::invalid_argument{"spawn: empty argv"};
  }
  const auto path = resolve_executable(argv[0]);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));  // execve's signature; it does not write
  }
  args.push_back(nullptr);

  unique_fd devnull{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  if (devnull.get() < 0) {
    throw_errno("open /dev/null");
  }
  auto report = make_pipe();
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  const int max_fd =
      files.rlim_cur == RLIM_INFINITY ? 65536 : static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20));
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    throw_errno("fork");
  }
  if (pid == 0) {
    // The child dies with the test binary, whatever kills it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);
    }
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // NOLINT(concurrency-mt-unsafe): the child has one thread
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int signo = 1; signo < NSIG; ++signo) {
      ::sigaction(signo, &dfl, nullptr);  // fails harmlessly for SIGKILL, SIGSTOP and glibc's own
    }
    if (::dup2(devnull.get(), 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) {
      const int error = errno;
      (void)!::write(report.write_end.get(), &error, sizeof error);
      ::_exit(127);
    }
    // Nothing else of the test's reaches the command (the report pipe closes at execve).
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < max_fd; ++fd) {
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      }
    }
    ::execve(path.c_str(), args.data(), environ);
    const int error = errno;
    (void)!::write(report.write_end.get(), &error, sizeof error);
    ::_exit(127);
  }

  report.write_end.reset();
  int error = 0;
  ssize_t n = 0;
  do {
    n = ::read(report.read_end.get(), &error, sizeof error);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof error)) {
    int ignored = 0;
    ::waitpid(pid, &ignored, 0);
    throw std::system_error{error, std::generic_category(), "cannot execute " + path};
  }
  return pid;
}

// Waits until `pid` has exited or `deadline` has passed; reaps it and returns its status if it
// exited. `pidfd` (or -1) makes the wait a poll() instead of a 10 ms loop.
std::optional<int> reap_until(pid_t pid, int pidfd, clock::time_point deadline) {
  for (;;) {
    int wait_status = 0;
    const pid_t r = ::waitpid(pid, &wait_status, WNOHANG);
    if (r == pid) {
      return decode_status(wait_status);
    }
    if (r < 0 && errno != EINTR) {
      return -1;  // ECHILD: reaped by someone else; it is gone either way
    }
    const auto now = clock::now();
    if (r == 0 && now >= deadline) {
      return std::nullopt;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 60'000)));
    } else {
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(left, 10ms));
    }
  }
}

// Reads what is there; false on EOF or error (then the descriptor is done).
bool read_some(int fd, std::string& into) {
  std::array<char, 16384> buffer{};
  const ssize_t n = ::read(fd, buffer.data(), buffer.size());
  if (n > 0) {
    into.append(buffer.data(), static_cast<std::size_t>(n));
    return true;
  }
  return n < 0 && (errno == EINTR || errno == EAGAIN);
}

void drain_nonblocking(unique_fd& fd, std::string& into) {
  if (fd.get() < 0) {
    return;
  }
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  std::array<char, 16384> buffer{};
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n > 0) {
      into.append(buffer.data(), static_cast<std::size_t>(n));
    } else if (!(n < 0 && errno == EINTR)) {
      break;
    }
  }
  fd.reset();
}

}  // namespace

std::string join_argv(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& arg : argv) {
    text += (text.empty() ? "" : " ") + arg;
  }
  return text;
}

command_result run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  auto out_pipe = make_pipe();
  auto err_pipe = make_pipe();
  const pid_t pid = spawn(argv, out_pipe.write_end.get(), err_pipe.write_end.get());
  out_pipe.write_end.reset();
  err_pipe.write_end.reset();
  const unique_fd pidfd{open_pidfd(pid)};

  command_result result;
  std::optional<int> status;
  // Read both pipes until both reach EOF or the child exits; a grandchild that keeps a pipe
  // open (a daemonising command) cannot hold us past the child's exit.
  while (out_pipe.read_end.get() >= 0 || err_pipe.read_end.get() >= 0) {
    int wait_status = 0;
    if (::waitpid(pid, &wait_status, WNOHANG) == pid) {
      status = decode_status(wait_status);
      break;
    }
    const auto now = clock::now();
    if (now >= deadline) {
      break;
    }
    std::array<pollfd, 3> fds{
        {{out_pipe.read_end.get(), POLLIN, 0}, {err_pipe.read_end.get(), POLLIN, 0}, {pidfd.get(), POLLIN, 0}}};
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    const int wait_ms = pidfd.get() >= 0 ? static_cast<int>(std::min<std::int64_t>(left, 60'000))
                                         : static_cast<int>(std::min<std::int64_t>(left, 10));
    if (::poll(fds.data(), fds.size(), wait_ms) < 0 && errno != EINTR) {
      throw_errno("poll");
    }
    if (fds[0].revents != 0 && !read_some(out_pipe.read_end.get(), result.out)) {
      out_pipe.read_end.reset();
    }
    if (fds[1].revents != 0 && !read_some(err_pipe.read_end.get(), result.err)) {
      err_pipe.read_end.reset();
    }
  }
  if (!status) {
    status = reap_until(pid, pidfd.get(), deadline);
  }
  if (!status) {
    ::kill(pid, SIGKILL);
    result.timed_out = true;
    status = reap_until(pid, pidfd.get(), clock::now() + 10s);
  }
  drain_nonblocking(out_pipe.read_end, result.out);
  drain_nonblocking(err_pipe.read_end, result.err);
  result.status = status.value_or(-1);
  return result;
}

std::string run_checked(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  auto result = run_command(argv, timeout);
  if (!result.ok()) {
    throw std::runtime_error{"`" + join_argv(argv) + "` " +
                             (result.timed_out ? "timed out after " + std::to_string(timeout.count()) + " ms"
                                               : "exited with status " + std::to_string(result.status)) +
                             "; stdout: " + result.out + "; stderr: " + result.err};
  }
  return std::move(result.out);
}

process::process(std::vector<std::string> argv)
    : argv_{std::move(argv)}, log_dir_{"gate46-process"}, log_path_{log_dir_ / "output.log"} {
  const unique_fd log{::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
  if (log.get() < 0) {
    throw_errno("open " + log_path_.string());
  }
  pid_ = spawn(argv_, log.get(), log.get());
  pidfd_ = open_pidfd(pid_);
}

process::process(process&& other) noexcept
    : argv_{std::move(other.argv_)},
      log_dir_{std::move(other.log_dir_)},
      log_path_{std::move(other.log_path_)},
      pid_{std::exchange(other.pid_, -1)},
      pidfd_{std::exchange(other.pidfd_, -1)},
      exit_status_{std::exchange(other.exit_status_, std::nullopt)},
      stop_timeout_{other.stop_timeout_} {}

process::~process() {
  if (pid_ <= 0) {
    return;  // moved from
  }
  if (!exit_status_) {
    signal(SIGTERM);
    if (!wait_exit(stop_timeout_)) {
      std::cerr << "[gate46::testing] " << argv_.front() << " (pid " << pid_ << ") ignored SIGTERM for "
                << stop_timeout_.count() << " ms: SIGKILL\n";
      signal(SIGKILL);
      if (!wait_exit(10s)) {
        std::cerr << "[gate46::testing] pid " << pid_ << " did not die after SIGKILL\n";
      }
    }
  }
  if (::testing::Test::HasFailure()) {
    constexpr std::size_t tail = std::size_t{64} * 1024;
    const auto size = log_mark();
    std::cerr << "---- log of `" << join_argv(argv_) << "` (pid " << pid_ << ", exit status "
              << exit_status_.value_or(-1) << ")" << (size > tail ? ", last 64 KiB" : "") << " ----\n"
              << log_text(size > tail ? size - tail : 0) << "---- end of log ----\n";
  }
  if (pidfd_ >= 0) {
    ::close(pidfd_);
  }
}

bool process::signal(int signo) {
  if (pid_ <= 0 || exit_status_) {
    return false;
  }
  // Not yet reaped, so the PID is still ours (at worst a zombie).
  return ::kill(pid_, signo) == 0;
}

std::optional<int> process::wait_exit(std::chrono::milliseconds timeout) {
  if (!exit_status_ && pid_ > 0) {
    exit_status_ = reap_until(pid_, pidfd_, clock::now() + timeout);
  }
  return exit_status_;
}

std::string process::log_text(std::size_t from) const {
  std::ifstream in{log_path_, std::ios::binary};
  if (!in || !in.seekg(static_cast<std::streamoff>(from))) {
    return {};
  }
  return std::string{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

std::size_t process::log_mark() const {
  std::error_code error;
  const auto size = std::filesystem::file_size(log_path_, error);
  return error ? 0 : static_cast<std::size_t>(size);
}

bool process::wait_for_log(std::string_view needle, std::chrono::milliseconds timeout, std::size_t from) {
  const auto deadline = clock::now() + timeout;
  for (;;) {
    if (log_text(from).find(needle) != std::string::npos) {
      return true;
    }
    if (!running()) {
      // Everything it wrote is in the file now.
      return log_text(from).find(needle) != std::string::npos;
    }
    const auto now = clock::now();
    if (now >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::min<clock::duration>(20ms, deadline - now));
  }
}

}  // namespace gate46::testing
