#include "store_access.hpp"

#include <exception>
#include <utility>

namespace gate46::ctl {
namespace {

using mapping::store_errc;

std::string pools_text(const mapping::lmdb_store_options& options) {
  return "pools.ipv4 " + options.pool_v4.to_string() + ", pools.ipv6 " + options.pool_v6.to_string();
}

}  // namespace

config resolve_config(const global_options& global) {
  std::error_code ec;
  const std::filesystem::path default_path{default_config_path};
  if (!global.config_path && !std::filesystem::exists(default_path, ec)) {
    if (global.store_path) {
      return config{};  // the built-in defaults; store.path is replaced by the caller
    }
    throw command_error{exit_status::config_error, "no configuration: " + default_path.string() +
                                                       " does not exist; give --config FILE or --store PATH"};
  }
  try {
    return load_config(global.config_path.value_or(default_path));
  } catch (const config_error& e) {
    throw command_error{exit_status::config_error, e.what()};
  }
}

store_session::store_session(const global_options& global) {
  const auto cfg = resolve_config(global);
  options_ = mapping::lmdb_store_options::from_config(cfg, std::nullopt);
  if (global.store_path) {
    options_.path = *global.store_path;
  }
  try {
    options_.key = mapping::load_pool_key(cfg.pools.key_file);
  } catch (const std::exception& e) {
    key_problem_ = e.what();
  }
}

void store_session::open(store_access access) {
  options_.create_if_missing = access == store_access::create;
  // Never apply a pool change from here: a stale or default configuration must not drop
  // anyone's mappings. gate46d applies pool changes at its start.
  options_.on_pool_change = mapping::lmdb_store_options::pool_change::refuse;
  try {
    store_ = mapping::open_lmdb_store(options_);
  } catch (const mapping::store_missing& e) {
    throw command_error{
        exit_status::store_unavailable,
        std::string{e.what()} + " (gate46d creates it, so does `gate46ctl map add`; check store.path or --store)"};
  } catch (const mapping::pool_change_refused& e) {
    throw command_error{exit_status::config_error, e.what()};
  } catch (const mapping::store_open_error& e) {
    throw command_error{exit_status::store_unavailable, e.what()};
  }
}

bool store_session::in_pools(const ip_address& address) const noexcept {
  return mapping::fake_pool{options_.pool_v4}.contains(address) ||
         mapping::fake_pool{options_.pool_v6}.contains(address);
}

void store_session::fail(const std::error_code& error, std::string_view subject) const {
  const std::string about{subject};
  if (error == store_errc::not_found) {
    throw command_error{exit_status::not_found, "no mapping for " + about};
  }
  if (error == store_errc::outside_pools) {
    throw command_error{exit_status::outside_pools, about + " is in neither fake pool (" + pools_text(options_) + ")"};
  }
  if (error == store_errc::no_pool_key) {
    throw command_error{exit_status::config_error,
                        "placing an address for " + about + " needs the pool key: " + key_problem_};
  }
  throw command_error{status_for(error), about + ": " + error.message()};
}

exit_status status_for(const std::error_code& error) noexcept {
  if (error.category() != mapping::store_category()) {
    return exit_status::failure;
  }
  switch (static_cast<store_errc>(error.value())) {
    case store_errc::not_found:
      return exit_status::not_found;
    case store_errc::outside_pools:
      return exit_status::outside_pools;
    case store_errc::no_pool_key:
      return exit_status::config_error;
    case store_errc::held:
      return exit_status::refused;
    case store_errc::address_taken:
    case store_errc::pool_exhausted:
    case store_errc::store_full:
      return exit_status::conflict;
    case store_errc::corrupt:
    case store_errc::store_error:
      return exit_status::store_unavailable;
  }
  return exit_status::failure;
}

}  // namespace gate46::ctl
