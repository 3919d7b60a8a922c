// gate46d's life as an operator sees it, in a gateway namespace with a LAN link to a client
// namespace: start, SIGHUP with a changed, an unchanged, a restart-only and a broken file,
// SIGTERM and SIGINT, and the --components override. Everything is observed through the
// daemon's stderr log and its exit status.
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gate46/testing/gate46_config.hpp"
#include "gate46/testing/netns.hpp"
#include "gate46/testing/privileges.hpp"
#include "gate46/testing/process.hpp"
#include "gate46/testing/temp_dir.hpp"
#include "gate46/testing/unique_fd.hpp"

namespace {

using namespace gate46::testing;

// Generous for a start or a reload (it takes milliseconds), still far below the ctest timeout.
constexpr auto log_timeout = 10s;
// With no component running the drain is immediate; drain_timeout (10 s) bounds it otherwise.
constexpr auto exit_timeout = 15s;

struct settings {
  std::string log_level = "info";
  unsigned threads = 2;
  std::string dns_mode = "translate";
};

// systemd's side of sd_notify: a datagram socket the daemon finds in $NOTIFY_SOCKET.
class notify_socket {
 public:
  explicit notify_socket(std::filesystem::path path) : path_{std::move(path)} {
    fd_ = unique_fd{::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const auto text = path_.string();
    if (fd_.get() < 0 || text.size() >= sizeof address.sun_path) {
      throw std::runtime_error{"cannot make a notify socket at " + text};
    }
    std::copy(text.begin(), text.end(), static_cast<char*>(address.sun_path));
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error{"cannot bind " + text};
    }
    // Writable by everyone, as systemd's own /run/systemd/notify: gate46d has dropped root
    // by the time it says READY.
    if (::chmod(text.c_str(), 0666) != 0) {
      throw std::runtime_error{"cannot chmod " + text};
    }
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

  // The next message that contains `what`, or nullopt after `timeout`. Messages before it are
  // kept in seen().
  std::optional<std::string> wait_for(std::string_view what, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return std::nullopt;
      }
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      std::array<char, 4096> buffer{};
      const auto n = ::recv(fd_.get(), buffer.data(), buffer.size(), 0);
      if (n <= 0) {
        continue;
      }
      seen_.emplace_back(buffer.data(), static_cast<std::size_t>(n));
      if (seen_.back().find(what) != std::string::npos) {
        return seen_.back();
      }
    }
  }
  [[nodiscard]] const std::vector<std::string>& seen() const { return seen_; }

 private:
  std::filesystem::path path_;
  unique_fd fd_;
  std::vector<std::string> seen_;
};

