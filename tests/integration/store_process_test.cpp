// The LMDB mapping store shared by several processes, as gate46d's components and gate46ctl
// share it:
// - two processes at once: a forked child allocates a few thousand names (the awaitable, many
//   concurrent coroutines, so allocations are group-committed) and reports each one as soon as
//   its allocation returns; this process, concurrently, looks every reported mapping up by name
//   and by address and lists the table: each must be visible the moment it is reported.
// - a crash: a forked child allocating in group-committed batches is killed with SIGKILL at a
//   random point, several times; after each kill the store is reopened and every mapping whose
//   allocation had returned is there with the same address, list() and stats() agree with each
//   other and with the raw tables, and no reader slot of the dead process is left.
// Children are forked functions, not executables: each reports over a pipe, one line per
// completed allocation. They are forked while this process has no other thread (its own store
// is closed then), die with it (PR_SET_PDEATHSIG), and are reaped by PID.
#include <fcntl.h>
#include <lmdb.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gate46/mapping/lmdb_store.hpp"
#include "gate46/testing/temp_dir.hpp"
#include "gate46/testing/unique_fd.hpp"
#include "gate46/testing/wait.hpp"

namespace {

namespace asio = boost::asio;
using namespace gate46;
using namespace gate46::mapping;
using namespace gate46::testing;
using std::chrono::steady_clock;

// ---- children ----------------------------------------------------------------------------

// Writes all of `text` (a child's report line: pipe writes up to PIPE_BUF are atomic).
void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      throw std::system_error{errno, std::generic_category(), "write"};
    }
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

// A function run in a forked child; its return value is the exit status (2 if it throws).
class forked_child {
 public:
  // Only the descriptors in `keep` (and 0-2) stay open in the child.
  forked_child(std::vector<int> keep, const std::function<int()>& body) {
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
      throw std::system_error{errno, std::generic_category(), "fork"};
    }
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) {
        ::_exit(127);
      }
      std::sort(keep.begin(), keep.end());
      unsigned from = 3;
      for (const int fd : keep) {
        if (static_cast<unsigned>(fd) > from) {
          ::close_range(from, static_cast<unsigned>(fd) - 1, 0);
        }
        ::fcntl(fd, F_SETFD, 0);
        from = std::max(from, static_cast<unsigned>(fd) + 1);
      }
      ::close_range(from, ~0U, 0);
      int status = 2;
      try {
        status = body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "forked child %d: %s\n", static_cast<int>(::getpid()), e.what());
      }
      std::fflush(stderr);
      ::_exit(status);  // no atexit handlers, no static destructors of the test binary
    }
  }
  forked_child(const forked_child&) = delete;
  forked_child& operator=(const forked_child&) = delete;
  ~forked_child() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      int ignored = 0;
      ::waitpid(pid_, &ignored, 0);
    }
  }

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  // SIGKILL, then reap.
  void kill() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      int raw = 0;
      ::waitpid(pid_, &raw, 0);
      status_ = decode(raw);
    }
  }

  // Exit status (128 + signal), or nullopt if still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    wait_until(
        [&] {
          int raw = 0;
          if (!status_ && ::waitpid(pid_, &raw, WNOHANG) == pid_) {
            status_ = decode(raw);
          }
          return status_.has_value();
        },
        timeout, std::chrono::milliseconds{5});
    return status_;
  }

 private:
  static int decode(int raw) { return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw); }

  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Splits what a child writes into lines.
class line_reader {
 public:
  explicit line_reader(unique_fd fd) : fd_{std::move(fd)} {}

  // Waits at most `timeout` for input and returns the complete lines read (possibly none).
  // After end of file, returns what is left at once; eof() then says so.
  std::vector<std::string> read_lines(std::chrono::milliseconds timeout) {
    std::vector<std::string> lines;
    if (!eof_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(timeout.count())) > 0) {
        std::array<char, 65536> chunk{};
        const ssize_t n = ::read(fd_.get(), chunk.data(), chunk.size());
        if (n > 0) {
          buffer_.append(chunk.data(), static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          eof_ = true;
        }
      }
    }
    std::size_t start = 0;
    for (auto end = buffer_.find('\n'); end != std::string::npos; end = buffer_.find('\n', start)) {
      lines.push_back(buffer_.substr(start, end - start));
      start = end + 1;
    }
    buffer_.erase(0, start);
    return lines;
  }
  [[nodiscard]] bool eof() const noexcept { return eof_; }
  // A line cut short by the writer's death (never counted).
  [[nodiscard]] const std::string& partial() const noexcept { return buffer_; }

 private:
  unique_fd fd_;
  std::string buffer_;
  bool eof_ = false;
};

