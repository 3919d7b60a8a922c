// gate46ctl: the admin CLI. Subcommands speak to the configuration, the mapping store and the
// daemon's control socket; each component's issue adds its own. This file only parses argv;
// the commands live in commands.hpp.
//
// Exit statuses (exit_status.hpp, also in the --help footer):
//   0 success, 1 usage error or other failure, 2 configuration error, 3 unknown name or
//   address, 4 address outside the pools, 5 store missing or unreadable, 6 refused (held;
//   key exists), 7 address taken / pool exhausted / store full.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "exit_status.hpp"
#include "gate46/common/log.hpp"

namespace {

using namespace gate46::ctl;

// --name GLOB and friends: CLI11 fills a plain value; an optional says whether it was given.
template <typename T>
std::optional<T> given(const CLI::Option* option, const T& value) {
  return option->count() > 0 ? std::optional<T>{value} : std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gate46ctl: administer a gate46 gateway"};
  app.set_version_flag("--version", std::string{"gate46ctl "} + GATE46_VERSION);
  app.require_subcommand(1);
  app.footer(exit_status_footer);
  app.fallthrough();  // --config and --store may also follow the subcommand

  std::string config_path{default_config_path};
  std::string store_path;
  auto* config_option = app.add_option("--config", config_path, "configuration file")->capture_default_str();
  auto* store_option =
      app.add_option("--store", store_path,
                     "mapping store file, instead of store.path; without a configuration file the built-in "
                     "defaults apply (pools 198.18.0.0/15 and 2001:2::/48)");

  // config check FILE
  auto* config_cmd = app.add_subcommand("config", "configuration files");
  config_cmd->require_subcommand(1);
  std::string check_path;
  auto* check = config_cmd->add_subcommand("check", "validate a configuration file (exit 1 if invalid)");
  check->add_option("FILE", check_path, "configuration file")->required();

  // map ...
  auto* map = app.add_subcommand("map", "the fake address <-> name mappings in the store");
  map->require_subcommand(1);
  bool json_output = false;
  bool expired = false;
  bool force = false;
  bool pin = false;
  std::string key;
  std::string name_glob;
  std::string pool;
  std::string v4;
  std::string v6;

  auto* list = map->add_subcommand("list", "list mappings (sorted by name)");
  list->add_flag("--json", json_output, "JSON for scripts: {\"schema\": 1, \"mappings\": [...]}");
  auto* glob_option = list->add_option("--name", name_glob, "only names matching GLOB (fnmatch, ignoring case)");
  auto* pool_option = list->add_option("--pool", pool, "only mappings with an address in that pool")
                          ->check(CLI::IsMember({"v4", "v6"}));
  list->add_flag("--expired", expired, "only mappings eligible for recycling (lease passed, not held, not pinned)");

  auto* get = map->add_subcommand("get", "show one mapping, by name or by fake address");
  get->add_option("NAME|ADDR", key, "domain name or fake address")->required();
  get->add_flag("--json", json_output, "JSON for scripts: {\"schema\": 1, \"mapping\": {...}}");

  auto* add = map->add_subcommand("add", "add a mapping (or renew and re-address an existing one)");
  add->add_option("NAME", key, "domain name")->required();
  auto* v4_option = add->add_option("--v4", v4, "this fake IPv4 address");
  auto* v6_option = add->add_option("--v6", v6, "this fake IPv6 address");
  add->add_flag("--pin", pin, "never expires, never recycled");
  add->footer("Without --v4 and --v6, an address of each family is placed (this needs pools.key_file).");

  auto* del = map->add_subcommand("del", "delete a mapping");
  del->add_option("NAME|ADDR", key, "domain name or fake address")->required();
  del->add_flag("--force", force,
                "delete even while a flow holds it; its addresses stay quarantined until its hold and lease pass");

  auto* pin_cmd = map->add_subcommand("pin", "pin a mapping: it never expires and is never recycled");
  pin_cmd->add_option("NAME|ADDR", key, "domain name or fake address")->required();
  auto* unpin_cmd = map->add_subcommand("unpin", "unpin a mapping: its lease applies again");
  unpin_cmd->add_option("NAME|ADDR", key, "domain name or fake address")->required();

  auto* flush = map->add_subcommand("flush", "delete every mapping that is neither pinned nor held");
  flush->add_flag("--expired", expired, "only those eligible for recycling");

  auto* stats = map->add_subcommand("stats", "pool sizes, use, recycling and the store's size");
  stats->add_flag("--json", json_output, "JSON for scripts: {\"schema\": 1, \"pools\": {...}, ...}");

  // keygen
  auto* keygen_cmd = app.add_subcommand("keygen", "write a new pool key (placement hash) for pools.key_file");
  std::string key_file;
  auto* key_file_option = keygen_cmd->add_option("--key-file", key_file,
                                                 "where to write it (default: pools.key_file, /etc/gate46/pool.key)");
  keygen_cmd->add_flag("--force", force, "replace an existing key (this moves every name's preferred address)");

  // passwd
  auto* passwd_cmd = app.add_subcommand(
      "passwd", "read a password on stdin, print its argon2id hash for [[gateway.user]] (hash = \"...\")");

  // firewall
  auto* firewall = app.add_subcommand("firewall", "the capture rules: nftables table inet gate46 and policy routing");
  firewall->require_subcommand(1);
  bool dry_run = false;
  auto* fw_apply = firewall->add_subcommand("apply", "install (or replace) the capture rules");
  fw_apply->add_flag("--dry-run", dry_run, "print what would be applied, change nothing");
  auto* fw_remove = firewall->add_subcommand("remove", "remove gate46's table, rules and routes (nothing else)");
  fw_remove->add_flag("--dry-run", dry_run, "print what would be removed, change nothing");
  auto* fw_show = firewall->add_subcommand("show", "the generated rules, the live table, and whether they match");

  // status, flows, stats: the running daemon
  std::string socket_path;
  const auto add_live = [&](const char* name, const char* description, const char* json_help) {
    auto* cmd = app.add_subcommand(name, description);
    cmd->add_flag("--json", json_output, json_help);
    return cmd;
  };
  auto* status_cmd = add_live("status", "the running gate46d: version, pid, user, config, uptime, components",
                              "JSON for scripts: {\"schema\": 1, \"status\": {...}}");
  auto* flows_cmd =
      add_live("flows", "the flows gate46d relays now: client, destination, name, real target, bytes each way, age",
               "JSON for scripts: {\"schema\": 1, \"flows\": [...]}");
  auto* live_stats_cmd = add_live("stats",
                                  "gate46d's counters (DNS answers, flows, failures by reason) and pool pressure; "
                                  "`map stats` is the store's own view",
                                  "JSON for scripts: {\"schema\": 1, \"stats\": {...}}");
  auto* socket_option = app.add_option("--socket", socket_path, "gate46d's control socket, instead of control.socket");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : static_cast<int>(exit_status::failure);
  }

