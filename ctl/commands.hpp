// gate46ctl's commands, called by main() once argv is parsed. Each writes its result to stdout
// and throws command_error (exit_status.hpp) on failure; main() prints that on stderr.
//
// NAME|ADDR arguments: text that parses as an IP address is an address (so "198.18.0.1" is
// never taken for a name), anything else must be a domain name.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "exit_status.hpp"
#include "gate46/common/address.hpp"
#include "store_access.hpp"

namespace gate46::ctl {

// config check FILE: "FILE: configuration is valid" on stdout, or the config_error text
// ("FILE:LINE:COL: KEY: MESSAGE") alone on stderr and exit 1.
exit_status config_check(const std::filesystem::path& file);

struct list_options {
  bool json = false;
  std::optional<std::string> name_glob;  // fnmatch(3), case-insensitive, with or without the final dot
  std::optional<ip_family> pool;         // only mappings with an address in that pool
  bool expired = false;                  // only mappings eligible for recycling
};
void map_list(const global_options& global, const list_options& options);

// NAME or fake ADDR.
void map_get(const global_options& global, const std::string& key, bool json);

struct add_options {
  std::string name;
  std::optional<std::string> v4;  // without either, both families are placed
  std::optional<std::string> v6;
  bool pin = false;
};
void map_add(const global_options& global, const add_options& options);

// Refused (exit 6) while a flow holds the mapping, unless forced; a forced delete quarantines
// the addresses until their hold and lease pass.
void map_del(const global_options& global, const std::string& key, bool force);
void map_pin(const global_options& global, const std::string& key, bool pinned);
// Every unpinned, unheld mapping; with expired_only, only those eligible for recycling.
void map_flush(const global_options& global, bool expired_only);
void map_stats(const global_options& global, bool json);

// Writes a new 16-byte pool key to key_file, or to pools.key_file of the configuration in
// effect, or to /etc/gate46/pool.key when there is none. Refused (exit 6) if the file exists,
// unless forced.
void keygen(const global_options& global, const std::optional<std::filesystem::path>& key_file, bool force);

// passwd: one line from stdin (the password; not echoed on a terminal), its argon2id hash on
// stdout. An empty password is refused.
void passwd();

// firewall apply|remove: the capture rules (table inet gate46 and the policy route of both
// families); with dry_run, only printed. firewall show: the generated rules, the live table,
// and whether they match. Failures (no CAP_NET_ADMIN, no TPROXY in the kernel) are exit 1.
void firewall_apply(const global_options& global, bool dry_run);
void firewall_remove(const global_options& global, bool dry_run);
void firewall_show(const global_options& global);

// status, flows, stats: the running gate46d's state over its control socket (`socket`, else
// control.socket of the configuration in effect, else /run/gate46/control.sock). Exit 8 when it
// does not answer. With json, the daemon's reply itself (schema 1, gate46/common/control.hpp).
void live_status(const global_options& global, const std::optional<std::filesystem::path>& socket, bool json);
void live_flows(const global_options& global, const std::optional<std::filesystem::path>& socket, bool json);
void live_stats(const global_options& global, const std::optional<std::filesystem::path>& socket, bool json);

}  // namespace gate46::ctl