// ---- what the children report ------------------------------------------------------------

// One completed allocation: "<4|6> <address> <name>".
struct allocation {
  dns_name name;
  ip_family family;
  ip_address address;
};

std::string format(const dns_name& name, ip_family family, const ip_address& address) {
  return std::string{family == ip_family::v4 ? "4 " : "6 "} + address.to_string() + ' ' + name.to_string() + '\n';
}

allocation parse(const std::string& line) {
  std::istringstream in{line};
  std::string family;
  std::string address;
  std::string name;
  in >> family >> address >> name;
  const auto a = ip_address::parse(address);
  const auto n = dns_name::parse(name);
  if (!in || (family != "4" && family != "6") || !a || !n) {
    throw std::runtime_error{"bad report line \"" + line + "\""};
  }
  return {*n, family == "4" ? ip_family::v4 : ip_family::v6, *a};
}

std::string family_name(ip_family family) {
  return family == ip_family::v4 ? "v4" : "v6";
}

// ---- the store ---------------------------------------------------------------------------

lmdb_store_options store_options(const std::filesystem::path& path) {
  lmdb_store_options o;
  o.path = path;
  o.map_size = std::uint64_t{256} << 20;
  o.sync_interval = std::chrono::milliseconds{1000};  // production: commits visible, syncs deferred
  o.key = pool_key{0x67, 0x61, 0x74, 0x65, 0x34, 0x36, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x2d, 0x6b, 0x65, 0x79, 0x21};
  return o;
}

// Child body: allocates `names` names in each of `families` with `concurrency` coroutines on
// one io_context (so the writer thread commits them in groups), writing "ready" once the store
// is open, one report line per completed allocation, and "done" at the end. With `look_up`,
// each coroutine also looks its mapping up by address afterwards, as the gateway does per
// flow: that holds reader slots, as real processes do. Returns 0 when every allocation
// succeeded, 1 on a failed allocation, 3 on a timeout.
int allocate_and_report(const lmdb_store_options& options, int report_fd, std::string_view prefix, int names,
                        const std::vector<ip_family>& families, int concurrency, bool look_up) {
  const auto store = open_lmdb_store(options);
  write_all(report_fd, "ready\n");
  asio::io_context io;
  int next = 0;
  int failures = 0;
  for (int c = 0; c < concurrency; ++c) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          while (next < names && failures == 0) {
            const int i = next++;
            const auto name = *dns_name::parse(std::string{prefix} + std::to_string(i) + ".test");
            for (const auto family : families) {
              const auto m = co_await store->allocate(name, family, std::chrono::seconds{300});
              if (!m || !m->address(family)) {
                std::fprintf(stderr, "allocation of %s failed: %s\n", name.to_string().c_str(),
                             m ? "no address" : m.error().message().c_str());
                ++failures;
                co_return;
              }
              write_all(report_fd, format(name, family, *m->address(family)));
              if (look_up) {
                (void)store->find(*m->address(family));
              }
            }
          }
        },
        asio::detached);
  }
  io.run_for(std::chrono::seconds{30});
  if (!io.stopped()) {
    // Not unwinding: the writer thread may still complete allocations onto `io`.
    std::fprintf(stderr, "allocations did not finish within 30 s\n");
    std::fflush(stderr);
    ::_exit(3);
  }
  if (failures != 0) {
    return 1;
  }
  write_all(report_fd, "done\n");
  return 0;
}

// Every check a reported allocation must pass in another process.
void expect_visible(const mapping_store& store, const allocation& a) {
  const auto by_name = store.find(a.name);
  ASSERT_TRUE(by_name) << a.name.to_string() << " not found by name";
  EXPECT_EQ(by_name->address(a.family), a.address) << a.name.to_string();
  const auto by_address = store.find(a.address);
  ASSERT_TRUE(by_address) << a.address.to_string() << " (" << a.name.to_string() << ") not found by address";
  EXPECT_EQ(by_address->name, a.name) << a.address.to_string();
}

// ---- two processes at once ---------------------------------------------------------------

// The pool the writer allocates from (a struct of our own so that gtest prints it).
struct pool_case {
  ip_family family;
};
void PrintTo(const pool_case& c, std::ostream* os) {
  *os << family_name(c.family);
}

class store_process_two_processes : public ::testing::TestWithParam<pool_case> {};

