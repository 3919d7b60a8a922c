// How gate46ctl finds its configuration, the mapping store and the pool key, and how it turns
// the store's errors into exit statuses (exit_status.hpp).
//
// Configuration:
//   --config FILE given           FILE is loaded; any problem is exit 2.
//   default file exists           /etc/gate46/gate46.toml is loaded; any problem is exit 2.
//   default file absent, --store  the built-in defaults (the pools 198.18.0.0/15 and 2001:2::/48,
//                                 pools.key_file /etc/gate46/pool.key, ...): enough to inspect
//                                 a store copied elsewhere. A store last opened with other pools
//                                 is refused (exit 2): gate46ctl never applies a pool change.
//   neither                       exit 2, saying to give --config or --store.
// --store PATH replaces store.path of whichever configuration applies.
//
// The store: read-only commands (list, get, stats) never create one: a missing file is exit 5.
// Commands that write (add, del, pin, unpin, flush) open it like gate46d does; only `add`
// creates a missing one (del, pin, unpin and flush on no store are exit 5 as well). Opening
// works while gate46d and other processes use the store: LMDB is multi-process.
//
// The pool key (pools.key_file) is loaded when readable. It is needed only to place new
// addresses (map add without --v4/--v6); without it that fails with exit 2 and the reason.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "exit_status.hpp"
#include "gate46/common/config.hpp"
#include "gate46/mapping/fake_pool.hpp"
#include "gate46/mapping/lmdb_store.hpp"
#include "gate46/mapping/store.hpp"

namespace gate46::ctl {

inline constexpr std::string_view default_config_path = "/etc/gate46/gate46.toml";

// The global options, as given on the command line.
struct global_options {
  std::optional<std::filesystem::path> config_path;  // --config
  std::optional<std::filesystem::path> store_path;   // --store
};

// The configuration in effect (see above). Throws command_error (config_error status).
config resolve_config(const global_options& global);

enum class store_access {
  existing,  // exit 5 if there is no store
  create,    // create the store (and its directory) if missing
};

// The store a command works on: first its configuration (pools, key), then the open store.
class store_session {
 public:
  // Resolves the configuration and loads the key. Throws command_error (config_error, 2).
  explicit store_session(const global_options& global);

  // Opens the store. Throws command_error (store_unavailable, 5).
  void open(store_access access);
  // Precondition: open() returned.
  [[nodiscard]] mapping::mapping_store& store() const noexcept { return *store_; }
  [[nodiscard]] const mapping::lmdb_store_options& options() const noexcept { return options_; }
  // True for a usable address of either pool (a pool's reserved first/last is not).
  [[nodiscard]] bool in_pools(const ip_address& address) const noexcept;

  // The status and message for an error from the store; `subject` is what the command was
  // about ("www.example.com.", "198.18.0.1"). Never returns.
  [[noreturn]] void fail(const std::error_code& error, std::string_view subject) const;

 private:
  mapping::lmdb_store_options options_;
  std::string key_problem_;  // why options_.key is empty
  std::unique_ptr<mapping::mapping_store> store_;
};

// The exit status for a store error code.
exit_status status_for(const std::error_code& error) noexcept;

}  // namespace gate46::ctl
