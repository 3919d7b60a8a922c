// Network namespaces and the links between them, for integration and end-to-end tests.
//
// Every namespace is named "g46-<pid>-<n>-<role>", unique per test process and instance, so
// tests run in parallel (ctest -j) without colliding; namespaces left by a test binary that
// died are removed by the next one that creates a namespace. A namespace is created with
// lo up, IPv6 duplicate address detection off (addresses, link-local ones too, are usable at
// once), and its own /etc/netns/<name>/resolv.conf (nameserver 127.0.0.1 unless rewritten),
// so nothing run inside ever reaches the host's resolver.
//
// Addresses: only loopback, the documentation ranges and the fake pools may appear in tests
// (127.0.0.0/8, ::1, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32,
// 198.18.0.0/15, 2001:2::/48); the helpers here refuse any other with std::invalid_argument.
//
// Declare processes running in a namespace after the netns object (fixture members are
// destroyed in reverse order): a namespace must outlive what runs in it.
//
// Thread-safety: none needed; objects belong to one test.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "gate46/testing/process.hpp"

namespace gate46::testing {

class netns {
 public:
  // Creates the namespace ("ip netns add"), brings lo up and writes resolv.conf. `role`
  // (lower-case letters, digits, '-') ends the name: "gw", "client4". Throws std::runtime_error.
  explicit netns(std::string_view role);
  netns(const netns&) = delete;
  netns& operator=(const netns&) = delete;
  // Deletes the namespace and /etc/netns/<name>/. Its veth ends go with it (and so do their
  // peers in other namespaces).
  ~netns();

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  // {"ip", "netns", "exec", name(), argv...}: argv run inside this namespace, for process{}.
  [[nodiscard]] std::vector<std::string> command(std::vector<std::string> argv) const;
  // run_command / run_checked inside this namespace.
  command_result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 10s) const;
  std::string run_checked(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 10s) const;

  // Replaces /etc/netns/<name>/resolv.conf with one "nameserver" line per address (each must be
  // a test address); `ip netns exec` shows it as /etc/resolv.conf to everything run inside.
  void write_resolv_conf(const std::vector<std::string>& nameservers) const;
  [[nodiscard]] std::filesystem::path resolv_conf_path() const;

  // net.ipv4.ip_forward=1 and net.ipv6.conf.all.forwarding=1 in this namespace.
  void enable_forwarding() const;

 private:
  std::string name_;
};

// One end of a veth link: its interface name (at most 15 characters; it exists only inside its
// namespace, so short fixed names such as "lan0" are fine) and the addresses to put on it, in
// "address/prefix" form ("192.0.2.1/24", "2001:db8:1::1/64"). IPv6 addresses also get `nodad`.
struct veth_end {
  std::string ifname;
  std::vector<std::string> addresses;
};

// Creates a veth pair between two namespaces, assigns the addresses and sets both ends up.
// Throws std::invalid_argument for a bad name or a non-test address, std::runtime_error if a
// command fails.
void connect_veth(const netns& a, const veth_end& a_end, const netns& b, const veth_end& b_end);

// True if `address` (an address, without prefix) lies in one of the ranges tests may use.
[[nodiscard]] bool is_test_address(std::string_view address);

}  // namespace gate46::testing
