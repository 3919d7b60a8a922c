// gate46ctl config check, keygen and passwd.
#include <cstdio>
#include <exception>

#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <string>

#include "commands.hpp"
#include "gate46/common/config.hpp"
#include "gate46/gateway/socks_server.hpp"
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

void passwd() {
  const bool terminal = isatty(STDIN_FILENO) != 0;
  termios saved{};
  if (terminal) {
    std::fprintf(stderr, "password: ");
    tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string password;
  std::getline(std::cin, password);
  if (terminal) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::fprintf(stderr, "\n");
  }
  if (!password.empty() && password.back() == '\r') {
    password.pop_back();
  }
  if (password.empty()) {
    throw command_error{exit_status::failure, "empty password"};
  }
  if (password.size() > 255) {
    throw command_error{exit_status::failure, "a SOCKS5 password is at most 255 bytes (RFC 1929)"};
  }
  std::printf("%s\n", gateway::hash_password(password).c_str());
}

}  // namespace gate46::ctl
