// A real authoritative DNS server for tests: Knot DNS's `knotd` (Debian package knot) serving
// one test zone from inside a test network namespace, on given addresses.
//
// Each knot_server has its own temporary directory holding its configuration, zone file,
// database and control socket; nothing under /etc/knot or /var/lib/knot is touched. knotd runs
// in the foreground through the `process` harness (its log is the process log, signalled and
// reaped by PID), and `knotc -c <config>` talks to it over the control socket.
//
// The zone is plain records given by the test; the SOA (negative TTL = `negative_ttl`), the NS
// record and the name server's own addresses ("ns") are added from the options. Knot answers
// UDP with at most 1232 bytes (EDNS0 or not: 512 without), so an RRset larger than that comes
// back truncated over UDP and whole over TCP. Knot's mod-stats counts queries per transport
// (udp4, tcp4, udp6, tcp6): queries_over() tells which transport a forwarder used.
//
//   netns auth{"auth"};
//   connect_veth(...);                                 // 203.0.113.2/24, 2001:db8:2::2/64
//   knot_server knot{auth, {.addresses = {"203.0.113.2", "2001:db8:2::2"},
//                           .zone = standard_test_zone()}};
//   ... dig @203.0.113.2 www.gate46.test ...
//   knot.stop();                                      // the upstream goes away
//
// Declare it after the netns it runs in. Thread-safety: none needed; it belongs to one test.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gate46/testing/netns.hpp"
#include "gate46/testing/process.hpp"
#include "gate46/testing/temp_dir.hpp"

namespace gate46::testing {

// One resource record in zone-file presentation form.
struct zone_record {
  std::string owner;  // relative to the origin ("www", "@") or absolute ("www.gate46.test.")
  std::string type;   // "A", "AAAA", "CNAME", "TXT", ...
  std::string rdata;  // "203.0.113.20", "alias2", "\"some text\""
  std::uint32_t ttl = 300;
};

struct knot_zone {
  std::string origin = "gate46.test.";
  std::uint32_t serial = 1;
  std::uint32_t soa_ttl = 300;
  std::uint32_t negative_ttl = 60;  // the SOA MINIMUM (RFC 2308)
  std::vector<zone_record> records;
};

// `count` TXT records at `owner`, each one character-string of `length` characters (at most
// 255), all different. 8 x 200 characters make an answer of about 1,750 bytes: more than an
// EDNS0 buffer of 1232, so it comes truncated over UDP.
std::vector<zone_record> large_txt_records(std::string_view owner, unsigned count = 8, unsigned length = 200);

// The zone the DNS tests share, with every case they need (names below, all in gate46.test.).
namespace test_zone {
inline constexpr std::string_view origin = "gate46.test.";
inline constexpr std::string_view v4_only = "v4only.gate46.test.";  // A 203.0.113.10
inline constexpr std::string_view v4_only_address = "203.0.113.10";
inline constexpr std::string_view v6_only = "v6only.gate46.test.";  // AAAA 2001:db8:2::10
inline constexpr std::string_view v6_only_address = "2001:db8:2::10";
inline constexpr std::string_view dual = "www.gate46.test.";  // A 203.0.113.20, AAAA 2001:db8:2::20
inline constexpr std::string_view dual_v4_address = "203.0.113.20";
inline constexpr std::string_view dual_v6_address = "2001:db8:2::20";
// alias -> alias2 -> www: a CNAME chain ending at the dual-stack name.
inline constexpr std::string_view cname_chain = "alias.gate46.test.";
inline constexpr std::string_view cname_middle = "alias2.gate46.test.";
// A name with a TXT record only: A and AAAA queries get NODATA (NOERROR, no answer, SOA).
inline constexpr std::string_view text_only = "textonly.gate46.test.";
// large_txt_records(): 8 TXT records, too large for UDP.
inline constexpr std::string_view large_txt = "big.gate46.test.";
inline constexpr unsigned large_txt_count = 8;
// Nothing at or below this name: NXDOMAIN.
inline constexpr std::string_view nonexistent = "nonexistent.gate46.test.";
}  // namespace test_zone

// The records of test_zone, at serial 1, negative TTL 60.
knot_zone standard_test_zone();

struct knot_options {
  std::vector<std::string> addresses;  // where it listens, inside the namespace (test addresses)
  std::uint16_t port = 53;
  knot_zone zone;
  // Knot signs the zone itself (automatic DNSSEC, default policy, keys made at start): queries
  // with DO get RRSIGs, queries without do not.
  bool dnssec = false;
};

class knot_server {
 public:
  // Writes the configuration and zone, starts knotd in `ns` and waits (bounded) until the zone
  // is loaded. Throws std::runtime_error (with knotd's log) if it does not come up, and
  // std::invalid_argument for a non-test address.
  knot_server(const netns& ns, knot_options options);
  knot_server(const knot_server&) = delete;
  knot_server& operator=(const knot_server&) = delete;
  // Stops knotd if it still runs.
  ~knot_server();

  // Starts knotd again after stop(), same configuration and zone; waits as the constructor does.
  void start();
  // SIGTERM and waits (bounded) for knotd to exit; SIGKILL if it does not. No-op if stopped.
  void stop();
  [[nodiscard]] bool running();

  // Replaces the zone's records (the serial is raised if not already higher), reloads it and
  // waits until knotd serves the new serial. Throws std::runtime_error.
  void replace_zone(knot_zone zone);
  [[nodiscard]] const knot_zone& zone() const noexcept { return options_.zone; }

  // The query counter of one transport ("udp4", "tcp4", "udp6", "tcp6") since knotd started,
  // from `knotc stats`. 0 if nothing came that way. knotd must be running (std::runtime_error).
  [[nodiscard]] std::uint64_t queries_over(std::string_view transport) const;
  // knotc -c <config> <args...>.
  command_result knotc(const std::vector<std::string>& args) const;

  [[nodiscard]] const std::vector<std::string>& addresses() const noexcept { return options_.addresses; }
  [[nodiscard]] std::uint16_t port() const noexcept { return options_.port; }
  [[nodiscard]] const std::filesystem::path& config_path() const noexcept { return config_path_; }
  [[nodiscard]] std::filesystem::path zone_path() const;
  // knotd's log (of the current or last run); "" before the first start.
  [[nodiscard]] std::string log_text() const;

  // Bounds every wait here (start, zone reload, stop).
  static constexpr std::chrono::milliseconds wait_timeout = 10s;

 private:
  void write_zone() const;
  [[nodiscard]] bool serving_serial(std::uint32_t serial) const;

  const netns& ns_;
  knot_options options_;
  temp_dir dir_{"gate46-knot"};
  std::filesystem::path config_path_;
  std::optional<process> knotd_;
};

}  // namespace gate46::testing