TEST_P(store_process_two_processes, every_returned_allocation_is_visible_to_the_other_process) {
  const ip_family family = GetParam().family;
  constexpr int names = 3000;
  const temp_dir dir{"gate46-store-two"};
  const auto options = store_options(dir / "mappings.mdb");

  auto reports = make_pipe();
  forked_child writer{{reports.write_end.get()}, [&] {
                        return allocate_and_report(options, reports.write_end.get(), "n", names, {family}, 32, false);
                      }};
  reports.write_end.reset();
  line_reader reader{std::move(reports.read_end)};

  // The child creates the store; this process opens it once the child has.
  auto pending = reader.read_lines(std::chrono::milliseconds{10000});
  ASSERT_FALSE(pending.empty()) << "the writer did not start";
  ASSERT_EQ(pending.front(), "ready");
  pending.erase(pending.begin());
  const auto store = open_lmdb_store(options);

  std::vector<allocation> seen;
  std::set<ip_address> addresses;
  bool done = false;
  std::size_t verified_while_allocating = 0;  // read before the writer had written "done"
  std::size_t listed_at = 0;
  int lists = 0;
  const auto deadline = steady_clock::now() + std::chrono::seconds{30};
  while (!reader.eof() && steady_clock::now() < deadline) {
    auto batch = reader.read_lines(std::chrono::milliseconds{50});
    if (!pending.empty()) {
      batch.insert(batch.begin(), pending.begin(), pending.end());
      pending.clear();
    }
    const bool done_before = done;
    for (const auto& line : batch) {
      if (line == "done") {
        done = true;
        continue;
      }
      const auto a = parse(line);
      ASSERT_NO_FATAL_FAILURE(expect_visible(*store, a));
      EXPECT_TRUE(addresses.insert(a.address).second) << a.address.to_string() << " given twice";
      seen.push_back(a);
    }
    if (!done) {
      verified_while_allocating += batch.size();
    }
    EXPECT_FALSE(done_before && !batch.empty()) << "reports after \"done\"";
    // A list taken now holds every mapping reported before it.
    if (seen.size() >= listed_at + 500 || (reader.eof() && listed_at != seen.size())) {
      const auto listed = store->list({family, false});
      std::set<dns_name> listed_names;
      for (const auto& m : listed) {
        listed_names.insert(m.name);
      }
      for (const auto& a : seen) {
        ASSERT_TRUE(listed_names.contains(a.name)) << a.name.to_string() << " missing from list()";
      }
      listed_at = seen.size();
      ++lists;
    }
  }
  ASSERT_TRUE(reader.eof()) << "the writer did not finish within 30 s";
  ASSERT_EQ(writer.wait_exit(std::chrono::milliseconds{10000}), 0);
  EXPECT_TRUE(done);
  EXPECT_TRUE(reader.partial().empty());
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(names));

  const auto stats = store->stats();
  EXPECT_EQ(stats.mappings, static_cast<std::uint64_t>(names));
  EXPECT_EQ((family == ip_family::v4 ? stats.v4 : stats.v6).used, static_cast<std::uint64_t>(names));
  EXPECT_EQ((family == ip_family::v4 ? stats.v6 : stats.v4).used, 0U);
  std::cout << "store_process: " << verified_while_allocating << " of " << names
            << " allocations verified while the writer was still allocating, " << lists << " lists\n";
}

INSTANTIATE_TEST_SUITE_P(families, store_process_two_processes,
                         ::testing::Values(pool_case{ip_family::v4}, pool_case{ip_family::v6}),
                         [](const auto& param_info) { return family_name(param_info.param.family); });

// ---- a crash -----------------------------------------------------------------------------

