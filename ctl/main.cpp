// gate46ctl: the admin CLI. Subcommands speak to the configuration, the mapping store and the
// daemon's control socket; each component's issue adds its own.
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "gate46/common/config.hpp"

int main(int argc, char** argv) {
  CLI::App app{"gate46ctl: administer a gate46 gateway"};
  app.set_version_flag("--version", std::string{"gate46ctl "} + GATE46_VERSION);
  app.require_subcommand(1);

  auto* config_cmd = app.add_subcommand("config", "configuration files");
  config_cmd->require_subcommand(1);
  std::string check_path;
  auto* check = config_cmd->add_subcommand("check", "validate a configuration file (exit 1 if invalid)");
  check->add_option("FILE", check_path, "configuration file")->required();
  check->callback([&] {
    try {
      (void)gate46::load_config(check_path);
      std::printf("%s: configuration is valid\n", check_path.c_str());
    } catch (const gate46::config_error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      throw CLI::RuntimeError{1};
    }
  });

  CLI11_PARSE(app, argc, argv);
  return 0;
}