class daemon_lifecycle : public ::testing::Test {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    ensure_gate46_group();
    gw_.emplace("gw");
    client_.emplace("client");
    connect_veth(*gw_, {"lan0", {"192.0.2.1/24", "2001:db8:1::1/64"}},  //
                 *client_, {"eth0", {"192.0.2.2/24", "2001:db8:1::2/64"}});
    write_config({});
  }

  [[nodiscard]] std::string config_text(const settings& s) const {
    return "[daemon]\n"
           "threads = " +
           std::to_string(s.threads) +
           "\n"
           "\n"
           "[lan]\n"
           "interfaces = [\"lan0\"]\n"
           "networks = [\"192.0.2.0/24\", \"2001:db8:1::/64\"]\n"
           "\n"
           "[dns]\n"
           "upstreams = [\"192.0.2.53\"]\n"
           "mode = \"" +
           s.dns_mode +
           "\"\n"
           "\n" +
           private_state_sections(dir_.path()) +
           "\n"
           "[log]\n"
           "level = \"" +
           s.log_level + "\"\n";
  }

  void write_config(const settings& s) { config_path_ = dir_.write_file("gate46.toml", config_text(s)); }

  process& start(const std::vector<std::string>& extra_args = {}, const std::vector<std::string>& environment = {}) {
    // env(1) execs gate46d in place: the PID stays the daemon's.
    std::vector<std::string> argv{"env"};
    argv.insert(argv.end(), environment.begin(), environment.end());
    argv.insert(argv.end(), {GATE46D_PATH, "--config", config_path_.string()});
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    return daemon_.emplace(gw_->command(argv));
  }

  // Starts with the configured components and waits until it says it runs.
  process& start_running() {
    auto& d = start();
    EXPECT_TRUE(d.wait_for_log("gate46d running: components [", log_timeout));
    expect_running_line({"dns", "socks", "relay", "firewall"});
    return d;
  }

  // Each of `configured` either started or is not in this build yet (each component's issue
  // adds it), and the running line lists them accordingly, in order:
  //   gate46d running: components [dns, socks, relay, firewall]
  //   gate46d running: components [dns] (not in this build: socks, relay, firewall)
  void expect_running_line(const std::vector<std::string>& configured) {
    const auto log = daemon_->log_text();
    std::string started;
    std::string skipped;
    for (const auto& name : configured) {
      const bool is_started = log.find("component " + name + ": started\n") != std::string::npos;
      const bool is_skipped =
          log.find("component " + name + ": not part of this build, skipped\n") != std::string::npos;
      EXPECT_NE(is_started, is_skipped) << "component " << name << " must be started or skipped:\n" << log;
      auto& list = is_started ? started : skipped;
      list += (list.empty() ? "" : ", ") + name;
    }
    const auto line = "gate46d running: components [" + started + "]" +
                      (skipped.empty() ? "" : " (not in this build: " + skipped + ")") + "\n";
    EXPECT_NE(log.find(line), std::string::npos) << "expected: " << line << log;
  }

  // Sends SIGHUP and returns the log it produced, up to and including the line containing
  // `last` (which must come within log_timeout).
  std::string reload(std::string_view last) {
    const auto mark = daemon_->log_mark();
    EXPECT_TRUE(daemon_->signal(SIGHUP));
    EXPECT_TRUE(daemon_->wait_for_log(last, log_timeout, mark)) << "no \"" << last << "\" after SIGHUP";
    return daemon_->log_text(mark);
  }

  // Stops with `signo` and expects a clean stop: exit status 0 and the stop lines in order.
  void expect_clean_stop(int signo, std::string_view signal_name) {
    const auto mark = daemon_->log_mark();
    ASSERT_TRUE(daemon_->signal(signo));
    EXPECT_EQ(daemon_->wait_exit(exit_timeout), std::optional<int>{0});
    const auto log = daemon_->log_text(mark);
    const auto stopping = log.find(std::string{signal_name} + ": stopping");
    const auto draining = log.find("draining for up to 10 s");
    const auto stopped = log.find("gate46d stopped");
    ASSERT_NE(stopping, std::string::npos) << log;
    ASSERT_NE(draining, std::string::npos) << log;
    ASSERT_NE(stopped, std::string::npos) << log;
    EXPECT_LT(stopping, draining);
    EXPECT_LT(draining, stopped);
  }

  temp_dir dir_{"gate46-lifecycle"};
  std::optional<netns> gw_;
  std::optional<netns> client_;
  std::filesystem::path config_path_;
  std::optional<process> daemon_;  // after the namespaces: stopped before they go
};

TEST_F(daemon_lifecycle, gate46_account_exists_after_setup) {
  // The tests run on one thread: getgrnam/getpwnam's static buffers are safe here.
  const group* g = ::getgrnam("gate46");  // NOLINT(concurrency-mt-unsafe)
  ASSERT_NE(g, nullptr);
  const gid_t gid = g->gr_gid;
  const passwd* p = ::getpwnam("gate46");  // NOLINT(concurrency-mt-unsafe)
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->pw_gid, gid);
  EXPECT_STREQ(p->pw_dir, "/var/lib/gate46");
  EXPECT_STREQ(p->pw_shell, "/usr/sbin/nologin");
  EXPECT_STREQ(p->pw_gecos, "gate46 IPv6/IPv4 gateway");
  EXPECT_LT(p->pw_uid, 1000U) << "a system user";
}

TEST_F(daemon_lifecycle, gateway_namespace_has_its_link_and_its_own_resolver) {
  const auto addresses = gw_->run_checked({"ip", "-o", "address", "show", "dev", "lan0"});
  EXPECT_NE(addresses.find("inet 192.0.2.1/24"), std::string::npos) << addresses;
  EXPECT_NE(addresses.find("inet6 2001:db8:1::1/64"), std::string::npos) << addresses;
  EXPECT_EQ(addresses.find("tentative"), std::string::npos) << "no DAD expected: " << addresses;
  const auto resolv = gw_->run_checked({"cat", "/etc/resolv.conf"});
  EXPECT_EQ(resolv, read_file(gw_->resolv_conf_path()));
  EXPECT_NE(resolv.find("nameserver 127.0.0.1\n"), std::string::npos) << resolv;
}