// Another process that keeps the environment open across the crashes, as gate46d's other
// components and gate46ctl do. Without one, the next process to open the store would be the
// only user and LMDB would reset the whole lock table, stale slots included, so the reader
// check at open would have nothing to do. It also answers questions about the raw tables:
//   "readers" -> one "reader <pid>" line per used reader slot, then "end"
//   "tables"  -> "names N", "addrs N", "lru N", "used4 N", "used6 N", then "end"
// and exits on end of file.
int observe(const std::filesystem::path& path, int command_fd, int answer_fd) {
  MDB_env* env = nullptr;
  auto check = [](int rc, const char* what) {
    if (rc != MDB_SUCCESS) {
      throw std::runtime_error{std::string{what} + ": " + mdb_strerror(rc)};
    }
  };
  check(mdb_env_create(&env), "mdb_env_create");
  check(mdb_env_set_maxdbs(env, 4), "mdb_env_set_maxdbs");
  check(mdb_env_set_mapsize(env, store_options(path).map_size), "mdb_env_set_mapsize");
  check(mdb_env_open(env, path.c_str(), MDB_NOSUBDIR | MDB_RDONLY | MDB_NOTLS, 0600), "mdb_env_open");
  write_all(answer_fd, "ready\n");
  line_reader commands{unique_fd{command_fd}};
  while (!commands.eof()) {
    for (const auto& command : commands.read_lines(std::chrono::milliseconds{1000})) {
      std::string answer;
      if (command == "readers") {
        mdb_reader_list(
            env,
            [](const char* line, void* out) {
              // "       pid     thread     txnid" (the header), then one line per used slot
              char* end = nullptr;
              const long pid = std::strtol(line, &end, 10);
              if (end != line && pid > 0) {
                *static_cast<std::string*>(out) += "reader " + std::to_string(pid) + '\n';
              }
              return 0;
            },
            &answer);
      } else if (command == "tables") {
        MDB_txn* txn = nullptr;
        check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "mdb_txn_begin");
        for (const char* table : {"names", "addrs", "lru"}) {
          MDB_dbi dbi = 0;
          MDB_stat st{};
          check(mdb_dbi_open(txn, table, 0, &dbi), "mdb_dbi_open");
          check(mdb_stat(txn, dbi, &st), "mdb_stat");
          answer += std::string{table} + ' ' + std::to_string(st.ms_entries) + '\n';
        }
        MDB_dbi meta = 0;
        check(mdb_dbi_open(txn, "meta", 0, &meta), "mdb_dbi_open");
        for (const char* counter : {"used4", "used6"}) {
          MDB_val k{std::strlen(counter), const_cast<char*>(counter)};
          MDB_val v{};
          std::uint64_t value = 0;
          if (mdb_get(txn, meta, &k, &v) == MDB_SUCCESS && v.mv_size == 8) {
            for (std::size_t i = 0; i < 8; ++i) {
              value = (value << 8) | static_cast<const std::uint8_t*>(v.mv_data)[i];
            }
          }
          answer += std::string{counter} + ' ' + std::to_string(value) + '\n';
        }
        mdb_txn_abort(txn);
      }
      write_all(answer_fd, answer + "end\n");
    }
  }
  mdb_env_close(env);
  return 0;
}

class observer {
 public:
  explicit observer(const std::filesystem::path& path)
      : commands_{make_pipe()},
        answers_{make_pipe()},
        child_{{commands_.read_end.get(), answers_.write_end.get()},
               [&] { return observe(path, commands_.read_end.get(), answers_.write_end.get()); }},
        reader_{std::move(answers_.read_end)} {
    commands_.read_end.reset();
    answers_.write_end.reset();
    if (reader_.read_lines(std::chrono::milliseconds{10000}) != std::vector<std::string>{"ready"}) {
      throw std::runtime_error{"the observer did not start"};
    }
  }
  observer(const observer&) = delete;
  observer& operator=(const observer&) = delete;
  ~observer() {
    commands_.write_end.reset();
    child_.wait_exit(std::chrono::milliseconds{5000});
  }

  // The answer's lines as key -> values.
  std::multimap<std::string, std::uint64_t> ask(const std::string& command) {
    write_all(commands_.write_end.get(), command + '\n');
    std::multimap<std::string, std::uint64_t> out;
    const auto deadline = steady_clock::now() + std::chrono::seconds{10};
    while (steady_clock::now() < deadline && !reader_.eof()) {
      for (const auto& line : reader_.read_lines(std::chrono::milliseconds{100})) {
        if (line == "end") {
          return out;
        }
        const auto space = line.find(' ');
        out.emplace(line.substr(0, space), std::stoull(line.substr(space + 1)));
      }
    }
    throw std::runtime_error{"the observer did not answer \"" + command + "\""};
  }
  std::set<pid_t> readers() {
    std::set<pid_t> pids;
    for (const auto& [key, pid] : ask("readers")) {
      pids.insert(static_cast<pid_t>(pid));
    }
    return pids;
  }

 private:
  pipe_fds commands_;
  pipe_fds answers_;
  forked_child child_;
  line_reader reader_;
};

