// gate46's configuration: one TOML file, parsed once into validated, immutable structs.
//
// Every key of the design's table exists here with its default. A value that derives from the
// host at run time (the addresses of lan.interfaces, the open-file limit) is left empty here
// and documented as such; the component that owns it derives it. A reload builds a whole new
// `config` and swaps the snapshot; nothing here is mutated after loading.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "gate46/common/address.hpp"

namespace gate46 {

// A configuration error, naming the file, the line (and column) and the dotted key.
// what() is "FILE:LINE:COLUMN: KEY: MESSAGE", ready for a log line or stderr.
class config_error : public std::runtime_error {
 public:
  config_error(std::string file, std::uint32_t line, std::uint32_t column, std::string key, std::string message);

  [[nodiscard]] const std::string& file() const noexcept { return file_; }
  [[nodiscard]] std::uint32_t line() const noexcept { return line_; }
  [[nodiscard]] std::uint32_t column() const noexcept { return column_; }
  [[nodiscard]] const std::string& key() const noexcept { return key_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  std::string file_;
  std::uint32_t line_;
  std::uint32_t column_;
  std::string key_;
  std::string message_;
};

using seconds = std::chrono::seconds;
using milliseconds = std::chrono::milliseconds;

struct daemon_config {
  // Subset of known_components(), no duplicates.
  std::vector<std::string> components{"dns", "socks", "relay", "firewall"};
  unsigned threads = 1;  // default: the number of cores
  std::string user = "gate46";
  friend bool operator==(const daemon_config&, const daemon_config&) = default;
};

struct lan_config {
  std::vector<std::string> interfaces;  // required, non-empty
  std::vector<cidr> networks;           // required, non-empty
  friend bool operator==(const lan_config&, const lan_config&) = default;
};

struct store_config {
  std::filesystem::path path = "/var/lib/gate46/mappings.mdb";
  std::uint64_t map_size = std::uint64_t{1} << 30;
  milliseconds sync_interval{1000};
  friend bool operator==(const store_config&, const store_config&) = default;
};

struct pools_config {
  cidr ipv4{*ip_address::parse("198.18.0.0"), 15};
  cidr ipv6{*ip_address::parse("2001:2::"), 48};
  std::filesystem::path key_file = "/etc/gate46/pool.key";
  seconds lease_grace{3600};
  seconds hold_refresh{60};
  friend bool operator==(const pools_config&, const pools_config&) = default;
};

enum class dns_mode : std::uint8_t { translate, all, never };

struct dns_rule {
  std::string suffix;  // lower-case, absolute ("example.com.")
  dns_mode mode = dns_mode::translate;
  friend bool operator==(const dns_rule&, const dns_rule&) = default;
};

struct dns_config {
  // Empty: the addresses of lan.interfaces, port 53, following the address watcher.
  std::vector<endpoint> listen;
  std::vector<endpoint> upstreams;      // required, non-empty; port 53 when omitted
  dns_mode mode = dns_mode::translate;  // translate or all (never is for rules only)
  seconds fake_ttl{60};
  milliseconds upstream_timeout{2000};
  unsigned upstream_tries = 2;
  seconds tcp_idle_timeout{10};
  unsigned tcp_max_per_client = 16;
  unsigned tcp_max = 1024;
  // The operator's rules; the built-in `never` list is the DNS policy's and applies beneath them.
  std::vector<dns_rule> rules;
  friend bool operator==(const dns_config&, const dns_config&) = default;
};

enum class socks_auth : std::uint8_t { none, password };

struct socks_network {
  cidr network;
  socks_auth auth = socks_auth::none;
  friend bool operator==(const socks_network&, const socks_network&) = default;
};

struct socks_user {
  std::string name;
  std::string password_hash;  // argon2id, PHC string format ("$argon2id$...")
  friend bool operator==(const socks_user&, const socks_user&) = default;
};

struct gateway_config {
  // Empty: the addresses of lan.interfaces and loopback, port 1080, following the watcher.
  std::vector<endpoint> socks_listen;
  // Default (filled in by the loader): each of lan.networks, 127.0.0.0/8 and ::1/128, auth none.
  std::vector<socks_network> socks_networks;
  std::vector<socks_user> users;
  ip_family prefer_family = ip_family::v6;
  milliseconds happy_eyeballs_delay{250};
  seconds connect_timeout{10};
  seconds tcp_idle_timeout{3600};
  seconds udp_idle_timeout{60};
  seconds udp_dns_idle_timeout{10};
  // How long a SOCKS BIND waits for its peer to connect.
  seconds bind_timeout{60};
  // Unset: derived from the open-file limit at start.
  std::optional<unsigned> max_flows;
  unsigned udp_sessions_per_client = 256;
  unsigned udp_sessions_max = 4096;
  seconds drain_timeout{10};
  std::vector<cidr> deny = default_deny();
  friend bool operator==(const gateway_config&, const gateway_config&) = default;

  // Loopback, this-host, link-local, multicast and broadcast of both families. The gateway
  // adds its own addresses and the unmapped part of the fake pools at run time.
  static std::vector<cidr> default_deny();
};

struct tproxy_config {
  std::uint16_t port = 7046;
  std::uint32_t mark = 0x46;
  std::uint32_t mark_mask = 0xff;
  std::uint32_t bypass_mark = 0x47;
  std::uint32_t route_table = 46;
  std::uint32_t rule_priority = 460;
  bool capture_dns = false;
  friend bool operator==(const tproxy_config&, const tproxy_config&) = default;
};

struct control_config {
  std::filesystem::path socket = "/run/gate46/control.sock";
  friend bool operator==(const control_config&, const control_config&) = default;
};

enum class log_level : std::uint8_t { trace, debug, info, warn, error, critical, off };
enum class log_format : std::uint8_t { text, json };

struct log_config {
  log_level level = log_level::info;
  log_format format = log_format::text;
  friend bool operator==(const log_config&, const log_config&) = default;
};

struct config {
  std::filesystem::path source;  // the file it was loaded from (or the name given to parse_config)
  daemon_config daemon;
  lan_config lan;
  store_config store;
  pools_config pools;
  dns_config dns;
  gateway_config gateway;
  tproxy_config tproxy;
  control_config control;
  log_config log;
  friend bool operator==(const config&, const config&) = default;
};

// The components gate46d knows, in start order.
const std::vector<std::string_view>& known_components();

// Parses TOML text. source_name appears in errors. Throws config_error on any problem: a
// syntax error, an unknown key, a wrong type, a missing required key, an out-of-range or
// otherwise invalid value.
config parse_config(std::string_view text, std::string_view source_name);

// Reads and parses a file. Throws config_error (also when the file cannot be read).
config load_config(const std::filesystem::path& path);

// The dotted keys whose values differ between two configs and take effect only after a restart
// (ports, listen addresses, pools, store, marks, threads, ...). Every other key is live and is
// applied by reconfigure(). Ordered as in the file layout.
std::vector<std::string> keys_needing_restart(const config& running, const config& loaded);

// Every dotted key whose value differs (live or not); for the reload log line.
std::vector<std::string> changed_keys(const config& running, const config& loaded);

std::string_view to_string(dns_mode mode);
std::string_view to_string(log_level level);

}  // namespace gate46