TEST_F(daemon_lifecycle, starts_in_the_namespace_and_stops_on_sigterm) {
  auto& d = start_running();
  const auto log = d.log_text();
  EXPECT_NE(log.find("gate46d " GATE46_VERSION " starting: config " + config_path_.string() + ", 2 worker threads"),
            std::string::npos)
      << log;
  // dns, socks and relay share the mapping store: it is opened (and created) at start.
  EXPECT_NE(log.find("mapping store " + (dir_ / "mappings.mdb").string() + " open"), std::string::npos) << log;
  EXPECT_TRUE(std::filesystem::exists(dir_ / "mappings.mdb"));
  // `ip netns exec` exec'd in place: the PID is gate46d's, and it lives in the gw namespace.
  EXPECT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(d.pid()) + "/exe"),
            std::filesystem::path{GATE46D_PATH});
  struct stat own {};
  struct stat expected {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(d.pid()) + "/ns/net").c_str(), &own), 0);
  ASSERT_EQ(::stat(("/run/netns/" + gw_->name()).c_str(), &expected), 0);
  EXPECT_EQ(own.st_ino, expected.st_ino);

  expect_clean_stop(SIGTERM, "SIGTERM");
}

TEST_F(daemon_lifecycle, tells_systemd_ready_once_listening_then_watchdog_reload_and_stop) {
  notify_socket systemd{dir_.path() / "notify.sock"};
  // WatchdogSec=200ms: a ping every 100 ms. Without the firewall (whose nft run takes a while)
  // READY would follow start() at once: only waiting for the address watchers' first dump
  // puts the listeners that follow lan0 in place before it.
  auto& d = start({"--components", "dns,socks"}, {"NOTIFY_SOCKET=" + systemd.path().string(), "WATCHDOG_USEC=200000"});
  const auto ready = systemd.wait_for("READY=1", log_timeout);
  ASSERT_TRUE(ready.has_value()) << d.log_text();
  EXPECT_NE(ready->find("STATUS=running: dns, socks"), std::string::npos) << *ready;
  const auto listening = gw_->run_checked({"ss", "-Hltn"});
  for (const char* at : {"192.0.2.1:53 ", "[2001:db8:1::1]:53 ", "192.0.2.1:1080 ", "[2001:db8:1::1]:1080 "}) {
    EXPECT_NE(listening.find(at), std::string::npos) << at << " not listening at READY:\n" << listening;
  }
  // And in that order in the log: listeners first, then "running" (logged just before READY).
  const auto log = d.log_text();
  const auto running = log.find("gate46d running: components [dns, socks]");
  ASSERT_NE(running, std::string::npos) << log;
  for (const char* line : {"serving DNS on 192.0.2.1:53 ", "serving DNS on [2001:db8:1::1]:53 ",
                           "SOCKS5 on 192.0.2.1:1080", "SOCKS5 on [2001:db8:1::1]:1080"}) {
    const auto at = log.find(line);
    EXPECT_NE(at, std::string::npos) << line << "\n" << log;
    EXPECT_LT(at, running) << line << " after READY:\n" << log;
  }
  EXPECT_NE(d.log_text().find("systemd watchdog: a ping every 100 ms"), std::string::npos) << d.log_text();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(systemd.wait_for("WATCHDOG=1", 2s).has_value()) << "watchdog ping " << i;
  }

  ASSERT_TRUE(d.signal(SIGHUP));
  const auto reloading = systemd.wait_for("RELOADING=1", log_timeout);
  ASSERT_TRUE(reloading.has_value()) << d.log_text();
  EXPECT_NE(reloading->find("MONOTONIC_USEC="), std::string::npos) << *reloading;
  EXPECT_TRUE(systemd.wait_for("READY=1", log_timeout).has_value()) << "no READY after the reload";

  ASSERT_TRUE(d.signal(SIGTERM));
  EXPECT_TRUE(systemd.wait_for("STOPPING=1", log_timeout).has_value()) << d.log_text();
  EXPECT_EQ(d.wait_exit(exit_timeout), std::optional<int>{0}) << d.log_text();
}