// The whole table after a crash: every reported allocation is there with its address, and the
// views of the table agree with each other.
void expect_consistent(const mapping_store& store, const std::vector<allocation>& reported, observer& raw) {
  for (const auto& a : reported) {
    ASSERT_NO_FATAL_FAILURE(expect_visible(store, a));
  }
  const auto all = store.list({});
  std::set<ip_address> addresses;
  std::uint64_t v4 = 0;
  std::uint64_t v6 = 0;
  for (const auto& m : all) {
    for (const auto family : {ip_family::v4, ip_family::v6}) {
      if (const auto& address = m.address(family)) {
        (family == ip_family::v4 ? v4 : v6) += 1;
        EXPECT_EQ(address->family(), family) << m.name.to_string();
        EXPECT_TRUE(addresses.insert(*address).second) << address->to_string() << " belongs to two names";
        const auto owner = store.find(*address);
        ASSERT_TRUE(owner) << address->to_string() << " of " << m.name.to_string() << " does not map back";
        EXPECT_EQ(owner->name, m.name);
      }
    }
  }
  const auto stats = store.stats();
  EXPECT_EQ(stats.mappings, all.size());
  EXPECT_EQ(stats.v4.used, v4);
  EXPECT_EQ(stats.v6.used, v6);
  EXPECT_EQ(stats.quarantined, 0U);
  EXPECT_EQ(stats.v4.allocation_failures + stats.v6.allocation_failures, 0U);

  const auto tables = raw.ask("tables");
  EXPECT_EQ(tables.find("names")->second, all.size()) << "names table";
  EXPECT_EQ(tables.find("addrs")->second, v4 + v6) << "addrs table";
  EXPECT_EQ(tables.find("lru")->second, v4 + v6) << "lru table (nothing is pinned)";
  EXPECT_EQ(tables.find("used4")->second, v4) << "meta used4";
  EXPECT_EQ(tables.find("used6")->second, v6) << "meta used6";
}

TEST(store_process_crash, kill_9_during_group_commits_loses_no_returned_allocation_and_no_reader_slot) {
  const temp_dir dir{"gate46-store-crash"};
  const auto options = store_options(dir / "mappings.mdb");
  // Created here and closed again (joining its writer thread) before anything is forked.
  open_lmdb_store(options).reset();
  observer raw{options.path};

  const auto seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 random{seed};
  std::vector<allocation> reported;
  constexpr int rounds = 5;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // Kill after this many reported allocations, and then up to 2 ms later still: anywhere in
    // a batch, its commit, or between batches.
    const auto kill_after = std::uniform_int_distribution<std::size_t>{1, 3000}(random);
    const auto extra = std::chrono::microseconds{std::uniform_int_distribution<int>{0, 2000}(random)};

    auto reports = make_pipe();
    forked_child allocator{{reports.write_end.get()}, [&] {
                             const auto prefix = "r" + std::to_string(round) + "-";
                             return allocate_and_report(options, reports.write_end.get(), prefix, 1'000'000,
                                                        {ip_family::v6, ip_family::v4}, 64, true);
                           }};
    reports.write_end.reset();
    line_reader reader{std::move(reports.read_end)};
    std::size_t count = 0;
    std::vector<allocation> this_round;
    auto take = [&](const std::vector<std::string>& lines) {
      for (const auto& line : lines) {
        if (line != "ready" && line != "done") {
          this_round.push_back(parse(line));
        }
      }
      count = this_round.size();
    };
    const auto deadline = steady_clock::now() + std::chrono::seconds{10};
    while (count < kill_after && !reader.eof() && steady_clock::now() < deadline) {
      take(reader.read_lines(std::chrono::milliseconds{50}));
    }
    ASSERT_FALSE(reader.eof()) << "the allocating child exited by itself: " << allocator.wait_exit({}).value_or(-1);
    ASSERT_GE(count, kill_after) << "too slow: " << count << " allocations in 10 s";
    std::this_thread::sleep_for(extra);
    allocator.kill();
    while (!reader.eof()) {
      take(reader.read_lines(std::chrono::milliseconds{1000}));
    }
    reported.insert(reported.end(), this_round.begin(), this_round.end());
    std::cout << "store_process: round " << round << ": killed after " << count << " reported allocations ("
              << kill_after << " + " << extra.count() << " us)" << (reader.partial().empty() ? "" : ", a cut line")
              << "\n";

    // The dead child looked mappings up, so it held reader slots; only the check at open frees
    // them (the observer keeps the lock table alive).
    EXPECT_TRUE(raw.readers().contains(allocator.pid())) << "the test lost its point: no slot of the dead child";
    {
      const auto store = open_lmdb_store(options);
      ASSERT_NO_FATAL_FAILURE(expect_consistent(*store, reported, raw));
      for (const pid_t pid : raw.readers()) {
        EXPECT_EQ(::kill(pid, 0), 0) << "a reader slot of dead process " << pid << " is left";
      }
    }
    // This process's own store is closed (its writer thread joined) before the next fork.
  }
  std::cout << "store_process: " << reported.size() << " reported allocations survived " << rounds << " kills\n";
}

}  // namespace
