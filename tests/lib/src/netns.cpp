#include "gate46/testing/netns.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "gate46/common/address.hpp"

namespace gate46::testing {
namespace {

constexpr std::string_view name_prefix = "g46-";
constexpr std::string_view netns_run_dir = "/run/netns";  // iproute2's NETNS_RUN_DIR
constexpr std::string_view etc_netns_dir = "/etc/netns";

std::atomic<unsigned> next_instance{0};

bool is_role(std::string_view role) {
  return !role.empty() && role.size() <= 32 && std::all_of(role.begin(), role.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

void remove_namespace(const std::string& name) noexcept {
  try {
    const auto result = run_command({"ip", "netns", "delete", name});
    if (!result.ok()) {
      std::cerr << "[gate46::testing] ip netns delete " << name << ": " << result.err;
    }
  } catch (const std::exception& e) {
    std::cerr << "[gate46::testing] ip netns delete " << name << ": " << e.what() << '\n';
  }
  std::error_code ignored;
  std::filesystem::remove_all(std::filesystem::path{etc_netns_dir} / name, ignored);
}

// Kills what still runs in namespace `name`: processes a test's own process objects did not own
// (a server's forked children, such as socat's per-peer ones) would otherwise outlive the
// namespace. Found by the namespace they run in, never by name.
void kill_processes_in(const std::string& name) {
  const auto pids = run_command({"ip", "netns", "pids", name});
  std::istringstream listed{pids.out};
  for (pid_t pid = 0; listed >> pid;) {
    ::kill(pid, SIGKILL);
  }
}

// Namespaces named after a test process that no longer exists: that binary crashed or was
// killed before its destructors ran. Their names cannot collide with ours (the PID differs
// while we live), but they would pile up.
void remove_stale_namespaces() {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator{std::filesystem::path{netns_run_dir}, error}) {
    const auto name = entry.path().filename().string();
    if (!name.starts_with(name_prefix)) {
      continue;
    }
    const auto digits = name.substr(name_prefix.size(), name.find('-', name_prefix.size()) - name_prefix.size());
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    const auto owner = static_cast<pid_t>(std::stol(digits));
    if (owner != ::getpid() && ::kill(owner, 0) != 0 && errno == ESRCH) {
      // Its processes outlived it: a gate46d that dropped root lost PR_SET_PDEATHSIG with its
      // uid (prctl(2)).
      kill_processes_in(name);
      remove_namespace(name);
    }
  }
}

bool valid_ifname(std::string_view name) {
  return !name.empty() && name.size() <= 15 &&
         std::none_of(name.begin(), name.end(), [](char c) { return c == '/' || c == ':' || c <= ' ' || c == 0x7f; });
}

}  // namespace

bool is_test_address(std::string_view address) {
  static const std::vector<cidr> allowed = [] {
    std::vector<cidr> list;
    for (const char* text : {"127.0.0.0/8", "::1/128", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                             "2001:db8::/32", "198.18.0.0/15", "2001:2::/48"}) {
      list.push_back(*cidr::parse(text));
    }
    return list;
  }();
  const auto parsed = ip_address::parse(address);
  return parsed && std::any_of(allowed.begin(), allowed.end(), [&](const cidr& c) { return c.contains(*parsed); });
}

netns::netns(std::string_view role) {
  if (!is_role(role)) {
    throw std::invalid_argument{"netns role \"" + std::string{role} + "\": use lower-case letters, digits and '-'"};
  }
  static std::once_flag stale_removed;
  std::call_once(stale_removed, remove_stale_namespaces);

  name_ = std::string{name_prefix} + std::to_string(::getpid()) + '-' + std::to_string(next_instance++) + '-' +
          std::string{role};
  // Qualified: the member run_checked would run these inside the namespace.
  testing::run_checked({"ip", "netns", "add", name_});
  try {
    write_resolv_conf({"127.0.0.1"});
    testing::run_checked({"ip", "-n", name_, "link", "set", "lo", "up"});
    // No duplicate address detection on the interfaces created here, link-local ones included:
    // every IPv6 address is usable at once instead of after a second or two of DAD.
    run_checked({"sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"});
  } catch (...) {
    remove_namespace(name_);
    throw;
  }
}

netns::~netns() {
  // The fixture's own processes have stopped by now (they are declared after their namespaces).
  kill_processes_in(name_);
  remove_namespace(name_);
}

std::vector<std::string> netns::command(std::vector<std::string> argv) const {
  argv.insert(argv.begin(), {"ip", "netns", "exec", name_});
  return argv;
}

command_result netns::run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) const {
  return run_command(command(argv), timeout);
}

std::string netns::run_checked(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) const {
  return testing::run_checked(command(argv), timeout);
}

std::filesystem::path netns::resolv_conf_path() const {
  return std::filesystem::path{etc_netns_dir} / name_ / "resolv.conf";
}

void netns::write_resolv_conf(const std::vector<std::string>& nameservers) const {
  std::string text = "# written by gate46::testing for namespace " + name_ + "\n";
  for (const auto& server : nameservers) {
    if (!is_test_address(server)) {
      throw std::invalid_argument{"nameserver " + server + " is not a test address"};
    }
    text += "nameserver " + server + '\n';
  }
  const auto path = resolv_conf_path();
  std::filesystem::create_directories(path.parent_path());
  // Rewritten in place rather than renamed over: `ip netns exec` bind-mounts this inode, so
  // commands already running inside see the new servers too.
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << text;
  out.close();
  if (!out) {
    throw std::system_error{errno, std::generic_category(), "write " + path.string()};
  }
}

void netns::enable_forwarding() const {
  run_checked({"sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"});
}

void connect_veth(const netns& a, const veth_end& a_end, const netns& b, const veth_end& b_end) {
  for (const auto* end : {&a_end, &b_end}) {
    if (!valid_ifname(end->ifname)) {
      throw std::invalid_argument{"interface name \"" + end->ifname + "\": 1 to 15 characters, no '/', ':' or blanks"};
    }
    for (const auto& address : end->addresses) {
      const auto slash = address.find('/');
      if (slash == std::string::npos || !is_test_address(std::string_view{address}.substr(0, slash))) {
        throw std::invalid_argument{"veth address \"" + address + "\": expected address/prefix in a test range"};
      }
    }
  }
  run_checked({"ip", "-n", a.name(), "link", "add", a_end.ifname, "type", "veth", "peer", "name", b_end.ifname, "netns",
               b.name()});
  for (const auto& [ns, end] : {std::pair{&a, &a_end}, std::pair{&b, &b_end}}) {
    for (const auto& address : end->addresses) {
      std::vector<std::string> argv{"ip", "-n", ns->name(), "address", "add", address, "dev", end->ifname};
      if (address.find(':') != std::string::npos) {
        argv.emplace_back("nodad");
      }
      run_checked(argv);
    }
    run_checked({"ip", "-n", ns->name(), "link", "set", end->ifname, "up"});
  }
}

}  // namespace gate46::testing