  gate46::configure_logging({gate46::log_level::warn, gate46::log_format::text});
  global_options global;
  if (config_option->count() > 0) {
    global.config_path = config_path;
  }
  if (store_option->count() > 0) {
    global.store_path = store_path;
  }

  try {
    if (check->parsed()) {
      return static_cast<int>(config_check(check_path));
    }
    if (list->parsed()) {
      std::optional<gate46::ip_family> family;
      if (pool_option->count() > 0) {
        family = pool == "v4" ? gate46::ip_family::v4 : gate46::ip_family::v6;
      }
      map_list(global, {json_output, given(glob_option, name_glob), family, expired});
    } else if (get->parsed()) {
      map_get(global, key, json_output);
    } else if (add->parsed()) {
      map_add(global, {key, given(v4_option, v4), given(v6_option, v6), pin});
    } else if (del->parsed()) {
      map_del(global, key, force);
    } else if (pin_cmd->parsed() || unpin_cmd->parsed()) {
      map_pin(global, key, pin_cmd->parsed());
    } else if (flush->parsed()) {
      map_flush(global, expired);
    } else if (stats->parsed()) {
      map_stats(global, json_output);
    } else if (passwd_cmd->parsed()) {
      passwd();
    } else if (fw_apply->parsed()) {
      firewall_apply(global, dry_run);
    } else if (fw_remove->parsed()) {
      firewall_remove(global, dry_run);
    } else if (fw_show->parsed()) {
      firewall_show(global);
    } else if (status_cmd->parsed()) {
      live_status(global, given(socket_option, std::filesystem::path{socket_path}), json_output);
    } else if (flows_cmd->parsed()) {
      live_flows(global, given(socket_option, std::filesystem::path{socket_path}), json_output);
    } else if (live_stats_cmd->parsed()) {
      live_stats(global, given(socket_option, std::filesystem::path{socket_path}), json_output);
    } else if (keygen_cmd->parsed()) {
      keygen(global, given(key_file_option, std::filesystem::path{key_file}), force);
    }
  } catch (const command_error& e) {
    std::fprintf(stderr, "gate46ctl: %s\n", e.what());
    return static_cast<int>(e.status());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gate46ctl: %s\n", e.what());
    return static_cast<int>(exit_status::failure);
  }
  return 0;
}
