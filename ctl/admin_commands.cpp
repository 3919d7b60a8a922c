// gate46ctl config check and gate46ctl keygen.
#include <cstdio>
#include <exception>

#include "commands.hpp"
#include "gate46/common/config.hpp"
#include "gate46/mapping/lmdb_store.hpp"

namespace gate46::ctl {

exit_status config_check(const std::filesystem::path& file) {
  try {
    (void)load_config(file);
    std::printf("%s: configuration is valid\n", file.c_str());
    return exit_status::success;
  } catch (const config_error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return exit_status::failure;
  }
}

void keygen(const global_options& global, const std::optional<std::filesystem::path>& key_file, bool force) {
  std::filesystem::path path;
  if (key_file) {
    path = *key_file;
  } else {
    std::error_code ec;
    const bool have_config =
        global.config_path || std::filesystem::exists(std::filesystem::path{default_config_path}, ec);
    path = have_config ? resolve_config(global).pools.key_file : pools_config{}.key_file;
  }
  try {
    mapping::write_pool_key(path, force);
  } catch (const mapping::pool_key_exists& e) {
    throw command_error{exit_status::refused, e.what()};
  } catch (const std::exception& e) {
    throw command_error{exit_status::failure, e.what()};
  }
  std::printf("wrote a new pool key to %s\n", path.c_str());
}

}  // namespace gate46::ctl