TEST_F(daemon_lifecycle, without_notify_socket_nothing_is_sent_and_no_watchdog_runs) {
  auto& d = start_running();
  EXPECT_EQ(d.log_text().find("systemd watchdog"), std::string::npos) << d.log_text();
  expect_clean_stop(SIGTERM, "SIGTERM");
}

TEST_F(daemon_lifecycle, sigint_stops_cleanly) {
  start_running();
  expect_clean_stop(SIGINT, "SIGINT");
}

TEST_F(daemon_lifecycle, sighup_applies_a_changed_log_level) {
  start_running();
  write_config({.log_level = "debug"});
  const auto log = reload("reload: applied");
  EXPECT_NE(log.find("reload: changed keys [log.level]\n"), std::string::npos) << log;
  EXPECT_EQ(log.find("take effect only after a restart"), std::string::npos) << log;
  expect_clean_stop(SIGTERM, "SIGTERM");
}

TEST_F(daemon_lifecycle, sighup_with_an_unchanged_file_changes_nothing) {
  start_running();
  const auto log = reload("reload: no key changed");
  EXPECT_EQ(log.find("reload: applied"), std::string::npos) << log;
  expect_clean_stop(SIGTERM, "SIGTERM");
}

TEST_F(daemon_lifecycle, sighup_names_the_keys_that_need_a_restart) {
  start_running();
  write_config({.threads = 3});
  const auto log = reload("reload: applied");
  EXPECT_NE(log.find("reload: changed keys [daemon.threads]\n"), std::string::npos) << log;
  EXPECT_NE(log.find("reload: these changes take effect only after a restart: [daemon.threads]\n"), std::string::npos)
      << log;
  expect_clean_stop(SIGTERM, "SIGTERM");
}

TEST_F(daemon_lifecycle, sighup_with_a_broken_file_keeps_the_running_configuration) {
  auto& d = start_running();
  write_config({.dns_mode = "bogus"});
  const auto text = read_file(config_path_);
  const auto line =
      std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(text.find("mode = \"bogus\"")), '\n') + 1;
  const auto rejection =
      "reload rejected, keeping the running configuration: " + config_path_.string() + ':' + std::to_string(line) + ':';
  auto log = reload(rejection);
  EXPECT_NE(log.find("dns.mode: \"bogus\" is not one of: translate, all\n"), std::string::npos) << log;
  EXPECT_EQ(log.find("reload: applied"), std::string::npos) << log;
  EXPECT_TRUE(d.running());

  // Still alive and still listening to SIGHUP: a good file is taken, compared with the
  // configuration that kept running (log.level info -> debug; dns.mode unchanged).
  write_config({.log_level = "debug"});
  log = reload("reload: applied");
  EXPECT_NE(log.find("reload: changed keys [log.level]\n"), std::string::npos) << log;
  expect_clean_stop(SIGTERM, "SIGTERM");
}

TEST_F(daemon_lifecycle, components_option_replaces_the_configured_list) {
  auto& d = start({"--components", "dns"});
  ASSERT_TRUE(d.wait_for_log("gate46d running: components [", log_timeout));
  expect_running_line({"dns"});
  const auto log = d.log_text();
  for (const std::string name : {"socks", "relay", "firewall"}) {
    EXPECT_EQ(log.find("component " + name), std::string::npos) << name << '\n' << log;
  }
  expect_clean_stop(SIGTERM, "SIGTERM");
}

TEST_F(daemon_lifecycle, unknown_component_is_refused) {
  auto& d = start({"--components", "bogus"});
  const auto status = d.wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value()) << "still running with --components bogus";
  EXPECT_NE(*status, 0);
  const auto log = d.log_text();
  EXPECT_NE(log.find("unknown component \"bogus\""), std::string::npos) << log;
  EXPECT_EQ(log.find("gate46d running"), std::string::npos) << log;
}

TEST_F(daemon_lifecycle, a_missing_pool_key_stops_the_start) {
  std::filesystem::remove(dir_ / "pool.key");
  auto& d = start();
  const auto status = d.wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value()) << "still running without a pool key";
  EXPECT_EQ(*status, 1);
  const auto log = d.log_text();
  EXPECT_NE(log.find("cannot open the mapping store: cannot read the pool key " + (dir_ / "pool.key").string()),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("gate46d running"), std::string::npos) << log;
}

}  // namespace
